/**
 * Restoring a backup (`admin restore`, `admin backend clone`) into a new
 * data dir or an empty database: the backend opened bare (no cluster is
 * made: the backup holds the cluster's name and CAs), under the data dir's
 * lock and at the current schema, refused if anything is there already
 * (storage/backup.ts restoreInto), and the restore recorded in the target's
 * own audit log.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { audit } from "../audit/events.ts";
import { PostgresAuditSink } from "../audit/postgres-sink.ts";
import { registeredSink } from "../audit/registered.ts";
import { JsonLinesAuditSink, type AuditSink } from "../audit/sink.ts";
import type { Config } from "../config/schema.ts";
import { AzgateError } from "../errors/index.ts";
import { acquireDirLock, ensureDir } from "../runtime/index.ts";
import type { Backend } from "../storage/backend.ts";
import { restoreInto, type Backup } from "../storage/backup.ts";
import { migrateDataDir } from "../storage/data-dir-schema.ts";
import { FileBackend } from "../storage/file.ts";
import { PostgresBackend } from "../storage/postgres.ts";
import type { Clock } from "../util/clock.ts";

/** Where a restore or clone writes: a data dir (its file backend), or a database. */
export type RestoreTarget = { dataDir: string } | { storage: Extract<Config["storage"], { type: "postgres" }> };

export function describeTarget(t: RestoreTarget): string {
  return "dataDir" in t ? `the data dir ${t.dataDir}` : `the database ${redactedUrl(t.storage.conn_string)}`;
}

/** A connection string without its passwords (user info, and ?password= or ?sslpassword= that the driver reads too), to name a database in messages. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    for (const key of [...u.searchParams.keys()]) if (/password/i.test(key)) u.searchParams.set(key, "***");
    return u.toString();
  } catch {
    return "(a connection string)";
  }
}

export async function restoreBackup(target: RestoreTarget, backup: Backup, clock: Clock, log: (line: string) => void): Promise<number> {
  const closers: (() => Promise<unknown>)[] = [];
  try {
    let backend: Backend;
    let sink: AuditSink;
    if ("dataDir" in target) {
      // Refused before anything is touched (the lock, a schema migration): a data dir in use is not a target.
      const held = await readdir(path.join(target.dataDir, "backend")).catch(() => []);
      if (held.length) throw new AzgateError("already_exists", `${describeTarget(target)} is not empty (it holds a backend); restore into a new data dir or an empty database`);
      await ensureDir(target.dataDir, 0o700);
      const lock = await acquireDirLock(target.dataDir, "azgate admin restore");
      closers.push(() => lock.release());
      await migrateDataDir(target.dataDir, log);
      backend = await FileBackend.open(target.dataDir, clock);
      sink = await JsonLinesAuditSink.open(target.dataDir, clock);
      closers.push(() => sink.close());
    } else {
      const s = target.storage;
      const pg = await PostgresBackend.open({ connectionString: s.conn_string, caPem: s.ca_file ? await readFile(s.ca_file, "utf8") : undefined, maxConnections: 2, clock, log });
      backend = pg;
      sink = new PostgresAuditSink(pg.pool, clock);
    }
    closers.push(() => backend.close());
    const n = await restoreInto(backend, backup, clock.now(), describeTarget(target));
    await registeredSink(sink).emit(audit("BACKUP_RESTORED", { items: n, cluster: backup.header.cluster, taken: backup.header.created, azgate: backup.header.azgate }));
    return n;
  } catch (e) {
    if (e instanceof AzgateError) throw e;
    throw new AzgateError("internal", `cannot restore into ${describeTarget(target)}: ${(e as Error).message}`, { cause: e });
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
  }
}

/** `file:DIR` or `postgres://...`, as clone's --from and --to name them. */
export function parseStorageRef(ref: string, flag: string): RestoreTarget {
  if (ref.startsWith("file:")) return { dataDir: path.resolve(ref.slice(5)) };
  if (/^postgres(ql)?:\/\//.test(ref)) return { storage: { type: "postgres", conn_string: ref, auth: "password" } };
  throw new AzgateError("bad_parameter", `${flag}: "${redactedUrl(ref)}" must be file:DIR or postgres://USER:PASSWORD@HOST:PORT/DB`);
}
