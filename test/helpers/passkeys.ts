/**
 * What the in-process passkey and per-session MFA tests share
 * (session-mfa, the three attack files): the identities, the web origin,
 * the roles (per-session MFA, plain access, requesting and reviewing with
 * review_mfa), and the CLI's fresh check as the browser does it.
 */
import { createHash, randomBytes } from "node:crypto";
import { IDENTITY } from "./cluster.ts";
import type { MemoryCluster } from "./memory-cluster.ts";
import type { SoftAuthenticator } from "./soft-authenticator.ts";
import type { Caller } from "../../src/proxy/caller.ts";
import { relyingParty } from "../../src/proxy/login.ts";
import { beginBrowserStep, finishBrowserStep, startBrowserCheck } from "../../src/proxy/browser-flows.ts";

export const READER = IDENTITY("teleport-reader");
export const CONTRIB = IDENTITY("teleport-contributor");
/** The web UI's origin the software authenticator answers for (its host is the RP ID). */
export const ORIGIN = "https://proxy.example:3080";
export const PASSWORD = (user: string) => `correct horse battery ${user}`;

/** prod-mfa (READER, require_session_mfa), plain (CONTRIB), requester (may ask for READER), careful-reviewer (reviews READER with review_mfa). */
export const PASSKEY_ROLES = `kind: role
version: v7
metadata: {name: prod-mfa}
spec:
  allow: {app_labels: {'*': '*'}, azure_identities: ['${READER}']}
  options: {require_session_mfa: true}
---
kind: role
version: v7
metadata: {name: plain}
spec: {allow: {app_labels: {'*': '*'}, azure_identities: ['${CONTRIB}']}}
---
kind: role
version: v7
metadata: {name: requester}
spec: {allow: {app_labels: {'*': '*'}, request: {azure_identities: ['${READER}'], max_duration: 1h}}}
---
kind: role
version: v7
metadata: {name: careful-reviewer}
spec:
  allow: {review_requests: {azure_identities: ['${READER}']}}
  options: {review_mfa: true}
`;

export const sha256Hex = (s: string) => createHash("sha256").update(s).digest("hex");

/**
 * The CLI's fresh check as the browser does it: started by `caller` (the
 * CLI's secret kept here), answered by whoever holds `key` on `origin`; the
 * token the next call carries.
 */
export async function browserCheck(c: MemoryCluster, caller: Caller, key: SoftAuthenticator, what: Record<string, string>, origin = ORIGIN) {
  const rp = relyingParty(c.ctx, ORIGIN);
  const secret = randomBytes(32).toString("hex");
  const { attempt } = await startBrowserCheck(c.ctx, caller, { ...what, redirect_url: "http://127.0.0.1:9/callback", secret_hash: sha256Hex(secret) }, ORIGIN, c.registry);
  const options = await beginBrowserStep(c.ctx, rp, attempt, {});
  const { next } = await finishBrowserStep(c.ctx, rp, attempt, { response: await key.assert(options, origin) });
  return { attempt, code: new URL(next).searchParams.get("code")!, secret, next };
}
