/**
 * The app an access request names. Reviewers read it in chat and mail (in
 * the command to log in with, among others), so it must be an app name, not
 * text: the app-name grammar agents announce apps with (config/schema.ts
 * APP_NAME). Whether it is served, on labels the request's roles cover, is
 * `grantPermits`' (createRequest). A refusal is audited as a failed
 * access_request.create.
 */
import { audit } from "../audit/events.ts";
import { AzgateError } from "../errors/index.ts";
import { APP_NAME } from "../config/schema.ts";
import type { Caller } from "./caller.ts";
import type { ProxyContext } from "./context.ts";

export async function checkRequestedApp(ctx: ProxyContext, caller: Caller, app: string): Promise<void> {
  if (APP_NAME.test(app)) return;
  const why = `app ${JSON.stringify(app.slice(0, 64))} is not an app name (lowercase letters, digits and '-', at most 63)`;
  await ctx.audit.emit(audit("ACCESS_REQUEST_REFUSED", { user: caller.name, app, success: false, error_code: "bad_parameter", reason: why }));
  throw new AzgateError("bad_parameter", why);
}
