/**
 * The file sink's files (audit/sink.ts), by name: `events.jsonl` is the
 * file being written; when the day (UTC) of the events changes, or it grows
 * past the size limit, it is renamed to `events-YYYY-MM-DD.jsonl` (then
 * `.1`, `.2`... for more of the same day), named by the day of its newest
 * event. So every event in a rotated file is older than the end of the day
 * it is named by: retention deletes whole files by that day, and a search
 * skips the files that end before its window. The order of the files is the
 * order of the events: rotated ones by (day, part), the current one last.
 */
import { createReadStream, promises as fsp } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";

export const CURRENT = "events.jsonl";
const ROTATED = /^events-(\d{4}-\d\d-\d\d)(?:\.(\d{1,6}))?\.jsonl$/;
export const DAY_MS = 86_400_000;

export interface AuditFile {
  name: string;
  /** The UTC day of its newest event (rotated files); null for the current file. */
  day: string | null;
  part: number;
}

/** The day (UTC, YYYY-MM-DD) of an ISO time. */
export const dayOf = (iso: string): string => iso.slice(0, 10);

/** The end of a day (its next midnight, UTC), in ms. */
export const dayEnd = (day: string): number => Date.parse(`${day}T00:00:00.000Z`) + DAY_MS;

/**
 * The name a rotated file of `day` takes: the first free part. Never a name
 * that sorts before a rotated file already there: a clock set back (a wrong
 * RTC, an NTP step) must not put newer events ahead of older ones, which a
 * reader by the files' order (the export) has passed.
 */
export function rotatedName(day: string, taken: AuditFile[]): string {
  const latest = taken.reduce<string | null>((d, f) => (f.day && (!d || f.day > d) ? f.day : d), null);
  if (latest && latest > day) day = latest;
  const parts = taken.filter((f) => f.day === day).map((f) => f.part);
  const part = parts.length ? Math.max(...parts) + 1 : 0;
  return part ? `events-${day}.${part}.jsonl` : `events-${day}.jsonl`;
}

/** The log's files, oldest first (the current one last); other files in the folder (an operator's copies) are not the log's. */
export async function auditFiles(dir: string): Promise<AuditFile[]> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
  const rotated: AuditFile[] = [];
  for (const name of names) {
    const m = ROTATED.exec(name);
    if (m) rotated.push({ name, day: m[1], part: Number(m[2] ?? 0) });
  }
  rotated.sort((a, b) => (a.day! < b.day! ? -1 : a.day! > b.day! ? 1 : a.part - b.part));
  return names.includes(CURRENT) ? [...rotated, { name: CURRENT, day: null, part: 0 }] : rotated;
}

/** Each line of a file, as read (a torn last line included); nothing for a file that is gone. */
export async function* linesOf(file: string): AsyncGenerator<string> {
  const input = createReadStream(file, { encoding: "utf8" });
  try {
    await new Promise<void>((ok, fail) => input.once("open", () => ok()).once("error", fail));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw e;
  }
  yield* createInterface({ input, crlfDelay: Infinity });
}

/** The `time` of the first event in a file that parses, or null. */
export async function firstTime(file: string): Promise<string | null> {
  for await (const line of linesOf(file)) {
    const t = timeOf(line);
    if (t) return t;
  }
  return null;
}

/** The `time` of the last complete event in a file (read from its end), or null. */
export async function lastTime(file: string): Promise<string | null> {
  let fh;
  try {
    fh = await fsp.open(file, "r");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
  try {
    const { size } = await fh.stat();
    // Lines are short (an event is at most a few KiB); a larger tail is read if none ends in it.
    for (let want = 64 * 1024; ; want *= 4) {
      const start = Math.max(0, size - want);
      const buf = Buffer.alloc(size - start);
      await fh.read(buf, 0, buf.length, start);
      const lines = buf.toString("utf8").split("\n");
      // The last piece is empty (the file ends with a newline) or torn; the first may be cut by `start`.
      for (let i = lines.length - 2; i >= (start > 0 ? 1 : 0); i--) {
        const t = timeOf(lines[i]);
        if (t) return t;
      }
      if (start === 0) return null;
    }
  } finally {
    await fh.close();
  }
}

/** How many lines a file holds (its events, a torn one included). */
export async function countLines(file: string): Promise<number> {
  let n = 0;
  try {
    for await (const chunk of createReadStream(file)) for (const byte of chunk as Buffer) if (byte === 10) n++;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw e;
  }
  return n;
}

function timeOf(line: string): string | null {
  try {
    const t = (JSON.parse(line) as { time?: unknown }).time;
    return typeof t === "string" && !Number.isNaN(Date.parse(t)) ? t : null;
  } catch {
    return null;
  }
}

export const filePath = (dir: string, f: AuditFile) => path.join(dir, f.name);
