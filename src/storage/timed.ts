/** A backend whose every operation is timed into a histogram (by op), for the metrics. */
import type { Backend } from "./backend.ts";

type Observe = (op: string, seconds: number) => void;

export function timedBackend(inner: Backend, observe: Observe): Backend {
  const timed =
    <A extends unknown[], R>(op: string, fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const start = performance.now();
      try {
        return await fn(...args);
      } finally {
        observe(op, (performance.now() - start) / 1000);
      }
    };
  return {
    get: timed("get", (key: string) => inner.get(key)) as Backend["get"],
    put: timed("put", (key: string, value: unknown, opts?: Parameters<Backend["put"]>[2]) => inner.put(key, value, opts)) as Backend["put"],
    compareAndSwap: timed("compare_and_swap", (key: string, expected: string | null, value: unknown, opts?: Parameters<Backend["put"]>[2]) =>
      inner.compareAndSwap(key, expected, value, opts),
    ) as Backend["compareAndSwap"],
    delete: timed("delete", (key: string) => inner.delete(key)),
    list: timed("list", (prefix: string) => inner.list(prefix)) as Backend["list"],
    watch: (prefix, fn) => inner.watch(prefix, fn),
    snapshot: timed("snapshot", () => inner.snapshot()),
    changeMark: timed("change_mark", () => inner.changeMark()),
    close: () => inner.close(),
  };
}
