// The admin commands' path to a data directory (`--data-dir`), kept apart from
// connect.ts because it loads the proxy: through the proxy running on it as
// the local admin, or, with none running, the proxy's API in this process.
import path from "node:path";
import { AppRegistry } from "../proxy/registry.ts";
import { systemClock } from "../util/clock.ts";
import { AzgateError } from "../errors/index.ts";
import { readLockHolder } from "../runtime/index.ts";
import { ApiClient } from "../api/client.ts";
import { proxyBaseUrl } from "../api/trust.ts";
import { loadConfig } from "../config/load.ts";
import { createApi } from "../proxy/api.ts";
import { issueLocalAdmin, readLocalAdmin } from "../proxy/local-admin.ts";
import { openState, settingsFrom } from "../proxy/state.ts";
import { KEYS } from "../proxy/keys.ts";
import type { AdminConnection } from "./connect.ts";

export async function connectLocal(dataDir: string, configFile?: string): Promise<AdminConnection> {
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
  const { ctx, close } = await openState(dataDir, { settings: settingsFrom(config), purpose: "azgate admin", storage: config.storage, audit: config.audit, clock: systemClock });
  const stored = await ctx.backend.get<{ url: string }>(KEYS.publicUrl);
  // Offline: no agents are connected, so the app registry is empty.
  const api = createApi(ctx, { publicUrl: () => stored?.value.url ?? proxyBaseUrl("localhost"), registry: new AppRegistry(ctx.clock) });
  const creds = await issueLocalAdmin(ctx.cluster.user, ctx.localAdminSession, ctx.clock.date());
  return { client: new ApiClient({ baseUrl: "https://local.azgate", fetch: (req) => api.fetch(req) }, creds), close };
}
