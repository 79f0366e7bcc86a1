import { AzgateError } from "../errors/index.ts";
import { NO_TRACING } from "../tracing/index.ts";
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
import type { AuthSettings, BotSettings, ProxyContext } from "./context.ts";
import { readFileSync } from "node:fs";
import { pemCertificates } from "../runtime/index.ts";
import { splitHostPort } from "../util/address.ts";
import { KEYS } from "./keys.ts";
import { migrateDataDir } from "../storage/data-dir-schema.ts";

/** Migrations are logged to stderr: the offline admin path's stdout is its output. */
const logMigration = (line: string) => console.error(`[azgate] ${line}`);

export function settingsFrom(config: Config): AuthSettings {
  return {
    secondFactor: config.auth.second_factor,
    requireSessionMfa: config.auth.require_session_mfa,
    inviteTtlMs: parseDuration(config.auth.invite_ttl),
    hostCertTtlMs: parseDuration(config.auth.host_cert_ttl),
    ssoLoginTimeoutMs: parseDuration(config.auth.sso_login_timeout),
    trustedProxies: config.proxy.trusted_proxies ?? [],
    ...(config.audit.retention ? { auditRetention: { text: config.audit.retention, ms: parseDuration(config.audit.retention, "audit.retention") } } : {}),
    bots: botSettings(config.bots),
    lockout: {
      maxAttempts: config.auth.lockout.max_attempts,
      windowMs: parseDuration(config.auth.lockout.window),
      lockMs: parseDuration(config.auth.lockout.lock_duration),
    },
  };
}

/** The bots section, with its CA files read (a file that cannot be read is a configuration error, said at start). */
function botSettings(bots: Config["bots"]): BotSettings {
  const cas = (file: string | undefined, key: string) => {
    if (!file) return [];
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      throw new AzgateError("config_invalid", `${key}: cannot read ${file}: ${(e as Error).message}`);
    }
    const pems = pemCertificates(text);
    if (pems.length === 0) throw new AzgateError("config_invalid", `${key}: ${file} holds no PEM certificate`);
    return pems;
  };
  const to = bots.issuer_connect_to;
  return {
    certTtlMs: parseDuration(bots.cert_ttl),
    audience: bots.audience,
    issuerCas: [...cas(bots.issuer_ca_file, "bots.issuer_ca_file"), ...cas(to?.ca_file, "bots.issuer_connect_to.ca_file")],
    connectTo: to ? (({ host, port }) => ({ host, port }))(splitHostPort(to.address, 443)) : undefined,
  };
}

/**
 * Opens a data dir for exclusive use: lock, backend, audit, cluster CAs.
 * Without `clusterName` the dir must already hold a cluster.
 */
export async function openState(
  dataDir: string,
  opts: { clusterName?: string; settings: AuthSettings; purpose: string; storage?: Config["storage"]; audit?: Config["audit"]; clock: Clock },
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
    // Under the lock, before anything reads the data dir: migrations run once, each logged (storage/data-dir-schema.ts).
    await migrateDataDir(dataDir, logMigration);
    const storage = await openStorage(dataDir, opts.storage ?? { type: "file" }, clock, opts.audit);
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
    const ctx: ProxyContext = { clock, backend, audit, cluster, reloadAuthorities: following.reload, settings: opts.settings, replay, localAdminSession: crypto.randomUUID(), metrics, tracing: NO_TRACING };
    return { ctx, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** The backend and audit log: files in the data dir, or PostgreSQL shared by every replica. */
async function openStorage(dataDir: string, storage: Config["storage"], clock: Clock, audit: Pick<Config["audit"], "max_file_mb"> = {}): Promise<{ backend: Backend; audit: AuditSink }> {
  if (storage.type === "file") {
    const backend = await FileBackend.open(dataDir, clock);
    try {
      return { backend, audit: await JsonLinesAuditSink.open(dataDir, clock, { maxFileBytes: audit.max_file_mb ? audit.max_file_mb * 1024 * 1024 : undefined }) };
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
    log: logMigration,
  });
  return { backend, audit: new PostgresAuditSink(backend.pool, clock) };
}
