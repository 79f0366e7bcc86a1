import { describe, expect, it } from "vitest";
import type { Backend, WatchEvent } from "../../src/storage/backend.ts";
import type { Clock } from "../../src/util/clock.ts";
import { FakeClock } from "./fake-clock.ts";

const DAY = 86_400_000;

/** The behaviour every backend must have; run against each implementation, opened with the clock given. */
export function backendSuite(name: string, openWith: (clock: Clock) => Promise<Backend>) {
  const open = () => openWith(new FakeClock());
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

    it("hides and sweeps expired items, judged by the backend's clock as it moves", async () => {
      const clock = new FakeClock();
      const b = await openWith(clock);
      await b.put("tokens/old", 1, { expires: new Date(clock.now() - 1000) });
      await b.put("tokens/new", 2, { expires: new Date(clock.now() + 60_000) });
      expect(await b.get("tokens/old")).toBeNull();
      expect((await b.list("tokens/")).map((i) => i.key)).toEqual(["tokens/new"]);
      clock.advance(59_999);
      expect((await b.get("tokens/new"))?.value).toBe(2);
      clock.advance(1);
      expect(await b.get("tokens/new")).toBeNull();
      expect(await b.list("tokens/")).toEqual([]);
      // An expired key reads as absent to compare-and-swap too: it can be claimed again.
      expect((await b.compareAndSwap("tokens/new", null, 3)).value).toBe(3);
      await b.close();
    });

    it("expiry is the backend's clock's alone: 400 days from the machine's either way, an item lives exactly its time", async () => {
      for (const offset of [-400 * DAY, 400 * DAY]) {
        const clock = new FakeClock(Date.now() + offset);
        const b = await openWith(clock);
        await b.put("invites/x", 1, { expires: new Date(clock.now() + 60_000) });
        expect((await b.get("invites/x"))?.value).toBe(1);
        expect((await b.list("invites/")).map((i) => i.key)).toEqual(["invites/x"]);
        await expect(b.compareAndSwap("invites/x", null, 2)).rejects.toMatchObject({ code: "compare_failed" });
        clock.advance(60_000);
        expect(await b.get("invites/x")).toBeNull();
        expect(await b.delete("invites/x")).toBe(false);
        await b.close();
      }
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
      const names = () => seen.map((e) => (e.type === "put" ? `put ${e.item.key}=${JSON.stringify(e.item.value)}` : e.type === "delete" ? `delete ${e.key}` : "resync"));
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
