import { describe, expect, it } from "vitest";
import type { Backend, WatchEvent } from "../../src/storage/backend.ts";

/** The behaviour every backend must have; run against each implementation. */
export function backendSuite(name: string, open: () => Promise<Backend>) {
  describe(`backend: ${name}`, () => {
    it("puts, gets and deletes", async () => {
      const b = await open();
      expect(await b.get("users/alice")).toBeNull();
      const item = await b.put("users/alice", { roles: ["access"] });
      expect((await b.get("users/alice"))?.value).toEqual({ roles: ["access"] });
      expect((await b.get("users/alice"))?.revision).toBe(item.revision);
      expect(await b.delete("users/alice")).toBe(true);
      expect(await b.delete("users/alice")).toBe(false);
      expect(await b.get("users/alice")).toBeNull();
      await b.close();
    });

    it("compare-and-swap succeeds only on the expected revision", async () => {
      const b = await open();
      const first = await b.compareAndSwap("k/a", null, 1);
      await expect(b.compareAndSwap("k/a", null, 2)).rejects.toMatchObject({ code: "compare_failed" });
      const second = await b.compareAndSwap("k/a", first.revision, 2);
      await expect(b.compareAndSwap("k/a", first.revision, 3)).rejects.toMatchObject({ code: "compare_failed" });
      expect((await b.get("k/a"))?.value).toBe(2);
      expect(second.revision).not.toBe(first.revision);
      await b.close();
    });

    it("concurrent compare-and-swap: exactly one winner", async () => {
      const b = await open();
      const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => b.compareAndSwap("race/x", null, i)));
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      await b.close();
    });

    it("lists by prefix, sorted, not crossing into sibling prefixes", async () => {
      const b = await open();
      await b.put("roles/b", 2);
      await b.put("roles/a", 1);
      await b.put("rolesx/c", 3);
      await b.put("users/a", 4);
      await b.put("roles/nested/deep", 5);
      expect((await b.list("roles/")).map((i) => i.key)).toEqual(["roles/a", "roles/b", "roles/nested/deep"]);
      expect((await b.list("roles/a")).map((i) => i.value)).toEqual([1]);
      await b.close();
    });

    it("hides and sweeps expired items", async () => {
      const b = await open();
      await b.put("tokens/old", 1, { expires: new Date(Date.now() - 1000) });
      await b.put("tokens/new", 2, { expires: new Date(Date.now() + 60_000) });
      expect(await b.get("tokens/old")).toBeNull();
      expect((await b.list("tokens/")).map((i) => i.key)).toEqual(["tokens/new"]);
      await b.close();
    });

    it("keeps keys with unusual characters apart", async () => {
      const b = await open();
      await b.put("users/a.b@example.com", 1);
      await b.put("users/..hidden", 2);
      await b.put("users/a%2Fb", 3);
      expect((await b.list("users/")).map((i) => i.value).sort()).toEqual([1, 2, 3]);
      await expect(b.get("users/../x")).rejects.toThrow(/invalid name in/);
      // Control characters (NUL above all: PostgreSQL refuses it) are the caller's error, before the backend.
      for (const key of ["users/a\u0000b", "users/a\u001b]0;x\u0007"]) {
        await expect(b.put(key, 1)).rejects.toMatchObject({ code: "bad_parameter" });
      }
      await b.close();
    });

    it("moves its change mark with every write, and only then", async () => {
      const b = await open();
      const marks = [await b.changeMark()];
      const step = async (write: () => Promise<unknown>) => {
        await write();
        marks.push(await b.changeMark());
      };
      expect(await b.changeMark()).toBe(marks[0]);
      await step(() => b.put("users/m", 1));
      const item = await b.get("users/m");
      await step(() => b.compareAndSwap("users/m", item!.revision, 2));
      await step(() => b.delete("users/m"));
      await b.get("users/m");
      await b.list("users/");
      expect(new Set(marks).size).toBe(4);
      expect(await b.changeMark()).toBe(marks[3]);
      await b.close();
    });

    it("notifies watchers of puts and deletes under a prefix", async () => {
      const b = await open();
      const seen: WatchEvent[] = [];
      const stop = b.watch("roles/", (e) => seen.push(e));
      await b.put("roles/a", 1);
      await b.put("users/x", 1);
      await b.delete("roles/a");
      // A shared backend tells watchers asynchronously (other replicas' changes too): wait for them.
      const names = () => seen.map((e) => (e.type === "put" ? `put ${e.item.key}=${JSON.stringify(e.item.value)}` : `delete ${e.key}`));
      await expect.poll(names).toEqual(["put roles/a=1", "delete roles/a"]);
      stop();
      await b.put("roles/b", 1);
      // An absence cannot be awaited: give a notification 100 ms to arrive (the ones above took a few).
      await new Promise((r) => setTimeout(r, 100));
      expect(names()).toEqual(["put roles/a=1", "delete roles/a"]);
      await b.close();
    });
  });
}
