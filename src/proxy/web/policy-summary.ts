/**
 * The per-request API policy for one identity, in plain language: the
 * summary rbac/azure-api.ts makes from the same selection of roles the
 * decision reads (summarizeAzureApi next to decideAzureApi), so the page
 * cannot say other than the proxy does.
 */
import { azureApiSummaryText, summarizeAzureApi } from "../../rbac/azure-api.ts";
import type { App, Role } from "../../rbac/types.ts";
import type { Caller } from "../caller.ts";

export function policySummary(caller: Caller, app: App, identity: string, extraRoles: Role[] = []): string {
  return azureApiSummaryText(summarizeAzureApi([...caller.roles, ...extraRoles], caller.traits, app, identity));
}
