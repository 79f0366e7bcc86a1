/**
 * Taking a fresh passkey check (browser-attempt.ts) for what it was asked
 * for: the same user record and login session that started it, the same app
 * and Azure identity or the same access request, once. A bot has no passkey:
 * a rule that asks for one refuses it.
 */
import { MfaRequired, AzgateError } from "../errors/index.ts";
import { sameIdentity } from "../azure/resource-id.ts";
import type { Caller } from "./caller.ts";
import type { ProxyContext } from "./context.ts";
import { scopeText, takeAttempt, type CheckScope } from "./browser-attempt.ts";
import { userStamp } from "./users.ts";

/** The check's time (for the certificate), or MfaRequired saying what is missing. */
export async function takeSessionCheck(ctx: ProxyContext, caller: Caller, given: unknown, scope: CheckScope, rule: string): Promise<string> {
  if (caller.identity.bot) throw new MfaRequired(`${rule} asks for a fresh passkey check, which a bot cannot give; give the bot a role without require_session_mfa`);
  const mfa = given && typeof given === "object" ? (given as Record<string, unknown>) : null;
  if (!mfa) throw new MfaRequired(`${rule} asks for a fresh check with your passkey or security key to ${scopeText(scope)}; the azgate CLI opens the browser for it`);
  let attempt;
  try {
    attempt = await takeAttempt(ctx, String(mfa.attempt ?? ""), String(mfa.code ?? ""), String(mfa.secret ?? ""), "check");
  } catch (e) {
    throw new MfaRequired(`the passkey check was not accepted: ${(e as AzgateError).message}`);
  }
  const sameUser = caller.user && attempt.user === caller.name && attempt.user_id === userStamp(caller.user).id && attempt.session_id === caller.identity.session_id;
  if (!sameUser) throw new MfaRequired("the passkey check was asked for by another session; run the command again");
  if (!sameScope(attempt.scope, scope)) throw new MfaRequired(`the passkey check was asked to ${scopeText(attempt.scope)}, not to ${scopeText(scope)}`);
  if (!attempt.done?.checked_at) throw new MfaRequired("the passkey check was not completed");
  return attempt.done.checked_at;
}

function sameScope(a: CheckScope | undefined, b: CheckScope): boolean {
  if (!a) return false;
  if ("request" in b) return "request" in a && a.request === b.request;
  return "app" in a && a.app === b.app && sameIdentity(a.azure_identity, b.azure_identity);
}
