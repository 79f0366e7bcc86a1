import { AppRegistry } from "../proxy/registry.ts";
import { systemClock } from "../util/clock.ts";
import path from "node:path";
import { AzgateError } from "../errors/index.ts";
import { readLockHolder } from "../runtime/index.ts";
import { ApiClient } from "../api/client.ts";
import { loadCredentials, loadProfile } from "../client/profile.ts";
import { profileApiClient } from "../client/rotation.ts";
import { proxyBaseUrl } from "../api/trust.ts";
import { loadConfig } from "../config/load.ts";
import { createApi } from "../proxy/api.ts";
import { issueLocalAdmin, readLocalAdmin } from "../proxy/local-admin.ts";
import { openState, settingsFrom } from "../proxy/state.ts";
import { KEYS } from "../proxy/keys.ts";
import { run } from "./run.ts";

export interface AdminArgs {
  "data-dir"?: string;
  config?: string;
}

/** Runs `fn` with a connection to the cluster and always closes it. */
export function withAdmin<A extends AdminArgs>(fn: (conn: AdminConnection, argv: A) => Promise<void>) {
  return run<A>(async (argv) => {
    const conn = await connectAdmin({ dataDir: argv["data-dir"], config: argv.config });
    try {
      await fn(conn, argv);
    } finally {
      await conn.close();
    }
  });
}

export interface AdminConnection {
  client: ApiClient;
  close(): Promise<void>;
}

/**
 * How admin commands reach the cluster:
 *  - `--data-dir` with a proxy running on it: through that proxy, as the local admin;
 *  - `--data-dir` with no proxy: the same API, in this process, on the locked backend;
 *  - otherwise: through the proxy of the current login profile.
 */
export async function connectAdmin(opts: { dataDir?: string; config?: string }): Promise<AdminConnection> {
  if (opts.dataDir) return connectLocal(path.resolve(opts.dataDir), opts.config);
  return { client: await profileClient(), close: async () => undefined };
}

export async function profileClient(): Promise<ApiClient> {
  const profile = await loadProfile();
  const creds = profile ? await loadCredentials(profile) : null;
  if (!profile || !creds) {
    throw new AzgateError("unauthenticated", "not logged in; run azgate login --proxy HOST:PORT --user NAME (or, on the proxy host, pass --data-dir)");
  }
  // It follows a rotation of the cluster's CAs at this call (client/rotation.ts).
  return profileApiClient(profile, creds, systemClock);
}

async function connectLocal(dataDir: string, configFile?: string): Promise<AdminConnection> {
  const holder = await readLockHolder(path.join(dataDir, "azgate.lock"));
  if (holder) {
    let creds;
    try {
      creds = await readLocalAdmin(dataDir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EACCES") throw new AzgateError("access_denied", `only the owner of ${dataDir} can use it for admin commands`);
      throw e;
    }
    if (!creds) throw new AzgateError("backend_locked", `${dataDir} is held by pid ${holder.pid} (${holder.purpose}), which offers no local admin access; wait for it or stop it`);
    return { client: new ApiClient({ baseUrl: creds.url, cert_sha256: creds.cert_sha256, ca_pem: creds.ca_pem }, { keyPem: creds.key_pem, certPem: creds.cert_pem }), close: async () => undefined };
  }
  const config = loadConfig({ file: configFile, env: process.env });
  // The offline admin path is a start of its own: it chooses the machine's clock (util/clock.ts).
  const { ctx, close } = await openState(dataDir, { settings: settingsFrom(config), purpose: "azgate admin", storage: config.storage, clock: systemClock });
  const stored = await ctx.backend.get<{ url: string }>(KEYS.publicUrl);
  // Offline: no agents are connected, so the app registry is empty.
  const api = createApi(ctx, { publicUrl: () => stored?.value.url ?? proxyBaseUrl("localhost"), registry: new AppRegistry(ctx.clock) });
  const creds = await issueLocalAdmin(ctx.cluster.user, ctx.localAdminSession, ctx.clock.date());
  return { client: new ApiClient({ baseUrl: "https://local.azgate", fetch: (req) => api.fetch(req) }, creds), close };
}
