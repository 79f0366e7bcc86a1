/**
 * Reading the file sink's log forward from a position: what the audit export
 * (proxy/audit-export) resumes from after a restart, and what a one-off
 * `admin audit export` pages through.
 *
 * A cursor names a file by its inode, not its name: a rotation renames
 * `events.jsonl` to `events-DAY.jsonl` and the inode stays, so a position
 * read in the current file is still found after the rename. With the inode
 * come the byte offset just past the last event read and that event's time.
 * The time checks the position (the line that ends at the offset must carry
 * it: a pruned file's inode may be taken by a new file), and it is where the
 * reading starts again when the file is gone (pruned, or the log copied to
 * another disk): at the first event of that time or later, so an event of
 * the same millisecond may come twice, never none.
 *
 * Only whole lines are read: a line still being written (no newline yet)
 * waits for the next read. A line that does not parse (torn by a crash) is
 * passed over.
 */
import { promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import { auditFiles, dayEnd, filePath, type AuditFile } from "./files.ts";
import { CursorUnusable, type AuditEvent } from "./sink.ts";

export interface Position {
  ino: number;
  offset: number;
  time: string;
}

/** The cursor as the export stores it (opaque to everyone but this module). */
export const formatCursor = (p: Position): string => `file:${p.ino}:${p.offset}:${p.time}`;

export function parseCursor(cursor: string): Position | null {
  const m = /^file:(\d{1,20}):(\d{1,15}):(.{1,40})$/.exec(cursor);
  if (!m || Number.isNaN(Date.parse(m[3]))) return null;
  return { ino: Number(m[1]), offset: Number(m[2]), time: m[3] };
}

/** Bytes read at a time; a longer line is read whole by reading on. */
const CHUNK = 256 * 1024;

export interface ReadOptions {
  /** With no cursor: start at the first event at or after this time (files that end before it are not read). */
  since?: Date;
}

/** A rotation renamed a file between the listing and its opening: list again (this many times at most, then fail: the exporter tries again later). */
const RELISTS = 20;

/** Up to `limit` events after `cursor` (null: from the log's start), in the log's order, and the cursor after the last one. */
export async function readAfter(dir: string, cursor: string | null, limit: number, opts: ReadOptions = {}): Promise<{ events: AuditEvent[]; cursor: string | null }> {
  for (let i = 0; ; i++) {
    try {
      return await readListed(dir, cursor, limit, opts);
    } catch (e) {
      if (!(e instanceof Relisted) || i >= RELISTS) throw e;
    }
  }
}

/** The listing no longer says what a name holds (a rotation renamed it since): read again from a new listing. */
class Relisted extends Error {}

/**
 * Opens a listed file, and checks it is still the inode listed: a name now
 * holding another file, or none (renamed, or pruned, since the listing),
 * throws Relisted; a file read from a stale listing would be passed over.
 */
async function openListed(dir: string, f: AuditFile & { ino: number }): Promise<FileHandle> {
  const fh = await fsp.open(filePath(dir, f), "r").catch((e: NodeJS.ErrnoException) => Promise.reject(e.code === "ENOENT" ? new Relisted() : e));
  if ((await fh.stat()).ino !== f.ino) {
    await fh.close();
    throw new Relisted();
  }
  return fh;
}

async function readListed(dir: string, cursor: string | null, limit: number, opts: ReadOptions): Promise<{ events: AuditEvent[]; cursor: string | null }> {
  let files = await listing(dir);
  const at = cursor ? parseCursor(cursor) : null;
  if (cursor && !at) throw new CursorUnusable(`not a cursor of this audit log (a file sink's): ${JSON.stringify(cursor.slice(0, 80))}`);
  let index = 0;
  let offset = 0;
  // Events older than this are passed over: reading again by time (the file is gone), or a one-off export's start.
  let notBefore: number | undefined = opts.since?.getTime();
  /** After a file read from its cursor that the log no longer names (an operator's rename): the log's own files from this time on. */
  let thenFrom: number | undefined;
  if (at) {
    const i = files.findIndex((f) => f.ino === at.ino);
    const renamed = i < 0 ? await renamedAway(dir, files, at.ino) : null;
    if (i >= 0 && (await endsWith(dir, files[i], at.offset, at.time))) {
      index = i;
      offset = at.offset;
      notBefore = undefined;
    } else if (renamed && (await endsWith(dir, renamed, at.offset, at.time))) {
      // Renamed to a name the log does not use (logrotate's events.jsonl.1): its rest first, then the log from the cursor's time.
      files = [renamed, ...files];
      offset = at.offset;
      notBefore = undefined;
      thenFrom = Date.parse(at.time);
    } else notBefore = Date.parse(at.time);
  }
  // Rotated files are named by their newest event's day: one whose day ends before the start holds nothing to read.
  if (notBefore !== undefined && offset === 0) while (index < files.length - 1 && files[index].day && dayEnd(files[index].day!) <= notBefore) index++;

  const events: AuditEvent[] = [];
  let last: Position | null = null;
  for (; index < files.length && events.length < limit; index++, offset = 0) {
    const f = files[index];
    if (thenFrom !== undefined && index > 0) notBefore ??= thenFrom;
    // The listed inode: a name a rotation gave another file since (or none) is read from a new listing.
    const fh = await openListed(dir, f);
    try {
      for (;;) {
        const lines = await wholeLines(fh, offset);
        if (lines.length === 0) break;
        for (const { text, end } of lines) {
          offset = end;
          const e = parse(text);
          if (!e || (notBefore !== undefined && !(Date.parse(e.time) >= notBefore))) continue;
          events.push(e);
          last = { ino: f.ino, offset, time: e.time };
          if (events.length >= limit) break;
        }
        if (events.length >= limit) break;
      }
    } finally {
      await fh.close();
    }
  }
  return { events, cursor: last ? formatCursor(last) : cursor };
}

/** A file in the log's folder, under a name the log does not use, that is the inode `ino` (the current file an operator renamed). */
async function renamedAway(dir: string, listed: AuditFile[], ino: number): Promise<(AuditFile & { ino: number }) | null> {
  const names = new Set(listed.map((f) => f.name));
  for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
    if (names.has(name) || !name.startsWith("events")) continue;
    const st = await fsp.stat(path.join(dir, name)).catch(() => null);
    if (st?.isFile() && st.ino === ino) return { name, day: null, part: 0, ino };
  }
  return null;
}

