import type { Clock } from "./clock.ts";

/** Remembers a loaded value (a promise, so concurrent callers share one load) for `ttlMs` of `clock`; a failed load is not remembered. */
export function ttlCache<T>(ttlMs: number, clock: Clock): (key: string, load: () => Promise<T>) => Promise<T> {
  const entries = new Map<string, { at: number; value: Promise<T> }>();
  return (key, load) => {
    const hit = entries.get(key);
    if (hit && clock.now() - hit.at < ttlMs) return hit.value;
    const value = load();
    value.catch(() => entries.delete(key));
    entries.set(key, { at: clock.now(), value });
    return value;
  };
}
