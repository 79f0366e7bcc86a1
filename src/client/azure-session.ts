/**
 * The workstation's Azure app session, shared by the CLI (`apps login`,
 * `azgate az`, `proxy azure`) and `demo --check`: log into an app (choose the
 * identity, get the app certificate, make the local CA, store them), and
 * open the local proxy for a stored session.
 */
import { x509 } from "../pki/x509.ts";
import { AzgateError } from "../errors/index.ts";
import { generateKeyPair, importPrivateKeyPem, privateKeyToPem, publicKeyToPem } from "../pki/keys.ts";
import type { AppView } from "../api/types.ts";
import { currentLogin, loadCredentials, type Profile } from "./profile.ts";
import { browserCheck } from "./browser-mfa.ts";
import { profileTarget } from "./target.ts";
import type { ApiClient, ApiTarget } from "../api/client.ts";
import { adoptProfileCas, profileApiClient } from "./rotation.ts";
import { createLocalCa } from "./local-ca.ts";
import { identityFactsProblem, saveAppSession, saveAppSessionCert, type AppSessionInfo } from "./app-store.ts";
import { chooseAzureIdentity } from "./identity-choice.ts";
import { requestCommand } from "../resources/access-request.ts";
import { serveLocalProxy, type RunningLocalProxy } from "./local-proxy.ts";
import type { PythonTrust } from "./session-env.ts";
import { prepareLocalSession, type PreparedSession } from "./local-session.ts";
import { systemClock, type Clock } from "../util/clock.ts";

export interface UserSession {
  profile: Profile;
  client: ApiClient;
  target: ApiTarget;
  /** The clock this command runs by (its start chose it: util/clock.ts). */
  clock: Clock;
}

/** The current login profile with its credentials; a command's start, so the clock is chosen here. */
export async function currentSession(clock: Clock = systemClock): Promise<UserSession> {
  const { profile, credentials } = await currentLogin();
  const target = profileTarget(profile);
  // The client follows a rotation of the cluster's CAs at its calls (client/rotation.ts).
  return { profile, client: profileApiClient(profile, credentials, clock), target, clock };
}

/** How a fresh passkey check is asked for (the browser's page; where the URL and messages go). */
export interface MfaPrompt {
  browser?: string;
  say: (line: string) => void;
}

const stderrPrompt: MfaPrompt = { say: (line) => process.stderr.write(`${line}\n`) };

type AppLoginAnswer = { cert_pem: string; expires: string; session_expires?: string; session_mfa?: boolean; tenant_id: string | null; client_id?: string | null; principal_id?: string | null };

/**
 * POST /v1/apps/login; when a role asks for a fresh passkey check
 * (mfa_required without one given), the check in the browser, then again
 * with it. `inMemory`: the certificate is kept in this process only.
 */
async function appLogin(client: ApiClient, body: { app: string; azure_identity: string; public_key_pem: string }, prompt: MfaPrompt, inMemory = false): Promise<AppLoginAnswer> {
  try {
    return await client.call<AppLoginAnswer>("POST", "/v1/apps/login", { ...body, in_memory: inMemory });
  } catch (e) {
    if (!(e instanceof AzgateError) || e.code !== "mfa_required" || !/asks for a fresh check/.test(e.message)) throw e;
    prompt.say(e.message);
    const mfa = await browserCheck(client, { browser: prompt.browser, say: prompt.say }, { app: body.app, azure_identity: body.azure_identity });
    return client.call<AppLoginAnswer>("POST", "/v1/apps/login", { ...body, in_memory: inMemory, mfa });
  }
}

/** `apps login` without the az part: returns the chosen identity. */
export async function loginApp(s: UserSession, appName: string, identityFlag?: string, prompt: MfaPrompt = stderrPrompt): Promise<{ app: string; identity: string; expires: string }> {
  const { items } = await s.client.call<{ items: AppView[] }>("GET", "/v1/apps");
  const app = items.find((i) => i.name === appName);
  if (!app) throw new AzgateError("not_found", `app "${appName}" not found; azgate apps ls shows the apps you can use`);
  let identity: string;
  try {
    identity = chooseAzureIdentity(app.azure_identities, identityFlag);
  } catch (e) {
    throw await withRequestHint(s, app.name, identityFlag, e);
  }
  const keys = await generateKeyPair();
  const res = await appLogin(s.client, { app: app.name, azure_identity: identity, public_key_pem: await publicKeyToPem(keys.publicKey) }, prompt);
  // Per-session MFA: the certificate stored lives a minute; the session (and its local CA) lives as long as the login.
  const sessionEnd = res.session_mfa && res.session_expires ? res.session_expires : res.expires;
  // Stored, then printed into shells and tokens: a GUID or nothing, whatever the proxy (or an agent behind it) said.
  const malformed = identityFactsProblem({ tenant: res.tenant_id, client_id: res.client_id, principal_id: res.principal_id });
  if (malformed) throw new AzgateError("bad_request", `the proxy's answer to apps login is not usable: ${malformed}; nothing was stored`);
  const ca = await createLocalCa({ now: s.clock.date(), notAfter: new Date(sessionEnd) }, app.cloud);
  const info: AppSessionInfo = {
    app: app.name,
    cloud: app.cloud,
    azure_identity: identity,
    tenant: res.tenant_id ?? "00000000-0000-0000-0000-000000000000",
    ...(res.client_id ? { client_id: res.client_id } : {}),
    ...(res.principal_id ? { principal_id: res.principal_id } : {}),
    expires: sessionEnd,
    ...(res.session_mfa ? { session_mfa: true } : {}),
  };
  await saveAppSession(s.profile, info, await privateKeyToPem(keys.privateKey), res.cert_pem, ca);
  return { app: app.name, identity, expires: sessionEnd };
}