/**
 * The log's files with their inodes, as one moment saw them: the names are
 * read again after the inodes, and the whole taken again if they changed (a
 * rotation renamed the current file in between: its inode, which a cursor
 * may name, would be missing, and the reading would go on by time past what
 * was left in it).
 */
async function listing(dir: string): Promise<(AuditFile & { ino: number })[]> {
  for (let i = 0; ; i++) {
    const files = await auditFiles(dir);
    const out: (AuditFile & { ino: number })[] = [];
    for (const f of files) {
      const st = await fsp.stat(filePath(dir, f)).catch(() => null);
      if (st) out.push({ ...f, ino: st.ino });
    }
    const again = await auditFiles(dir);
    if (i >= RELISTS || (again.length === files.length && again.every((f, j) => f.name === files[j].name))) return out;
  }
}

/** The whole lines from `offset` on (at least one if there is one, however long), each with the offset just past it. */
async function wholeLines(fh: FileHandle, offset: number): Promise<{ text: string; end: number }[]> {
  let size = CHUNK;
  for (;;) {
    const buf = Buffer.alloc(size);
    const { bytesRead } = await fh.read(buf, 0, size, offset);
    const data = buf.subarray(0, bytesRead);
    const lastNewline = data.lastIndexOf(10);
    if (lastNewline < 0) {
      if (bytesRead < size) return []; // a line still being written, or nothing more
      size *= 4;
      continue;
    }
    const out: { text: string; end: number }[] = [];
    let start = 0;
    while (start <= lastNewline) {
      const nl = data.indexOf(10, start);
      out.push({ text: data.subarray(start, nl).toString("utf8"), end: offset + nl + 1 });
      start = nl + 1;
    }
    return out;
  }
}

/** Whether the line that ends at `offset` in the listed file is an event of time `time` (the cursor still points where it did). */
async function endsWith(dir: string, f: AuditFile & { ino: number }, offset: number, time: string): Promise<boolean> {
  const fh = await openListed(dir, f);
  try {
    if (offset < 2 || (await fh.stat()).size < offset) return false;
    for (let want = 64 * 1024; ; want *= 4) {
      const start = Math.max(0, offset - want);
      const buf = Buffer.alloc(offset - start);
      await fh.read(buf, 0, buf.length, start);
      if (buf[buf.length - 1] !== 10) return false;
      const prev = buf.lastIndexOf(10, buf.length - 2);
      if (prev < 0 && start > 0) continue; // the line began before what was read
      return parse(buf.subarray(prev + 1, buf.length - 1).toString("utf8"))?.time === time;
    }
  } finally {
    await fh.close();
  }
}

function parse(line: string): AuditEvent | null {
  try {
    const e = JSON.parse(line) as AuditEvent;
    return e && typeof e === "object" && typeof e.time === "string" && typeof e.event === "string" ? e : null;
  } catch {
    return null;
  }
}
