/**
 * The app an access request names. Reviewers read it in chat and mail (in
 * the command to log in with, among others), so it must be an app name, not
 * text: the app-name grammar agents announce apps with (config/schema.ts
 * APP_NAME), and an app that exists: one some agent serves now, or, when
 * none does at this moment, one that a role of the caller's (or one its roles
 * name for requests) could match: app_labels that match an app whose labels
 * are unknown, `'*': '*'`. A refusal is audited as a failed
 * access_request.create.
 */
import { AzgateError } from "../errors/index.ts";
import { APP_NAME } from "../config/schema.ts";
import { matchLabels } from "../rbac/labels.ts";
import type { Role } from "../rbac/types.ts";
import type { Caller } from "./caller.ts";
import type { ProxyContext } from "./context.ts";
import type { AppRegistry } from "./registry.ts";

export async function checkRequestedApp(ctx: ProxyContext, caller: Caller, app: string, registry: Pick<AppRegistry, "all"> | undefined, requestRoles: (Role | undefined)[]): Promise<void> {
  let why: string | null = null;
  if (!APP_NAME.test(app)) {
    why = `app ${JSON.stringify(app.slice(0, 64))} is not an app name (lowercase letters, digits and '-', at most 63)`;
  } else if ((registry?.all(app).length ?? 0) === 0) {
    const roles = [...caller.roles, ...requestRoles].filter((r): r is Role => r !== undefined);
    if (!roles.some((r) => matchLabels(r.spec.allow?.app_labels, {}, caller.traits))) why = `no agent serves app "${app}" right now; azgate apps ls shows the apps you can use`;
  }
  if (!why) return;
  await ctx.audit.emit({ event: "access_request.create", code: "T5000W", user: caller.name, app, success: false, error_code: "bad_parameter", reason: why });
  throw new AzgateError("bad_parameter", why);
}
