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
import type { CloudName } from "../azure/clouds.ts";
import { loadCredentials, loadProfile, profileTarget, type Profile } from "./profile.ts";
import { ApiClient, type ApiTarget } from "../api/client.ts";
import { createLocalCa } from "./local-ca.ts";
import { azureConfigDir, listAppSessions, loadAppSession, saveAppSession, type AppSessionInfo } from "./app-store.ts";
import { chooseAzureIdentity } from "./identity-choice.ts";
import { serveLocalProxy, type RunningLocalProxy } from "./local-proxy.ts";
import { azureEnv, tokenSecret, type PythonTrust } from "./session-env.ts";

export interface UserSession {
  profile: Profile;
  client: ApiClient;
  target: ApiTarget;
}

/** The current login profile with its credentials. */
export async function currentSession(): Promise<UserSession> {
  const profile = await loadProfile();
  const creds = profile ? await loadCredentials(profile) : null;
  if (!profile || !creds) throw new AzgateError("unauthenticated", "not logged in; run azgate login --proxy HOST:PORT --user NAME");
  const target = profileTarget(profile);
  return { profile, client: new ApiClient(target, creds), target };
}

/** `apps login` without the az part: returns the chosen identity. */
export async function loginApp(s: UserSession, appName: string, identityFlag?: string): Promise<{ app: string; identity: string; expires: string }> {
  const { items } = await s.client.call<{ items: AppView[] }>("GET", "/v1/apps");
  const app = items.find((i) => i.name === appName);
  if (!app) throw new AzgateError("not_found", `app "${appName}" not found; azgate apps ls shows the apps you can use`);
  const identity = chooseAzureIdentity(app.azure_identities, identityFlag);
  const keys = await generateKeyPair();
  const res = await s.client.call<{ cert_pem: string; expires: string; tenant_id: string | null; client_id?: string | null; principal_id?: string | null }>("POST", "/v1/apps/login", {
    app: app.name,
    azure_identity: identity,
    public_key_pem: await publicKeyToPem(keys.publicKey),
  });
  const ca = await createLocalCa(new Date(res.expires), app.cloud);
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

export interface LocalProxySession {
  proxy: RunningLocalProxy;
  /** The variables a client needs (see azureEnv). */
  env: Record<string, string>;
  app: string;
  identity: string;
  tenant: string;
  /** The identity's client ID, when apps login learnt it. */
  clientId?: string;
  cloud: CloudName;
  expires: Date;
}

/** Starts the local proxy for an app session stored on disk (the only one, when `appName` is not given); the caller closes it. */
export async function startLocalProxy(s: UserSession, appName: string | undefined, port = 0, log?: (line: string) => void, pythonTrust: PythonTrust = "local"): Promise<LocalProxySession> {
  let app = appName;
  if (!app) {
    const sessions = await listAppSessions(s.profile);
    if (sessions.length === 0) throw new AzgateError("not_found", "please login using 'azgate apps login' first");
    const live = sessions.filter((x) => Date.parse(x.expires) > Date.now());
    if (live.length > 1) throw new AzgateError("bad_parameter", `multiple apps are available (${live.map((x) => x.app).join(", ")}), please specify one with --app`);
    // Only expired sessions: take the latest, so the error below says it expired rather than "not logged in".
    app = live[0]?.app ?? sessions.sort((a, b) => Date.parse(b.expires) - Date.parse(a.expires))[0].app;
  }
  const stored = await loadAppSession(s.profile, app);
  if (!stored) throw new AzgateError("not_found", `not logged into app "${app}"; run azgate apps login ${app}`);
  const expires = new x509.X509Certificate(stored.certPem).notAfter;
  if (expires.getTime() <= Date.now()) throw new AzgateError("cert_expired", `your session for app "${app}" expired at ${expires.toISOString()}; run azgate apps login ${app} again`);
  const secret = tokenSecret();
  const proxy = await serveLocalProxy({
    creds: { app, cloud: stored.info.cloud ?? "Azure", identity: stored.info.azure_identity, clientId: stored.info.client_id, principalId: stored.info.principal_id, tenant: stored.info.tenant, key: await importPrivateKeyPem(stored.keyPem), certPem: stored.certPem, expires },
    target: s.target,
    ca: stored.ca,
    secret,
    port,
    log,
  });
  const cloud = stored.info.cloud ?? "Azure";
  const env = azureEnv({ port: proxy.port, secret, configDir: azureConfigDir(s.profile, app), caBundle: stored.bundleFile, localCa: stored.caFile, cloud, pythonTrust });
  return { proxy, env, app, identity: stored.info.azure_identity, tenant: stored.info.tenant, clientId: stored.info.client_id, cloud, expires };
}
