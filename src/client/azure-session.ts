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
import { currentLogin, type Profile } from "./profile.ts";
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

/** `apps login` without the az part: returns the chosen identity. */
export async function loginApp(s: UserSession, appName: string, identityFlag?: string): Promise<{ app: string; identity: string; expires: string }> {
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
  const res = await s.client.call<{ cert_pem: string; expires: string; tenant_id: string | null; client_id?: string | null; principal_id?: string | null }>("POST", "/v1/apps/login", {
    app: app.name,
    azure_identity: identity,
    public_key_pem: await publicKeyToPem(keys.publicKey),
  });
  // Stored, then printed into shells and tokens: a GUID or nothing, whatever the proxy (or an agent behind it) said.
  const malformed = identityFactsProblem({ tenant: res.tenant_id, client_id: res.client_id, principal_id: res.principal_id });
  if (malformed) throw new AzgateError("bad_request", `the proxy's answer to apps login is not usable: ${malformed}; nothing was stored`);
  const ca = await createLocalCa({ now: s.clock.date(), notAfter: new Date(res.expires) }, app.cloud);
  const info: AppSessionInfo = {
    app: app.name,
    cloud: app.cloud,
    azure_identity: identity,
    tenant: res.tenant_id ?? "00000000-0000-0000-0000-000000000000",
    ...(res.client_id ? { client_id: res.client_id } : {}),
    ...(res.principal_id ? { principal_id: res.principal_id } : {}),
    expires: res.expires,
  };
  await saveAppSession(s.profile, info, await privateKeyToPem(keys.privateKey), res.cert_pem, ca);
  return { app: app.name, identity, expires: res.expires };
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
export async function startLocalProxy(appName: string | undefined, port = 0, log?: (line: string) => void, pythonTrust: PythonTrust = "local", clock: Clock = systemClock, onAppUnavailable?: (first: boolean) => void): Promise<LocalProxySession> {
  return openLocalProxy(await prepareLocalSession(appName, port, pythonTrust, clock), log, onAppUnavailable);
}

/**
 * The second half (local-session.ts has the first): the keys, the local CA's
 * leaves and the tunnel to the proxy, served on the port already taken.
 * On failure the port is released.
 */
export async function openLocalProxy(prep: PreparedSession, log?: (line: string) => void, onAppUnavailable?: (first: boolean) => void): Promise<LocalProxySession> {
  try {
    const { stored, app } = prep;
    const expires = new x509.X509Certificate(stored.certPem).notAfter;
    if (expires.getTime() <= prep.clock.now()) throw new AzgateError("cert_expired", `your session for app "${app}" expired at ${expires.toISOString()}; run azgate apps login ${app} again`);
    const proxy = await serveLocalProxy({
      creds: { app, cloud: prep.cloud, identity: prep.identity, clientId: prep.clientId, principalId: stored.info.principal_id, tenant: prep.tenant, key: await importPrivateKeyPem(stored.keyPem), certPem: stored.certPem, expires },
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
        onReissued: (keyPem, certPem) => saveAppSessionCert(prep.profile, app, keyPem, certPem),
        onTrusted: (pems) => adoptProfileCas(prep.profile, pems),
      },
    });
    return { proxy, env: prep.env, app, identity: prep.identity, tenant: prep.tenant, clientId: prep.clientId, cloud: prep.cloud, expires, clock: prep.clock };
  } catch (e) {
    await prep.reserved.close();
    throw e;
  }
}
