import { AzgateError } from "../errors/index.ts";
/**
 * The backend interface of DESIGN.md section 7. Values are JSON. Every write
 * returns a new revision; compareAndSwap succeeds only if the stored revision
 * is still the one the caller read (null: the key must not exist).
 */
export interface Item<T = unknown> {
  key: string;
  value: T;
  revision: string;
  /** ISO time after which the item reads as absent and is swept. */
  expires?: string;
}

export interface PutOptions {
  expires?: Date;
}

/**
 * A change to a watched prefix. `resync`: changes may have been missed (a
 * replica's change feed was cut and is back, or is still down while others
 * write): reload whatever is followed.
 */
export type WatchEvent = { type: "put"; item: Item } | { type: "delete"; key: string } | { type: "resync" };

export interface Backend {
  get<T = unknown>(key: string): Promise<Item<T> | null>;
  put<T>(key: string, value: T, opts?: PutOptions): Promise<Item<T>>;
  /** Fails with compare_failed when the stored revision is not `expected`. */
  compareAndSwap<T>(key: string, expected: string | null, value: T, opts?: PutOptions): Promise<Item<T>>;
  /** True when a live (unexpired) item was deleted: an expired one reads as absent here too. */
  delete(key: string): Promise<boolean>;
  /** Items whose key starts with `prefix`, sorted by key. */
  list<T = unknown>(prefix: string): Promise<Item<T>[]>;
  watch(prefix: string, onEvent: (e: WatchEvent) => void): () => void;
  /**
   * Every live item, sorted by key, as of one moment: no write lands between
   * the first item read and the last (a backup's consistent snapshot; the
   * file backend holds its writes meanwhile, PostgreSQL reads it in one
   * statement).
   */
  snapshot(): Promise<Item[]>;
  /**
   * A value that changes with every write through any process sharing this
   * backend, and moves only once the write is committed: a mark read after a
   * write returned reflects it. Readers that cache compare marks to know
   * whether anything changed since they read (see proxy/access-cache.ts).
   * Expiry is not a write: cached items carry `expires` for their reader.
   */
  changeMark(): Promise<string>;
  close(): Promise<void>;
}

/**
 * Keys are slash-separated paths of non-empty segments: "users/alice". Names
 * in keys come from callers, so a bad one is the caller's error (400), and
 * control characters (NUL above all, which PostgreSQL refuses) never reach a
 * backend.
 */
export function checkKey(key: string): void {
  if (!key || key.length > 1024 || /[\x00-\x1f\x7f]/.test(key) || key.startsWith("/") || key.endsWith("/") || key.split("/").some((s) => s === "" || s === "." || s === "..")) {
    throw new AzgateError("bad_parameter", `invalid name in ${JSON.stringify(key.slice(0, 80))}: names are 1-256 printable characters without "/"`);
  }
}

/** Whether an item has expired at `now` (the backend's clock: see util/clock.ts and docs/architecture.md, "Time"). */
export function isExpired(item: { expires?: string }, now: number): boolean {
  return item.expires !== undefined && Date.parse(item.expires) <= now;
}

/** Writes `value` only if `key` is absent (or expired); false when another writer got there first. */
export async function putIfAbsent<T>(backend: Backend, key: string, value: T, opts?: PutOptions): Promise<boolean> {
  try {
    await backend.compareAndSwap(key, null, value, opts);
    return true;
  } catch (e) {
    if ((e as { code?: string }).code === "compare_failed") return false;
    throw e;
  }
}

/** One watcher told of an event: one that throws is logged, and the others are still told. */
export function tell(fn: (e: WatchEvent) => void, e: WatchEvent): void {
  try {
    fn(e);
  } catch (err) {
    console.error("[storage] a watcher failed:", (err as Error).message);
  }
}
