/**
 * A bot's session on a CI runner, in memory only: its key pair, its
 * certificate (from a join with the CI's own token: ci-token.ts), its app
 * certificate and the local CA's key never touch a disk, and nothing is
 * stored under the home directory or the workspace. Its clients still need
 * files they read by path: the local CA's certificate (public), a CA bundle
 * and az's config directory, which go to a private temporary directory that
 * close() removes (or to --output-dir, kept and listed, when asked for).
 *
 * The certificates are short (bots.cert_ttl, 20 minutes by default): at two
 * thirds of their life the session renews the bot's certificate and then the
 * app certificate, for the same keys, and hands the local proxy the new one.
 * A refusal (a lock, the bot removed, its join token gone) is passed to
 * onRefused, which `bot proxy azure` ends on.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { establishTrust } from "../api/trust.ts";
import { ApiClient, type ApiTarget } from "../api/client.ts";
import type { AppView, BotCertificate } from "../api/types.ts";
import type { Invocation } from "../azure/client-info.ts";
import { INVOCATION_PRODUCT } from "../azure/client-info.ts";
import type { CloudName } from "../azure/clouds.ts";
import { AzgateError, isAzgateError } from "../errors/index.ts";
import { reservePort } from "../net/listen.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../pki/keys.ts";
import { ensureDir, writeFileAtomic } from "../runtime/fs.ts";
import type { Clock, Timer } from "../util/clock.ts";
import { identityFactsProblem } from "./app-store.ts";
import { detectJoinMethod, fetchCiToken, type CiTokenOptions } from "./ci-token.ts";
import { chooseAzureIdentity } from "./identity-choice.ts";
import { createLocalCa } from "./local-ca.ts";
import { serveLocalProxy, type RunningLocalProxy } from "./local-proxy.ts";
import { azureEnv, tokenSecret } from "./session-env.ts";
import type { JoinMethod } from "../resources/join-token.ts";

export interface BotOptions extends Partial<Pick<CiTokenOptions, "idTokenEnv" | "idTokenFile" | "serviceConnection" | "caPems">> {
  proxy: string;
  caPin?: string;
  proxyCaPems?: string[];
  /** The join token's name. */
  token: string;
  /** Detected from the CI's environment when absent. */
  method?: JoinMethod;
  /** Default: what the proxy says (bot_audience). */
  audience?: string;
  env: Record<string, string | undefined>;
  clock: Clock;
}

export interface BotLogin {
  target: ApiTarget;
  method: JoinMethod;
  /** The bot's name, and what the proxy recorded of the run. */
  bot: string;
  ci: Record<string, string>;
  /** An API client with the bot's current certificate. */
  client(): ApiClient;
  expires(): Date;
  sessionExpires: Date;
  /** A new certificate for the same key, within the session. */
  renew(): Promise<void>;
  clock: Clock;
}

export async function joinAsBot(o: BotOptions): Promise<BotLogin> {
  const method = o.method ?? detectJoinMethod(o.env);
  if (!method) throw new AzgateError("bad_parameter", "cannot tell which CI this is: pass --join-method github, azure_devops, gitlab or kubernetes");
  const { target, ping } = await establishTrust({ proxy: o.proxy, caPin: o.caPin, proxyCaPems: o.proxyCaPems });
  const audience = o.audience ?? ping.bot_audience ?? ping.cluster_name;
  const idToken = await fetchCiToken({ method, audience, env: o.env, idTokenEnv: o.idTokenEnv, idTokenFile: o.idTokenFile, serviceConnection: o.serviceConnection, caPems: o.caPems });
  const keys = await generateKeyPair();
  const publicKeyPem = await publicKeyToPem(keys.publicKey);
  const keyPem = await privateKeyToPem(keys.privateKey);
  const joined = await new ApiClient(target, undefined, o.clock).call<BotCertificate>("POST", "/v1/join", { token: o.token, join_method: method, id_token: idToken, public_key_pem: publicKeyPem });
  let current = joined;
  let client = new ApiClient(target, { keyPem, certPem: current.cert_pem }, o.clock);
  return {
    target,
    method,
    bot: joined.identity.bot?.name ?? o.token,
    ci: joined.identity.bot?.ci ?? {},
    client: () => client,
    expires: () => new Date(current.expires),
    sessionExpires: new Date(joined.session_expires),
    clock: o.clock,
    async renew() {
      current = await client.call<BotCertificate>("POST", "/v1/bots/renew", { public_key_pem: publicKeyPem });
      client = new ApiClient(target, { keyPem, certPem: current.cert_pem }, o.clock);
    },
  };
}

export interface BotAppSession {
  app: string;
  identity: string;
  tenant: string;
  clientId?: string;
  cloud: CloudName;
  /** The variables a client needs (session-env.ts azureEnv), with the run's invocation in AZURE_HTTP_USER_AGENT. */
  env: Record<string, string>;
  proxy: RunningLocalProxy;
  /** Where the clients' files are (a private temporary directory unless --output-dir), and what was written there. */
  dir: string;
  wrote: string[];
  close(): Promise<void>;
}

export interface BotAppOptions {
  app?: string;
  azureIdentity?: string;
  /** Keep the clients' files here (created 0700) instead of a temporary directory removed at close. */
  outputDir?: string;
  port?: number;
  invocation?: Invocation;
  log?: (line: string) => void;
  /** The proxy refused the session (a lock, the bot removed): at a request or a renewal. */
  onRefused?: (e: AzgateError) => void;
}

