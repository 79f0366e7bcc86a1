import { AzgateError } from "../errors/index.ts";
import { acquireDirLock, ensureDir } from "../runtime/index.ts";
import { readFile } from "node:fs/promises";
import { FileBackend } from "../storage/file.ts";
import { PostgresBackend } from "../storage/postgres.ts";
import { entraPassword } from "../storage/postgres-auth.ts";
import type { Backend } from "../storage/backend.ts";
import { JsonLinesAuditSink, type AuditSink } from "../audit/sink.ts";
import { PostgresAuditSink } from "../audit/postgres-sink.ts";
import { registeredSink } from "../audit/registered.ts";
import { timedBackend } from "../storage/timed.ts";
import { proxyMetrics } from "../metrics/proxy.ts";
import { BackendReplayCache, MemoryReplayCache } from "../auth/replay-cache.ts";
import { parseDuration } from "../util/duration.ts";
import type { Config } from "../config/schema.ts";
import type { Clock } from "../util/clock.ts";
import { followAuthorities, initCluster } from "./cluster.ts";
import type { AuthSettings, ProxyContext } from "./context.ts";
import { KEYS } from "./keys.ts";

export function settingsFrom(config: Config): AuthSettings {
  return {
    secondFactor: config.auth.second_factor,
    inviteTtlMs: parseDuration(config.auth.invite_ttl),
    hostCertTtlMs: parseDuration(config.auth.host_cert_ttl),
    ssoLoginTimeoutMs: parseDuration(config.auth.sso_login_timeout),
    trustedProxies: config.proxy.trusted_proxies ?? [],
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
export async function openState(
  dataDir: string,
  opts: { clusterName?: string; settings: AuthSettings; purpose: string; storage?: Config["storage"]; clock: Clock },
): Promise<{ ctx: ProxyContext; close: () => Promise<void> }> {
  await ensureDir(dataDir, 0o700);
  const lock = await acquireDirLock(dataDir, opts.purpose);
  const closers: (() => Promise<unknown>)[] = [() => lock.release()];
  const close = async () => {
    for (const fn of closers.reverse()) await fn().catch(() => undefined);
  };
  try {
    const metrics = proxyMetrics();
    const { clock } = opts;
    const storage = await openStorage(dataDir, opts.storage ?? { type: "file" }, clock);
    const backend = timedBackend(storage.backend, (op, seconds) => metrics.backend.observe({ op }, seconds));
    // Every event the services emit must be one of the registry's (audit/events.ts).
    const audit = registeredSink(storage.audit);
    closers.push(() => backend.close());
    closers.push(() => audit.close());
    let clusterName = opts.clusterName;
    if (!clusterName) {
      clusterName = (await backend.get<{ name: string }>(KEYS.clusterName))?.value.name;
      if (!clusterName) {
        throw new AzgateError("not_found", `data dir ${dataDir} holds no cluster yet; start the proxy once (azgate start --mode proxy --data-dir ${dataDir})`);
      }
    }
    const cluster = await initCluster(backend, clusterName, clock);
    // A rotation written by any replica (or the offline admin path) reaches this one's keys and trust (pki/rotation.ts).
    const following = followAuthorities(cluster, backend, clock);
    closers.push(async () => following.stop());
    const replay = opts.storage?.type === "postgres" ? new BackendReplayCache(backend) : new MemoryReplayCache(clock);
    const ctx: ProxyContext = { clock, backend, audit, cluster, reloadAuthorities: following.reload, settings: opts.settings, replay, localAdminSession: crypto.randomUUID(), metrics };
    return { ctx, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** The backend and audit log: files in the data dir, or PostgreSQL shared by every replica. */
async function openStorage(dataDir: string, storage: Config["storage"], clock: Clock): Promise<{ backend: Backend; audit: AuditSink }> {
  if (storage.type === "file") {
    const backend = await FileBackend.open(dataDir, clock);
    try {
      return { backend, audit: await JsonLinesAuditSink.open(dataDir, clock) };
    } catch (e) {
      await backend.close();
      throw e;
    }
  }
  let caPem: string | undefined;
  if (storage.ca_file) {
    try {
      caPem = await readFile(storage.ca_file, "utf8");
    } catch (e) {
      throw new AzgateError("config_invalid", `storage.ca_file: ${(e as Error).message}`);
    }
  }
  const backend = await PostgresBackend.open({
    connectionString: storage.conn_string,
    caPem,
    password: storage.auth === "entra" ? entraPassword(clock) : undefined,
    maxConnections: storage.max_connections,
    clock,
  });
  return { backend, audit: new PostgresAuditSink(backend.pool, clock) };
}
