import { promises as fsp } from "node:fs";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { AzgateError } from "../errors/index.ts";
import { ensureDir, writeFileAtomic, readTextOrNull, removeFile, fsyncDir } from "../runtime/index.ts";
import { checkKey, isExpired, tell, type Backend, type Item, type PutOptions, type WatchEvent } from "./backend.ts";
import type { Clock } from "../util/clock.ts";

const SUFFIX = ".json";

/**
 * The embedded backend: one JSON file per key under `<dataDir>/backend`,
 * written atomically (temp, fsync, rename, fsync dir). Only one process uses a
 * data dir at a time (the caller holds the dir lock), so writes are ordered
 * by an in-process queue and watchers are in-process too.
 */
export class FileBackend implements Backend {
  private readonly root: string;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly watchers = new Set<{ prefix: string; fn: (e: WatchEvent) => void }>();
  /** Writes so far: every write goes through this process. */
  private writes = 0;

  private constructor(
    root: string,
    /** Decides what has expired. */
    private readonly clock: Clock,
  ) {
    this.root = root;
  }

  static async open(dataDir: string, clock: Clock): Promise<FileBackend> {
    const root = path.join(dataDir, "backend");
    await ensureDir(root);
    const backend = new FileBackend(root, clock);
    await backend.removeLeftoverTempFiles(root);
    return backend;
  }

  async get<T>(key: string): Promise<Item<T> | null> {
    checkKey(key);
    const text = await readTextOrNull(this.fileOf(key));
    if (text === null) return null;
    const item = JSON.parse(text) as Item<T>;
    return isExpired(item, this.clock.now()) ? null : item;
  }

  put<T>(key: string, value: T, opts?: PutOptions): Promise<Item<T>> {
    return this.serialize(() => this.write(key, value, opts));
  }

  compareAndSwap<T>(key: string, expected: string | null, value: T, opts?: PutOptions): Promise<Item<T>> {
    return this.serialize(async () => {
      const current = await this.get(key);
      if ((current?.revision ?? null) !== expected) {
        throw new AzgateError("compare_failed", `${key} was changed by someone else; read it again and retry`);
      }
      return this.write(key, value, opts);
    });
  }

  /** True when a live item was deleted (an expired one is removed too, but reads as absent, as on PostgreSQL). */
  delete(key: string): Promise<boolean> {
    checkKey(key);
    return this.serialize(async () => {
      const live = (await this.get(key)) !== null;
      const existed = await removeFile(this.fileOf(key));
      if (existed) {
        await fsyncDir(path.dirname(this.fileOf(key)));
        this.emit({ type: "delete", key });
      }
      return existed && live;
    });
  }

  async list<T>(prefix: string): Promise<Item<T>[]> {
    // Keys map to nested folders, so only the folder of the prefix's last "/" is walked.
    const cut = prefix.lastIndexOf("/");
    const dir = cut < 0 ? this.root : path.join(this.root, ...prefix.slice(0, cut).split("/").map(encodeSegment));
    const out: Item<T>[] = [];
    const expired: string[] = [];
    await this.walk(dir, async (file) => {
      const text = await readTextOrNull(file);
      if (text === null) return;
      const item = JSON.parse(text) as Item<T>;
      if (!item.key.startsWith(prefix)) return;
      if (isExpired(item, this.clock.now())) expired.push(item.key);
      else out.push(item);
    });
    // Sweep what has expired, unless it was rewritten meanwhile.
    for (const key of expired) {
      await this.serialize(async () => {
        const text = await readTextOrNull(this.fileOf(key));
        if (text && isExpired(JSON.parse(text) as Item, this.clock.now())) await removeFile(this.fileOf(key));
      });
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** Walks every file while writes wait in the queue (they all go through serialize): one moment's state. */
  snapshot(): Promise<Item[]> {
    return this.serialize(async () => {
      const out: Item[] = [];
      const now = this.clock.now();
      await this.walk(this.root, async (file) => {
        const text = await readTextOrNull(file);
        if (text === null) return;
        const item = JSON.parse(text) as Item;
        if (!isExpired(item, now)) out.push(item);
      });
      return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    });
  }

  watch(prefix: string, fn: (e: WatchEvent) => void): () => void {
    const w = { prefix, fn };
    this.watchers.add(w);
    return () => this.watchers.delete(w);
  }

  async close(): Promise<void> {
    await this.queue.catch(() => undefined);
    this.watchers.clear();
  }

  private async write<T>(key: string, value: T, opts?: PutOptions): Promise<Item<T>> {
    checkKey(key);
    const item: Item<T> = { key, value, revision: randomUUID(), ...(opts?.expires ? { expires: opts.expires.toISOString() } : {}) };
    const file = this.fileOf(key);
    await ensureDir(path.dirname(file));
    await writeFileAtomic(file, JSON.stringify(item), 0o600);
    this.emit({ type: "put", item });
    return item;
  }

  private serialize<R>(op: () => Promise<R>): Promise<R> {
    const next = this.queue.then(op, op);
    this.queue = next.catch(() => undefined);
    return next;
  }

  changeMark(): Promise<string> {
    return Promise.resolve(String(this.writes));
  }

  private emit(e: Exclude<WatchEvent, { type: "resync" }>): void {
    this.writes++;
    const key = e.type === "put" ? e.item.key : e.key;
    for (const w of this.watchers) if (key.startsWith(w.prefix)) tell(w.fn, e);
  }

  private fileOf(key: string): string {
    return path.join(this.root, ...key.split("/").map(encodeSegment)) + SUFFIX;
  }

  private async walk(dir: string, visit: (file: string) => Promise<void>): Promise<void> {
    let entries;
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      throw e;
    }
    for (const ent of entries) {
      const full = path.join(dir, ent.name);
      if (ent.isDirectory()) await this.walk(full, visit);
      else if (ent.name.endsWith(SUFFIX) && !ent.name.startsWith(".")) await visit(full);
    }
  }

  /** Temp files from writes cut off by a crash; the record they were replacing is intact. */
  private async removeLeftoverTempFiles(dir: string): Promise<void> {
    const entries = await fsp.readdir(dir, { withFileTypes: true });
    for (const ent of entries) {
      const full = path.join(dir, ent.name);
      if (ent.isDirectory()) await this.removeLeftoverTempFiles(full);
      else if (ent.name.startsWith(".") && ent.name.includes(".tmp-")) await fsp.rm(full, { force: true });
    }
  }
}

/** Segments become safe file names: no separators, no leading dot, no case folding surprises. */
function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/^\./, "%2E").replace(/\*/g, "%2A");
}