export async function openBotApp(bot: BotLogin, o: BotAppOptions = {}): Promise<BotAppSession> {
  const { clock } = bot;
  const { items } = await bot.client().call<{ items: AppView[] }>("GET", "/v1/apps");
  const names = [...new Set(items.map((a) => a.name))];
  const appName = o.app ?? (names.length === 1 ? names[0] : undefined);
  if (!appName) throw new AzgateError("bad_parameter", names.length ? `the bot may use several apps (${names.join(", ")}): name one with --app` : `no app is open to bot "${bot.bot}": its roles allow none, or no agent serves one now`);
  const app = items.find((a) => a.name === appName);
  if (!app) throw new AzgateError("not_found", `app "${appName}" is not open to bot "${bot.bot}" (its roles, or no agent serves it now)`);
  const identity = chooseAzureIdentity(app.azure_identities, o.azureIdentity);
  const appKeys = await generateKeyPair();
  const appPublic = await publicKeyToPem(appKeys.publicKey);
  type AppLogin = { cert_pem: string; expires: string; tenant_id: string | null; client_id?: string | null; principal_id?: string | null };
  const appLogin = () => bot.client().call<AppLogin>("POST", "/v1/apps/login", { app: app.name, azure_identity: identity, public_key_pem: appPublic });
  const login = await appLogin();
  const malformed = identityFactsProblem({ tenant: login.tenant_id, client_id: login.client_id, principal_id: login.principal_id });
  if (malformed) throw new AzgateError("bad_request", `the proxy's answer to apps login is not usable: ${malformed}`);

  // The local CA lasts the bot's session: clients read its certificate once, and renewals keep it.
  const ca = await createLocalCa({ now: clock.date(), notAfter: bot.sessionExpires }, app.cloud);
  const temporary = !o.outputDir;
  const dir = o.outputDir ? path.resolve(o.outputDir) : mkdtempSync(path.join(os.tmpdir(), "azgate-bot-"));
  const removeDir = () => temporary && rmSync(dir, { recursive: true, force: true });
  try {
    await ensureDir(dir, 0o700);
    const caFile = path.join(dir, "localca.pem");
    const bundleFile = path.join(dir, "ca-bundle.pem");
    const configDir = path.join(dir, "azure");
    await writeFileAtomic(caFile, ca.certPem, 0o600);
    // Python's requests replaces its roots with the bundle: the local CA plus the system's, for other hosts it reaches.
    const system = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"].find((f) => existsSync(f));
    await writeFileAtomic(bundleFile, ca.certPem + (system ? readFileSync(system, "utf8") : ""), 0o600);
    await ensureDir(configDir, 0o700);
    const wrote = [`${caFile} (the local CA's certificate; its key stays in memory)`, `${bundleFile} (that certificate and the system's roots)`, `${configDir}/ (az's configuration directory)`];

    const reserved = await reservePort(o.port ?? 0, "127.0.0.1");
    const secret = tokenSecret({});
    const cloud = app.cloud;
    const env = azureEnv({ port: reserved.port, secret, configDir, caBundle: bundleFile, localCa: caFile, cloud, pythonTrust: "system" });
    if (o.invocation) env.AZURE_HTTP_USER_AGENT = [process.env.AZURE_HTTP_USER_AGENT, `${INVOCATION_PRODUCT}/${o.invocation.id}`].filter(Boolean).join(" ");
    const tenant = login.tenant_id ?? app.tenant_id ?? "00000000-0000-0000-0000-000000000000";
    const proxy = await serveLocalProxy({
      creds: { app: app.name, cloud, identity, clientId: login.client_id ?? undefined, principalId: login.principal_id ?? undefined, tenant, key: appKeys.privateKey, certPem: login.cert_pem, expires: new Date(login.expires) },
      target: bot.target,
      ca,
      secret,
      reserved,
      log: o.log,
      clock,
      invocation: o.invocation,
      onRefused: o.onRefused,
    }).catch(async (e) => {
      await reserved.close();
      throw e;
    });

    // Renewal at two thirds of the certificate's remaining life: the bot's, then the app's, then the local proxy's.
    let timer: Timer | null = null;
    let closed = false;
    const schedule = (expires: Date) => {
      if (closed) return;
      const wait = Math.max(1_000, ((expires.getTime() - clock.now()) * 2) / 3);
      timer = clock.after(wait, () => void renew());
      timer.unref();
    };
    const renew = async () => {
      try {
        await bot.renew();
        const again = await appLogin();
        proxy.renew({ certPem: again.cert_pem, expires: new Date(again.expires) });
        o.log?.(`renewed the bot's certificates until ${again.expires}`);
        schedule(new Date(again.expires));
      } catch (e) {
        // A refusal of the bot itself (a lock, the bot or its join token gone, its roles changed) ends the
        // session; anything else (no agent serving the app for a moment, the proxy unreachable) is retried.
        const refused = isAzgateError(e) && (e.status === 401 || e.status === 403);
        o.log?.(`renewing the bot's certificates failed: ${(e as Error).message}`);
        if (refused) o.onRefused?.(e as AzgateError);
        // The proxy could not be reached: try again while the certificate lasts.
        else if (bot.expires().getTime() - clock.now() > 30_000) {
          timer = clock.after(30_000, () => void renew());
          timer.unref();
        }
      }
    };
    schedule(new Date(login.expires));

    return {
      app: app.name,
      identity,
      tenant,
      clientId: login.client_id ?? undefined,
      cloud,
      env,
      proxy,
      dir,
      wrote: temporary ? [] : wrote,
      async close() {
        closed = true;
        (timer as Timer | null)?.cancel();
        await proxy.close();
        removeDir();
      },
    };
  } catch (e) {
    removeDir();
    throw e;
  }
}
