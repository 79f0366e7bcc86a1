import { randomUUID } from "node:crypto";
import { promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import { appendDurably, ensureDir, fsyncDir, openForDurableAppend } from "../runtime/index.ts";
import type { Clock } from "../util/clock.ts";
import { AzgateError } from "../errors/index.ts";
import { globMatch } from "../util/glob.ts";
import { readAfter } from "./file-cursor.ts";
import { auditFiles, countLines, CURRENT, dayEnd, dayOf, filePath, firstTime, lastTime, linesOf, rotatedName } from "./files.ts";

/**
 * Audit events. Secrets never go in: callers pass names, ids and outcomes,
 * never passwords, codes, tokens or keys.
 */
export interface AuditEvent {
  event: string;
  code: string;
  time: string;
  /** Unique to the event (stamped by the sink with its time): what a receiver of the export drops duplicates by. */
  uid?: string;
  user?: string;
  success?: boolean;
  [field: string]: unknown;
}

export interface AuditQuery {
  /** Only events at or after this time. */
  since?: Date;
  /** Only events before this time (the web UI's "older" page). */
  until?: Date;
  /** Only events about this user. */
  user?: string;
  /** Only events whose name is this or starts with it followed by "." (e.g. "app.request"). */
  event?: string;
  /** Only events of this access request: its steps and every request made under its grant. */
  request?: string;
  app?: string;
  /** Only this Azure identity (resource ID, case-insensitive). */
  azureIdentity?: string;
  method?: string;
  /** An HTTP status (403) or a class (4xx). */
  status?: string;
  /** An Azure operation; `*` matches any run of characters (Microsoft.Compute/*). */
  action?: string;
  /** Only operations on this resource ID or below it (case-insensitive prefix of the scope). */
  resource?: string;
  /** The per-request policy's decision: unrestricted, allow, deny, would_deny. */
  decision?: string;
  /** One app or login session (all its requests). */
  session?: string;
  /** One request through azgate (x-azgate-request-id): its start and its end. */
  requestId?: string;
  /** The requests of one command (their `command_id`: azure/client-info.ts), within a session (pair it with `session`). */
  command?: string;
  /** Only events of this bot (its name, as `admin bots ls` shows it). */
  bot?: string;
  /** Only events of bots' runs with this CI fact: KEY=VALUE (repository=acme/infra), or a VALUE of any fact (a commit SHA, a run ID). */
  ci?: string;
  /** The newest this many matches (default 1000). */
  limit?: number;
}

export interface AuditSink {
  /**
   * Its writes are commits over the network (PostgreSQL): long enough that
   * the proxy has an agent make its checks while a request's start event is
   * written (proxy/relay.ts). A local append (the file sink) is not: there
   * the overlap cost a message each way and saved nothing measurable.
   */
  readonly remote?: boolean;
  /** Records an event; resolves once it is stored (on disk, or committed). */
  emit(e: Omit<AuditEvent, "time">): Promise<void>;
  /**
   * The same for an event nothing waits on (a request's end): its write may
   * wait up to AUDIT_LATER_MS to share the next one's. Resolves once stored.
   */
  emitLater(e: Omit<AuditEvent, "time">): Promise<void>;
  /** Matching events, oldest first. */
  search(q: AuditQuery): Promise<AuditEvent[]>;
  /**
   * Deletes events older than `before` (audit.retention): the file sink
   * whole files whose every event is older, PostgreSQL rows in batches.
   * Says how many went and how far back the log reaches now.
   */
  prune(before: Date): Promise<Pruned>;
  /** The time of the oldest event kept, or null when there is none: how far back the log reaches. */
  oldest(): Promise<string | null>;
  /**
   * Up to `limit` stored events after `cursor` (null: from the start), in
   * the order they were stored, whatever their type, and the cursor after
   * the last (the same one when there is nothing new). Never returns an
   * event before one that may still be written ahead of it, so a reader that
   * keeps the cursor misses none (audit/file-cursor.ts, PostgreSQL below).
   * `since` (with no cursor) starts at that time; `until` (a one-off
   * export's end) leaves newer events out of `held`.
   */
  readAfter(cursor: string | null, limit: number, opts?: { since?: Date; until?: Date }): Promise<ReadPage>;
  close(): Promise<void>;
}

/**
 * A cursor this log cannot read from: malformed, another sink's (a data dir
 * cloned to PostgreSQL), or another database server's. An API caller gets
 * bad_parameter; the export starts again from the log's beginning (at least
 * once: a repeat, never a gap).
 */
export class CursorUnusable extends AzgateError {
  constructor(message: string) {
    super("bad_parameter", message);
  }
}

/** What readAfter gives. */
export interface ReadPage {
  events: AuditEvent[];
  /** After the last event read (the one given when there was none). */
  cursor: string | null;
  /** Events stored after these wait for a transaction still open elsewhere in the database (PostgreSQL): "nothing more" is not the log's end yet. */
  held?: boolean;
}

export interface Pruned {
  events: number;
  oldest: string | null;
}

export const DEFAULT_AUDIT_LIMIT = 1000;

/** The file sink's filter; the PostgreSQL sink says the same in SQL (audit/postgres-sink.ts), and test/audit-query.test.ts holds them to it. */
export function matchesQuery(e: AuditEvent, q: AuditQuery): boolean {
  const f = e as Record<string, unknown>;
  const str = (k: string) => (typeof f[k] === "string" ? (f[k] as string) : undefined);
  if (q.since && !(Date.parse(e.time) >= q.since.getTime())) return false;
  if (q.until && !(Date.parse(e.time) < q.until.getTime())) return false;
  if (q.user && e.user !== q.user) return false;
  if (q.event && e.event !== q.event && !e.event.startsWith(`${q.event}.`)) return false;
  if (q.request && str("access_request_id") !== q.request) return false;
  if (q.app && str("app") !== q.app) return false;
  if (q.azureIdentity && str("azure_identity")?.toLowerCase() !== q.azureIdentity.toLowerCase()) return false;
  if (q.method && str("method") !== q.method.toUpperCase()) return false;
  if (q.status) {
    const status = typeof f.status === "number" ? f.status : NaN;
    const cls = /^([1-5])xx$/i.exec(q.status);
    if (cls ? Math.floor(status / 100) !== Number(cls[1]) : status !== Number(q.status)) return false;
  }
  // Case-insensitive, as Azure's operation names are; linear in time (util/glob.ts), whatever the caller's stars.
  if (q.action && !globMatch(q.action, str("action") ?? "", { caseInsensitive: true })) return false;
  if (q.resource && !(str("scope") ?? "").toLowerCase().startsWith(q.resource.toLowerCase())) return false;
  if (q.decision && (f.policy as { decision?: string } | undefined)?.decision !== q.decision) return false;
  if (q.session && str("session_id") !== q.session) return false;
  if (q.requestId && str("request_id") !== q.requestId) return false;
  if (q.command && str("command_id") !== q.command) return false;
  if (q.bot && str("bot") !== q.bot) return false;
  if (q.ci && !ciMatches(f.ci, q.ci)) return false;
  return true;
}

/** A `ci` filter against an event's CI facts: KEY=VALUE names one fact, a bare VALUE matches any. */
export function ciFilter(q: string): { key?: string; value: string } {
  const eq = q.indexOf("=");
  return eq > 0 && /^[a-z_]+$/.test(q.slice(0, eq)) ? { key: q.slice(0, eq), value: q.slice(eq + 1) } : { value: q };
}

function ciMatches(facts: unknown, q: string): boolean {
  if (!facts || typeof facts !== "object") return false;
  const { key, value } = ciFilter(q);
  const entries = Object.entries(facts as Record<string, unknown>);
  return entries.some(([k, v]) => v === value && (key === undefined || k === key));
}

/**
 * An event with the sink's time and a new uid, first in its line: never the
 * caller's (a `time` in the fields would misplace the event in the log's
 * order, and a reader's cursor with it).
 */
export function stamped(e: Omit<AuditEvent, "time">, time: string): AuditEvent {
  const { time: _time, uid: _uid, ...fields } = e as AuditEvent;
  return { time, uid: randomUUID(), ...fields };
}

/** How long an emitLater event may wait for company before it is written alone: the most a crash can lose of them. */
export const AUDIT_LATER_MS = 50;

/** How often the sink checks that its open file is still the one at its path (a rotation renamed it). */
export const REOPEN_CHECK_MS = 1_000;

/**
 * Append-only JSON lines, on disk (O_DSYNC writes; runtime/fs.ts) before an
 * event is acknowledged, so an acknowledged event survives a crash. Events that
 * arrive while a write is in flight are written together with one sync
 * (group commit): each caller still waits for the sync that covers its line.
 *
 * The file stays open between batches (open, append, fsync and close per
 * event were four thread-pool jobs, two per request). One file per day
 * (UTC), or per `maxFileBytes` (audit/files.ts): `events.jsonl` takes the
 * events, and is renamed `events-YYYY-MM-DD.jsonl` when a batch of a later
 * day comes, or when it is full; `prune` deletes the renamed files past
 * retention. An operator may still rotate it by renaming it: within
 * REOPEN_CHECK_MS the sink sees that the path names another file, or none,
 * and opens a new one; events written in between are in the renamed file,
 * none lost. A failed write closes the file, and the next batch opens it
 * again.
 *
 * An emitLater event joins the next batch instead of starting one, and starts
 * its own after AUDIT_LATER_MS: a request's end rides with the next
 * request's start, one write where there were two. A search or close writes
 * what waits first, so nothing the sink was given is missing from a search.
 */
export class JsonLinesAuditSink implements AuditSink {
  private pending: { line: string; day: string; done: () => void; fail: (e: unknown) => void }[] = [];
  private writing: Promise<void> | null = null;
  private later: ReturnType<typeof setTimeout> | null = null;
  /** The open current file: its inode (to see a rename), its size, and the day of its newest event. */
  private handle: { fh: FileHandle; ino: number; checkedAt: number; size: number; day: string | null } | null = null;
  /** File operations one at a time: writes, rotations and deletions never overlap. */
  private ops: Promise<unknown> = Promise.resolve();
  private readonly file: string;
  private constructor(
    private readonly dir: string,
    /** Stamps each event's time (and so the day of its file), and paces the rotation check. (The AUDIT_LATER_MS wait is I/O batching, on the runtime's timer.) */
    private readonly clock: Clock,
    /** Past this size the current file is renamed and a new one begun (audit.max_file_mb). */
    private readonly maxFileBytes = Infinity,
  ) {
    this.file = path.join(dir, CURRENT);
  }

  static async open(dataDir: string, clock: Clock, opts: { maxFileBytes?: number } = {}): Promise<JsonLinesAuditSink> {
    const dir = path.join(dataDir, "audit");
    await ensureDir(dir);
    return new JsonLinesAuditSink(dir, clock, opts.maxFileBytes);
  }

  emit(e: Omit<AuditEvent, "time">): Promise<void> {
    return this.enqueue(e, true);
  }

  emitLater(e: Omit<AuditEvent, "time">): Promise<void> {
    return this.enqueue(e, false);
  }

  private enqueue(e: Omit<AuditEvent, "time">, now: boolean): Promise<void> {
    const time = this.clock.date().toISOString();
    const line = JSON.stringify(stamped(e, time)) + "\n";
    return new Promise<void>((done, fail) => {
      this.pending.push({ line, day: dayOf(time), done, fail });
      if (now) void this.writeNow();
      // A batch in flight takes it in its next round; otherwise it waits a little for company.
      else if (!this.writing) this.later ??= setTimeout(() => void this.writeNow(), AUDIT_LATER_MS);
    });
  }

  /** Starts writing what waits (unless a write is already going), and resolves when nothing waits. */
  private writeNow(): Promise<void> {
    if (this.later) clearTimeout(this.later);
    this.later = null;
    // Nothing to write: flush() would end before `??=` stored it, and leave a finished write behind as if going.
    if (!this.writing && this.pending.length === 0) return Promise.resolve();
    return (this.writing ??= this.serial(() => this.flush()));
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const next = this.ops.then(op, op);
    this.ops = next.catch(() => undefined);
    return next;
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      // Around midnight a batch holds two days: each day's lines go to its own file.
      for (let i = 0; i < batch.length; ) {
        let j = i + 1;
        while (j < batch.length && batch[j].day === batch[i].day) j++;
        const group = batch.slice(i, j);
        i = j;
        try {
          const data = Buffer.from(group.map((b) => b.line).join(""));
          const h = await this.openFile(group[0].day, data.length);
          await appendDurably(h.fh.fd, data);
          h.size += data.length;
          if (!h.day || group[0].day > h.day) h.day = group[0].day;
          for (const b of group) b.done();
        } catch (e) {
          await this.closeFile();
          for (const b of group) b.fail(e);
        }
      }
    }
    this.writing = null;
  }

  /**
   * The open current file, reopened when the path no longer names it
   * (checked at most every REOPEN_CHECK_MS), and first renamed when `day`
   * is later than its newest event's or `bytes` would take it past the limit.
   */
  private async openFile(day: string, bytes: number): Promise<NonNullable<JsonLinesAuditSink["handle"]>> {
    const now = this.clock.now();
    if (this.handle && now - this.handle.checkedAt >= REOPEN_CHECK_MS) {
      const at = await fsp.stat(this.file).catch(() => null);
      if (at?.ino === this.handle.ino) this.handle.checkedAt = now;
      else await this.closeFile();
    }
    if (!this.handle) {
      const fh = await openForDurableAppend(this.file);
      const st = await fh.stat();
      let size = st.size;
      // A crash mid-append left a torn last line: end it, so the next event starts a line of its own (and reads back).
      if (size > 0 && !(await endsInNewline(this.file, size))) {
        await appendDurably(fh.fd, Buffer.from("\n"));
        size += 1;
      }
      const newest = size > 0 ? await lastTime(this.file) : null;
      this.handle = { fh, ino: st.ino, checkedAt: now, size, day: newest ? dayOf(newest) : null };
    }
    const h = this.handle;
    const full = h.size > 0 && h.size + bytes > this.maxFileBytes;
    if (h.size > 0 && h.day && (day > h.day || full)) {
      await this.rotate(h.day);
      return this.openFile(day, bytes);
    }
    return h;
  }

  /** Renames the current file after the day of its newest event; the next write begins a new one. */
  private async rotate(day: string): Promise<void> {
    await this.closeFile();
    await fsp.rename(this.file, path.join(this.dir, rotatedName(day, await auditFiles(this.dir))));
    await fsyncDir(this.dir);
  }

  private async closeFile(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    await h?.fh.close().catch(() => undefined);
  }

  /**
   * Reads the files newest first, line by line, keeping only the newest
   * `limit` matches, so memory stays bounded however long the log is, and
   * stops once it has them; a file that ends before `since`, or begins at or
   * after `until`, is not read. A torn line (a crash mid-append) is skipped,
   * not fatal.
   */
  async search(q: AuditQuery): Promise<AuditEvent[]> {
    await this.writeNow().catch(() => undefined);
    const limit = q.limit ?? DEFAULT_AUDIT_LIMIT;
    const found: AuditEvent[][] = [];
    let count = 0;
    const files = await auditFiles(this.dir);
    for (let i = files.length - 1; i >= 0 && count < limit; i--) {
      const f = files[i];
      if (q.since && f.day && dayEnd(f.day) <= q.since.getTime()) break; // this and every older file end before the window
      if (q.until) {
        const first = await firstTime(filePath(this.dir, f));
        if (first && Date.parse(first) >= q.until.getTime()) continue;
      }
      const out: AuditEvent[] = [];
      for await (const line of linesOf(filePath(this.dir, f))) {
        let e: AuditEvent;
        try {
          e = JSON.parse(line) as AuditEvent;
        } catch {
          continue;
        }
        if (!matchesQuery(e, q)) continue;
        out.push(e);
        if (out.length > limit - count) out.shift();
      }
      found.unshift(out);
      count += out.length;
    }
    return found.flat();
  }

  /** Deletes the rotated files whose every event is older than `before` (the current one first renamed if its day is over). */
  async prune(before: Date): Promise<Pruned> {
    await this.writeNow().catch(() => undefined);
    const cutoff = before.getTime();
    const events = await this.serial(async () => {
      // A current file nothing was written to since its day ended is renamed, so its day can pass too.
      const newest = await lastTime(this.file);
      if (newest && dayEnd(dayOf(newest)) <= cutoff) await this.rotate(dayOf(newest));
      let n = 0;
      for (const f of await auditFiles(this.dir)) {
        if (!f.day || dayEnd(f.day) > cutoff) break;
        n += await countLines(filePath(this.dir, f));
        await fsp.rm(filePath(this.dir, f), { force: true });
      }
      if (n) await fsyncDir(this.dir);
      return n;
    });
    return { events, oldest: await this.oldest() };
  }

  async oldest(): Promise<string | null> {
    await this.writeNow().catch(() => undefined);
    for (const f of await auditFiles(this.dir)) {
      const t = await firstTime(filePath(this.dir, f));
      if (t) return t;
    }
    return null;
  }

  readAfter(cursor: string | null, limit: number, opts?: { since?: Date; until?: Date }): Promise<ReadPage> {
    return readAfter(this.dir, cursor, limit, opts);
  }

  async close(): Promise<void> {
    await this.writeNow().catch(() => undefined);
    await this.serial(() => this.closeFile());
  }
}

async function endsInNewline(file: string, size: number): Promise<boolean> {
  const fh = await fsp.open(file, "r");
  try {
    const last = Buffer.alloc(1);
    await fh.read(last, 0, 1, size - 1);
    return last[0] === 10;
  } finally {
    await fh.close();
  }
}