/**
 * A session with per-session MFA, served by this process: a fresh passkey
 * check and a certificate for a key made here, both kept in memory only, for
 * the session's life (the one on disk lives a minute: a copied file is soon
 * worth nothing, while a long proxy azure keeps working).
 */
async function inMemoryCreds(prep: PreparedSession, prompt: MfaPrompt): Promise<{ key: CryptoKey; certPem: string; expires: Date }> {
  const credentials = await loadCredentials(prep.profile);
  if (!credentials) throw new AzgateError("unauthenticated", "not logged in; run azgate login");
  const client = profileApiClient(prep.profile, credentials, prep.clock);
  const keys = await generateKeyPair();
  const res = await appLogin(client, { app: prep.app, azure_identity: prep.identity, public_key_pem: await publicKeyToPem(keys.publicKey) }, prompt, true);
  return { key: keys.privateKey, certPem: res.cert_pem, expires: new Date(res.expires) };
}

/** An identity the roles let the user request (not use): the refusal says how, with the exact command. */
async function withRequestHint(s: UserSession, app: string, flag: string | undefined, e: unknown): Promise<unknown> {
  if (!flag || !(e instanceof AzgateError)) return e;
  const terms = await s.client.call<{ requestable: boolean; azure_identity?: string; max_duration_ms?: number; reason_required?: boolean; ticket_required?: boolean; ambiguous?: string }>("GET", `/v1/requests/terms?azure_identity=${encodeURIComponent(flag)}`).catch(() => ({ requestable: false }) as { requestable: false; ambiguous?: undefined });
  // A name several identities have (the proxy's one answer, as request create gives it): which, so the user can choose.
  if (terms.ambiguous) return new AzgateError("bad_parameter", terms.ambiguous);
  if (!terms.requestable) return e;
  const command = requestCommand(app, flag, terms);
  return new AzgateError("access_denied", `you have no standing access to Azure identity "${terms.azure_identity}", but you may request it:\n  ${command}\nOnce a reviewer approves it, run azgate apps login ${app} --azure-identity ${flag} again.`);
}

export interface LocalProxySession extends Omit<PreparedSession, "profile" | "stored" | "reserved" | "secret"> {
  proxy: RunningLocalProxy;
}

/** Starts the local proxy for an app session stored on disk (the only one, when `appName` is not given); the caller closes it. */
export async function startLocalProxy(appName: string | undefined, port = 0, log?: (line: string) => void, pythonTrust: PythonTrust = "local", clock: Clock = systemClock, onAppUnavailable?: (first: boolean) => void, prompt: MfaPrompt | null = stderrPrompt): Promise<LocalProxySession> {
  return openLocalProxy(await prepareLocalSession(appName, port, pythonTrust, clock), log, onAppUnavailable, prompt);
}

/**
 * The second half (local-session.ts has the first): the keys, the local CA's
 * leaves and the tunnel to the proxy, served on the port already taken.
 * On failure the port is released.
 */
export async function openLocalProxy(prep: PreparedSession, log?: (line: string) => void, onAppUnavailable?: (first: boolean) => void, prompt: MfaPrompt | null = stderrPrompt): Promise<LocalProxySession> {
  try {
    const { stored, app } = prep;
    // prompt null: the caller just made the stored certificate (apps login's az login) and serves within its minute.
    const inMemory = stored.info.session_mfa && prompt ? await inMemoryCreds(prep, prompt) : null;
    const expires = inMemory?.expires ?? new x509.X509Certificate(stored.certPem).notAfter;
    if (expires.getTime() <= prep.clock.now()) throw new AzgateError("cert_expired", `your session for app "${app}" expired at ${expires.toISOString()}; run azgate apps login ${app} again`);
    const proxy = await serveLocalProxy({
      creds: { app, cloud: prep.cloud, identity: prep.identity, clientId: prep.clientId, principalId: stored.info.principal_id, tenant: prep.tenant, key: inMemory?.key ?? (await importPrivateKeyPem(stored.keyPem)), certPem: inMemory?.certPem ?? stored.certPem, expires },
      target: profileTarget(prep.profile),
      ca: stored.ca,
      secret: prep.secret,
      reserved: prep.reserved,
      log,
      clock: prep.clock,
      invocation: prep.invocation,
      onAppUnavailable,
      // A rotation of the cluster's CAs while it runs: the reissued key and certificate, and the host CAs trusted, are kept on disk.
      rotation: {
        cluster: prep.profile.cluster,
        proxy: prep.profile.proxy,
        // An in-memory certificate stays there when reissued.
        onReissued: (keyPem, certPem) => (inMemory ? Promise.resolve() : saveAppSessionCert(prep.profile, app, keyPem, certPem)),
        onTrusted: (pems) => adoptProfileCas(prep.profile, pems),
      },
    });
    return { proxy, env: prep.env, app, identity: prep.identity, tenant: prep.tenant, clientId: prep.clientId, cloud: prep.cloud, expires, clock: prep.clock };
  } catch (e) {
    await prep.reserved.close();
    throw e;
  }
}
