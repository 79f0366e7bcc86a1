/**
 * The proxy's cache of users, roles and locks (src/proxy/access-cache.ts):
 * one read per key and change mark; a write (any write) moves the mark and the
 * next snapshot reads again; a write that does not move the mark is seen
 * after SNAPSHOT_MAX_AGE_MS; a cached lock that expires stops counting.
 */
import { describe, expect, it } from "vitest";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { FileBackend } from "../src/storage/file.ts";
import type { Backend } from "../src/storage/backend.ts";
import { accessSnapshot, SNAPSHOT_MAX_AGE_MS } from "../src/proxy/access-cache.ts";
import { KEYS } from "../src/proxy/keys.ts";
import { FakeClock } from "./helpers/fake-clock.ts";

async function counted(mark?: () => string) {
  const clock = new FakeClock();
  const inner = await FileBackend.open(mkdtempSync(path.join(tmpdir(), "azgate-access-")), clock);
  const reads: string[] = [];
  const backend: Backend = Object.assign(Object.create(inner) as Backend, {
    get: (key: string) => (reads.push(key), inner.get(key)),
    list: (prefix: string) => (reads.push(prefix), inner.list(prefix)),
    changeMark: mark ? async () => mark() : () => inner.changeMark(),
  });
  return { inner, backend, reads, clock };
}

const user = (roles: string[]) => ({ kind: "user", version: "v2", metadata: { name: "alice" }, spec: { roles, traits: {} } });

describe("the access cache", () => {
  it("reads each key once per change mark, and again after any write", async () => {
    const { inner, backend, reads, clock } = await counted();
    await inner.put(KEYS.user("alice"), user(["a"]));
    for (let i = 0; i < 3; i++) expect((await (await accessSnapshot(backend, clock)).user("alice"))?.spec.roles).toEqual(["a"]);
    expect(reads.filter((r) => r === KEYS.user("alice"))).toHaveLength(1);
    // A write anywhere (here: another user) moves the mark: the next request reads again.
    await backend.put(KEYS.user("bob"), user([]));
    await inner.put(KEYS.user("alice"), user(["b"]));
    expect((await (await accessSnapshot(backend, clock)).user("alice"))?.spec.roles).toEqual(["b"]);
    await inner.close();
  });

  it("sees a write that did not move the mark after SNAPSHOT_MAX_AGE_MS", async () => {
    const { inner, backend, clock } = await counted(() => "fixed");
    await inner.put(KEYS.user("alice"), user(["a"]));
    expect((await (await accessSnapshot(backend, clock)).user("alice"))?.spec.roles).toEqual(["a"]);
    await inner.put(KEYS.user("alice"), user(["b"]));
    expect((await (await accessSnapshot(backend, clock)).user("alice"))?.spec.roles).toEqual(["a"]);
    clock.advance(SNAPSHOT_MAX_AGE_MS);
    expect((await (await accessSnapshot(backend, clock)).user("alice"))?.spec.roles).toEqual(["b"]);
    await inner.close();
  });

  it("leaves out a cached lock once it has expired", async () => {
    const { inner, backend, clock } = await counted(() => "fixed");
    const expires = new Date(clock.now() + 60_000);
    await inner.put(KEYS.lock("l1"), { kind: "lock", version: "v2", metadata: { name: "l1", expires: expires.toISOString() }, spec: { target: { user: "alice" } } }, { expires });
    const snapshot = await accessSnapshot(backend, clock);
    expect((await snapshot.locks()).map((l) => l.metadata.name)).toEqual(["l1"]);
    clock.advance(60_000);
    expect(await snapshot.locks()).toEqual([]);
    await inner.close();
  });
});
