/**
 * The first half of starting an app session's local proxy, the half that
 * needs no key and loads nothing heavy: which app, its stored facts, a port,
 * the token endpoint's secret, and the environment a client gets.
 * `azgate az` and `azgate exec` start their command right after it, and load
 * keys, mint certificates and dial the proxy while the command boots
 * (azure-session.ts `openLocalProxy`, the second half); the command's first
 * connection waits on the port until then. Python needs most of a second to
 * boot az: the proxy is ready long before az asks anything.
 */
import { AzgateError } from "../errors/index.ts";
import { reservePort, type ReservedPort } from "../net/listen.ts";
import type { CloudName } from "../azure/clouds.ts";
import { azureConfigDir, identityFactsProblem, listAppSessions, loadAppSession, type StoredAppSession } from "./app-store.ts";
import { currentLogin, type Profile } from "./profile.ts";
import { azureEnv, tokenSecret, type PythonTrust } from "./session-env.ts";
import { systemClock, type Clock } from "../util/clock.ts";
import { INVOCATION_PRODUCT, type Invocation } from "../azure/client-info.ts";

export interface PreparedSession {
  profile: Profile;
  stored: StoredAppSession;
  /** The loopback port, listened on; connections wait until the proxy behind it is up. */
  reserved: ReservedPort;
  secret: string;
  /** The variables a client needs (session-env.ts azureEnv). */
  env: Record<string, string>;
  app: string;
  identity: string;
  tenant: string;
  /** The identity's client ID, when apps login learnt it. */
  clientId?: string;
  cloud: CloudName;
  expires: Date;
  /** The clock the session runs by (chosen here, at the command's start). */
  clock: Clock;
  /** One `azgate az`/`exec` run: stamped on each request (the audit's command view) and carried in AZURE_HTTP_USER_AGENT. */
  invocation?: Invocation;
}

export async function prepareLocalSession(appName: string | undefined, port = 0, pythonTrust: PythonTrust = "local", clock: Clock = systemClock, invocation?: Invocation): Promise<PreparedSession> {
  // Logged in (the user's own key and certificate are there), though this half needs only the profile.
  const { profile } = await currentLogin();
  let app = appName;
  if (!app) {
    const sessions = await listAppSessions(profile);
    if (sessions.length === 0) throw new AzgateError("not_found", "please login using 'azgate apps login' first");
    const live = sessions.filter((x) => Date.parse(x.expires) > clock.now());
    if (live.length > 1) throw new AzgateError("bad_parameter", `multiple apps are available (${live.map((x) => x.app).join(", ")}), please specify one with --app`);
    // Only expired sessions: take the latest, so the error below says it expired rather than "not logged in".
    app = live[0]?.app ?? sessions.sort((a, b) => Date.parse(b.expires) - Date.parse(a.expires))[0].app;
  }
  const stored = await loadAppSession(profile, app);
  if (!stored) throw new AzgateError("not_found", `not logged into app "${app}"; run azgate apps login ${app}`);
  const damaged = identityFactsProblem(stored.info);
  if (damaged) throw new AzgateError("bad_request", `the stored session for app "${app}" is not usable: ${damaged}; run azgate apps login ${app} again`);
  // The app certificate's end, as the proxy said it at apps login (the certificate itself is parsed later, with the keys).
  const expires = new Date(stored.info.expires);
  if (!(expires.getTime() > clock.now())) throw new AzgateError("cert_expired", `your session for app "${app}" expired at ${expires.toISOString()}; run azgate apps login ${app} again`);
  const secret = tokenSecret();
  const reserved = await reservePort(port, "127.0.0.1");
  const cloud = stored.info.cloud ?? "Azure";
  const env = azureEnv({ port: reserved.port, secret, configDir: azureConfigDir(profile, app), caBundle: stored.bundleFile, localCa: stored.caFile, cloud, pythonTrust });
  // Every Azure SDK (and az) appends AZURE_HTTP_USER_AGENT to its User-Agent: Azure's own logs see the run too.
  if (invocation) env.AZURE_HTTP_USER_AGENT = [process.env.AZURE_HTTP_USER_AGENT, `${INVOCATION_PRODUCT}/${invocation.id}`].filter(Boolean).join(" ");
  return { profile, stored, reserved, secret, env, app, identity: stored.info.azure_identity, tenant: stored.info.tenant, clientId: stored.info.client_id, cloud, expires, clock, invocation };
}
