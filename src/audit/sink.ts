import { createReadStream, promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import { appendDurably, ensureDir, openForDurableAppend } from "../runtime/index.ts";
import type { Clock } from "../util/clock.ts";
import { globMatch } from "../util/glob.ts";

/**
 * Audit events. Secrets never go in: callers pass names, ids and outcomes,
 * never passwords, codes, tokens or keys.
 */
export interface AuditEvent {
  event: string;
  code: string;
  time: string;
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
  /** Records an event; resolves once it is stored (on disk, or committed). */
  emit(e: Omit<AuditEvent, "time">): Promise<void>;
  /**
   * The same for an event nothing waits on (a request's end): its write may
   * wait up to AUDIT_LATER_MS to share the next one's. Resolves once stored.
   */
  emitLater(e: Omit<AuditEvent, "time">): Promise<void>;
  /** Matching events, oldest first. */
  search(q: AuditQuery): Promise<AuditEvent[]>;
  close(): Promise<void>;
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
 * event were four thread-pool jobs, two per request). To rotate the log,
 * rename it: within REOPEN_CHECK_MS the sink sees that the path names
 * another file, or none, and opens a new one; events written in between are
 * in the renamed file, none lost. A failed write closes the file, and the
 * next batch opens it again.
 *
 * An emitLater event joins the next batch instead of starting one, and starts
 * its own after AUDIT_LATER_MS: a request's end rides with the next
 * request's start, one write where there were two. A search or close writes
 * what waits first, so nothing the sink was given is missing from a search.
 */
export class JsonLinesAuditSink implements AuditSink {
  private pending: { line: string; done: () => void; fail: (e: unknown) => void }[] = [];
  private writing: Promise<void> | null = null;
  private later: ReturnType<typeof setTimeout> | null = null;
  private handle: { fh: FileHandle; ino: number; checkedAt: number } | null = null;
  private constructor(
    private readonly file: string,
    /** Stamps each event's time, and paces the rotation check. (The AUDIT_LATER_MS wait is I/O batching, on the runtime's timer.) */
    private readonly clock: Clock,
  ) {}

  static async open(dataDir: string, clock: Clock): Promise<JsonLinesAuditSink> {
    const dir = path.join(dataDir, "audit");
    await ensureDir(dir);
    return new JsonLinesAuditSink(path.join(dir, "events.jsonl"), clock);
  }

  emit(e: Omit<AuditEvent, "time">): Promise<void> {
    return this.enqueue(e, true);
  }

  emitLater(e: Omit<AuditEvent, "time">): Promise<void> {
    return this.enqueue(e, false);
  }

  private enqueue(e: Omit<AuditEvent, "time">, now: boolean): Promise<void> {
    const line = JSON.stringify({ time: this.clock.date().toISOString(), ...e }) + "\n";
    return new Promise<void>((done, fail) => {
      this.pending.push({ line, done, fail });
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
    return (this.writing ??= this.flush());
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        const fh = await this.openFile();
        await appendDurably(fh.fd, Buffer.from(batch.map((b) => b.line).join("")));
        for (const b of batch) b.done();
      } catch (e) {
        await this.closeFile();
        for (const b of batch) b.fail(e);
      }
    }
    this.writing = null;
  }

  /** The open file, reopened when the path no longer names it (checked at most every REOPEN_CHECK_MS). */
  private async openFile(): Promise<FileHandle> {
    const now = this.clock.now();
    if (this.handle && now - this.handle.checkedAt < REOPEN_CHECK_MS) return this.handle.fh;
    if (this.handle) {
      const at = await fsp.stat(this.file).catch(() => null);
      if (at?.ino === this.handle.ino) {
        this.handle.checkedAt = now;
        return this.handle.fh;
      }
      await this.closeFile();
    }
    const fh = await openForDurableAppend(this.file);
    this.handle = { fh, ino: (await fh.stat()).ino, checkedAt: now };
    return fh;
  }

  private async closeFile(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    await h?.fh.close().catch(() => undefined);
  }

  /**
   * Reads the file line by line, keeping only the newest `limit` matches, so
   * memory stays bounded however long the log is. A torn last line (a crash
   * mid-append) is skipped, not fatal.
   */
  async search(q: AuditQuery): Promise<AuditEvent[]> {
    await this.writeNow().catch(() => undefined);
    const limit = q.limit ?? DEFAULT_AUDIT_LIMIT;
    const out: AuditEvent[] = [];
    let input;
    try {
      input = createReadStream(this.file, { encoding: "utf8" });
      await new Promise<void>((ok, fail) => input!.once("open", () => ok()).once("error", fail));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw e;
    }
    for await (const line of createInterface({ input, crlfDelay: Infinity })) {
      let e: AuditEvent;
      try {
        e = JSON.parse(line) as AuditEvent;
      } catch {
        continue;
      }
      if (!matchesQuery(e, q)) continue;
      out.push(e);
      if (out.length > limit) out.shift();
    }
    return out;
  }

  async close(): Promise<void> {
    await this.writeNow().catch(() => undefined);
    await this.closeFile();
  }
}
