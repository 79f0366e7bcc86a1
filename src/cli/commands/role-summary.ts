/**
 * One line for what a role carries beyond identities and app labels, for
 * `admin get roles`: a role made only of azure_api, request, review or admin
 * rules would otherwise show as a row of dashes, as if it did nothing.
 */
import type { AzureApiRule, Role, RoleConditions } from "../../rbac/types.ts";

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? "" : "s"}`;

function apiRules(rules: AzureApiRule[] | undefined, side: "allow" | "deny"): string | null {
  if (!rules?.length) return null;
  const presets = rules.map((r) => r.preset).filter((p): p is string => !!p);
  const plain = rules.length - presets.length;
  return [plain ? `${plural(plain, "rule")} ${side}` : "", presets.length ? `${side} preset ${presets.join(", ")}` : ""].filter(Boolean).join(", ");
}

function requestable(c: RoleConditions | undefined, verb: string): string | null {
  const r = verb === "request" ? c?.request : c?.review_requests;
  if (!r) return null;
  const what = [r.roles?.length ? `roles ${r.roles.join(",")}` : "", r.azure_identities?.length ? plural(r.azure_identities.length, "identity pattern") : ""].filter(Boolean);
  return what.length ? `${verb} ${what.join(" and ")}` : null;
}

export function roleSummary(role: Role): string {
  const { allow, deny, options } = role.spec;
  const api = [apiRules(allow?.azure_api, "allow"), apiRules(deny?.azure_api, "deny")].filter(Boolean);
  const parts = [
    api.length ? `azure_api: ${api.join("; ")}${options?.azure_api_mode === "audit" ? " (audit mode)" : ""}` : "",
    requestable(allow, "request") ?? "",
    requestable(allow, "review") ?? "",
    deny?.request ? "deny request" : "",
    allow?.rules?.length ? `admin: ${[...new Set(allow.rules.flatMap((r) => r.resources))].join(",")}` : "",
    deny?.rules?.length ? `deny admin: ${[...new Set(deny.rules.flatMap((r) => r.resources))].join(",")}` : "",
  ].filter(Boolean);
  return parts.join("; ") || "-";
}
