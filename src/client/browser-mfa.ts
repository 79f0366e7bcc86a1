/**
 * Passkeys from the CLI: WebAuthn needs a browser, so the proxy's page
 * /web/cli/ID does it and the result comes back to this process's loopback
 * (sso-login.ts throughBrowser: a secret only this process holds, a one-time
 * code, taken together once). A login ends in a certificate for a key made
 * here; a fresh check (per-session MFA, a review) ends in a token the next
 * call carries.
 */
import { ApiClient, type ApiTarget } from "../api/client.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../pki/keys.ts";
import { throughBrowser } from "./sso-login.ts";

interface BrowserOptions {
  target: ApiTarget;
  /** "none" prints the URL only; otherwise the system's browser (or $BROWSER) is opened. */
  browser?: string;
  say: (line: string) => void;
  pasteFrom?: NodeJS.ReadableStream;
}

/** `azgate login --mfa-mode browser`: the password and a passkey in the browser, a certificate here. */
export async function browserLogin(o: BrowserOptions & { user?: string; ttlMs?: number }): Promise<{ user: string; keyPem: string; certPem: string }> {
  const keys = await generateKeyPair();
  const publicKeyPem = await publicKeyToPem(keys.publicKey);
  const api = new ApiClient(o.target);
  const res = await throughBrowser(o, {
    failed: "login_failed",
    again: "run azgate login again",
    done: "Login successful. You can close this window and return to the terminal.",
    start: (redirect_url, secret_hash) => api.call("POST", "/v1/auth/browser/login", { public_key_pem: publicKeyPem, redirect_url, secret_hash, ttl_ms: o.ttlMs, user: o.user }),
    finish: (attempt, code, secret) => api.call<{ cert_pem: string; identity: { name: string } }>("POST", "/v1/auth/browser/pickup", { attempt, code, secret }),
  });
  return { user: res.identity.name, keyPem: await privateKeyToPem(keys.privateKey), certPem: res.cert_pem };
}

/** What a fresh check is for: an app session's identity, or a review. */
export type CheckFor = { app: string; azure_identity: string } | { request: string };

/** The token a call that needs a fresh check carries (`mfa` in its body). */
export interface MfaToken {
  attempt: string;
  code: string;
  secret: string;
}

/** A fresh passkey check in the browser for the signed-in user, for one thing. */
export async function browserCheck(client: ApiClient, o: Omit<BrowserOptions, "target">, what: CheckFor): Promise<MfaToken> {
  return throughBrowser(o, {
    failed: "mfa_required",
    again: "run the command again",
    done: "Confirmed. You can close this window and return to the terminal.",
    start: (redirect_url, secret_hash) => client.call("POST", "/v1/mfa/browser", { ...what, redirect_url, secret_hash }),
    // The code is not used here: the call that needs the check takes it (once) with the secret.
    finish: async (attempt, code, secret) => ({ attempt, code, secret }),
  });
}
