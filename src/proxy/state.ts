import { AzgateError } from "../errors/index.ts";
import { acquireDirLock, ensureDir } from "../runtime/index.ts";
import { FileBackend } from "../storage/file.ts";
import { JsonLinesAuditSink } from "../audit/sink.ts";
import { MemoryReplayCache } from "../auth/replay-cache.ts";
import { parseDuration } from "../util/duration.ts";
import type { Config } from "../config/schema.ts";
import { initCluster } from "./cluster.ts";
import type { AuthSettings, ProxyContext } from "./context.ts";
import { KEYS } from "./keys.ts";

export function settingsFrom(config: Config): AuthSettings {
  return {
    secondFactor: config.auth.second_factor,
    inviteTtlMs: parseDuration(config.auth.invite_ttl),
    hostCertTtlMs: parseDuration(config.auth.host_cert_ttl),
    ssoLoginTimeoutMs: parseDuration(config.auth.sso_login_timeout),
    lockout: {
      maxAttempts: config.auth.lockout.max_attempts,
      windowMs: parseDuration(config.auth.lockout.window),
      lockMs: parseDuration(config.auth.lockout.lock_duration),
    },
  };
}

/**
 * Opens a data dir for exclusive use: lock, backend, audit, cluster CAs.
 * Without `clusterName` the dir must already hold a cluster.
 */
export async function openState(dataDir: string, opts: { clusterName?: string; settings: AuthSettings; purpose: string }): Promise<{ ctx: ProxyContext; close: () => Promise<void> }> {
  await ensureDir(dataDir, 0o700);
  const lock = await acquireDirLock(dataDir, opts.purpose);
  const closers: (() => Promise<unknown>)[] = [() => lock.release()];
  const close = async () => {
    for (const fn of closers.reverse()) await fn().catch(() => undefined);
  };
  try {
    const backend = await FileBackend.open(dataDir);
    closers.push(() => backend.close());
    const audit = await JsonLinesAuditSink.open(dataDir);
    closers.push(() => audit.close());
    let clusterName = opts.clusterName;
    if (!clusterName) {
      clusterName = (await backend.get<{ name: string }>(KEYS.clusterName))?.value.name;
      if (!clusterName) {
        throw new AzgateError("not_found", `data dir ${dataDir} holds no cluster yet; start the proxy once (azgate start --mode proxy --data-dir ${dataDir})`);
      }
    }
    const cluster = await initCluster(backend, clusterName);
    const ctx: ProxyContext = { backend, audit, cluster, settings: opts.settings, replay: new MemoryReplayCache(), localAdminSession: crypto.randomUUID() };
    return { ctx, close };
  } catch (e) {
    await close();
    throw e;
  }
}
