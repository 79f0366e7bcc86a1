import { createReadStream, promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import { ensureDir } from "../runtime/index.ts";

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
  /** Only events about this user. */
  user?: string;
  /** Only events whose name is this or starts with it followed by "." (e.g. "app.request"). */
  event?: string;
  /** Only events of this access request: its steps and every request made under its grant. */
  request?: string;
  /** The newest this many matches (default 1000). */
  limit?: number;
}

export interface AuditSink {
  emit(e: Omit<AuditEvent, "time">): Promise<void>;
  /** Matching events, oldest first. */
  search(q: AuditQuery): Promise<AuditEvent[]>;
  close(): Promise<void>;
}

export const DEFAULT_AUDIT_LIMIT = 1000;

export function matchesQuery(e: AuditEvent, q: AuditQuery): boolean {
  if (q.since && !(Date.parse(e.time) >= q.since.getTime())) return false;
  if (q.user && e.user !== q.user) return false;
  if (q.event && e.event !== q.event && !e.event.startsWith(`${q.event}.`)) return false;
  if (q.request && (e as { access_request_id?: unknown }).access_request_id !== q.request) return false;
  return true;
}

/** How often the sink checks that its open file is still the one at its path (a rotation renamed it). */
export const REOPEN_CHECK_MS = 1_000;

/**
 * Append-only JSON lines, on disk (fdatasync) before an event is
 * acknowledged, so an acknowledged event survives a crash. Events that
 * arrive while a write is in flight are written together with one sync
 * (group commit): each caller still waits for the sync that covers its line.
 *
 * The file stays open between batches (open, append, fsync and close per
 * event were four thread-pool jobs, two per request). To rotate the log,
 * rename it: within REOPEN_CHECK_MS the sink sees that the path names
 * another file, or none, and opens a new one; events written in between are
 * in the renamed file, none lost. A failed write closes the file, and the
 * next batch opens it again.
 */
export class JsonLinesAuditSink implements AuditSink {
  private pending: { line: string; done: () => void; fail: (e: unknown) => void }[] = [];
  private writing: Promise<void> | null = null;
  private handle: { fh: FileHandle; ino: number; checkedAt: number } | null = null;
  private constructor(
    private readonly file: string,
    private readonly now: () => number,
  ) {}

  static async open(dataDir: string, now: () => number = Date.now): Promise<JsonLinesAuditSink> {
    const dir = path.join(dataDir, "audit");
    await ensureDir(dir);
    return new JsonLinesAuditSink(path.join(dir, "events.jsonl"), now);
  }

  emit(e: Omit<AuditEvent, "time">): Promise<void> {
    const line = JSON.stringify({ time: new Date().toISOString(), ...e }) + "\n";
    return new Promise<void>((done, fail) => {
      this.pending.push({ line, done, fail });
      this.writing ??= this.flush();
    });
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        const fh = await this.openFile();
        await fh.appendFile(batch.map((b) => b.line).join(""));
        await fh.datasync();
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
    const now = this.now();
    if (this.handle && now - this.handle.checkedAt < REOPEN_CHECK_MS) return this.handle.fh;
    if (this.handle) {
      const at = await fsp.stat(this.file).catch(() => null);
      if (at?.ino === this.handle.ino) {
        this.handle.checkedAt = now;
        return this.handle.fh;
      }
      await this.closeFile();
    }
    const fh = await fsp.open(this.file, "a", 0o600);
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
    await this.writing?.catch(() => undefined);
    await this.closeFile();
  }
}
