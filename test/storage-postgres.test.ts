/**
 * The PostgreSQL backend against a real PostgreSQL server (Debian's): the
 * same suite as the file backend, then what only a shared backend must do:
 * several replicas on one database agree, see each other's changes, and
 * migrate once.
 */
import { POSTGRES_SCHEMA } from "../src/storage/postgres-schema.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { PostgresBackend } from "../src/storage/postgres.ts";
import type { WatchEvent } from "../src/storage/backend.ts";
import { backendSuite } from "./helpers/backend-suite.ts";
import { BackendReplayCache } from "../src/auth/replay-cache.ts";
import { entraPassword } from "../src/storage/postgres-auth.ts";
import { startPostgres, type TestPostgres } from "./helpers/postgres.ts";
import { createSelfSignedCa } from "../src/pki/authority.ts";
import { SWEEP_GRACE_MS } from "../src/storage/postgres.ts";
import { systemClock } from "../src/util/clock.ts";
import { FakeClock } from "./helpers/fake-clock.ts";

async function otherCaPem(): Promise<string> {
  return (await createSelfSignedCa("CN=another CA", { now: new Date(), notAfter: new Date(Date.now() + 86_400_000) })).cert.toString("pem") + "\n";
}

let server: TestPostgres;
let databases = 0;
const freshDatabase = () => server.database(`azgate_test_${++databases}`);

beforeAll(async () => {
  server = await startPostgres();
}, 60_000);
afterAll(async () => server?.stop());

backendSuite("postgres", async (clock) => PostgresBackend.open({ connectionString: await freshDatabase(), clock }));

describe("postgres backend shared by replicas", () => {
  it("two replicas on one database: one compare-and-swap winner, and each sees the other's changes", async () => {
    const url = await freshDatabase();
    const [a, b] = await Promise.all([PostgresBackend.open({ connectionString: url, clock: systemClock }), PostgresBackend.open({ connectionString: url, clock: systemClock })]);
    try {
      const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).compareAndSwap("invites/x", null, i)));
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);

      const seen: WatchEvent[] = [];
      const stop = a.watch("roles/", (e) => seen.push(e));
      await a.watching(); // another replica's writes are heard from here on
      await b.put("roles/r", { from: "b" });
      await b.delete("roles/r");
      await expect.poll(() => seen.map((e) => e.type)).toEqual(["put", "delete"]);
      expect(seen[0]).toMatchObject({ type: "put", item: { key: "roles/r", value: { from: "b" } } });
      stop();
      // A value too large to travel in a notification is read by the watcher instead.
      const big = "x".repeat(20_000);
      const stop2 = a.watch("big/", (e) => seen.push(e));
      await b.put("big/one", big);
      await expect.poll(() => seen.length).toBe(3);
      expect(seen[2]).toMatchObject({ type: "put", item: { key: "big/one", value: big } });
      stop2();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("a proof nonce used at one replica is refused at another", async () => {
    const url = await freshDatabase();
    const [a, b] = await Promise.all([PostgresBackend.open({ connectionString: url, clock: systemClock }), PostgresBackend.open({ connectionString: url, clock: systemClock })]);
    try {
      const until = Date.now() + 60_000;
      expect(await new BackendReplayCache(a).remember("session:nonce-1", until)).toBe(true);
      expect(await new BackendReplayCache(b).remember("session:nonce-1", until)).toBe(false);
      expect(await new BackendReplayCache(b).remember("session:nonce-2", until)).toBe(true);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("replicas judge expiry by their own clocks, and sweep only SWEEP_GRACE_MS past it: a replica whose clock runs ahead removes nothing another still reads", async () => {
    const url = await freshDatabase();
    const behind = new FakeClock();
    const ahead = new FakeClock(behind.now() + 60_000);
    const [a, b] = await Promise.all([PostgresBackend.open({ connectionString: url, clock: behind }), PostgresBackend.open({ connectionString: url, clock: ahead })]);
    try {
      await a.put("login-failures/x", 1, { expires: new Date(behind.now() + 30_000) });
      // The replica ahead reads it as expired; its listing would sweep, but not within the grace.
      expect(await b.get("login-failures/x")).toBeNull();
      expect(await b.list("login-failures/")).toEqual([]);
      expect((await a.get("login-failures/x"))?.value).toBe(1);
      // Past the grace on the fast clock, a listing there removes the row for every replica.
      ahead.advance(SWEEP_GRACE_MS);
      expect(await b.list("login-failures/")).toEqual([]);
      expect(await a.get("login-failures/x")).toBeNull();
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        expect((await client.query("SELECT count(*)::int AS n FROM azgate_items WHERE key = 'login-failures/x'")).rows[0].n).toBe(0);
      } finally {
        await client.end();
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("migrates once when replicas start together, and refuses a schema newer than it knows", async () => {
    const url = await freshDatabase();
    const opened = await Promise.all(Array.from({ length: 4 }, () => PostgresBackend.open({ connectionString: url, clock: systemClock })));
    await Promise.all(opened.map((b) => b.close()));
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      expect((await client.query("SELECT version FROM azgate_schema ORDER BY version")).rows).toEqual(Array.from({ length: POSTGRES_SCHEMA }, (_, i) => ({ version: i + 1 })));
      await client.query("INSERT INTO azgate_schema (version) VALUES (99)");
    } finally {
      await client.end();
    }
    await expect(PostgresBackend.open({ connectionString: url, clock: systemClock })).rejects.toThrow(/schema is version 99, newer than this azgate knows/);
  });

  it("says clearly when the database cannot be reached or refuses the password", async () => {
    await expect(PostgresBackend.open({ connectionString: "postgres://azgate:x@127.0.0.1:1/postgres", clock: systemClock })).rejects.toMatchObject({ code: "connection_failed", message: expect.stringMatching(/^PostgreSQL: .*ECONNREFUSED/) });
    const wrong = new URL(server.url);
    wrong.password = "wrong";
    await expect(PostgresBackend.open({ connectionString: wrong.toString(), clock: systemClock })).rejects.toThrow(/PostgreSQL: password authentication failed/);
  });

  it("verifies a TLS server against the given CA, and refuses one it does not trust", async () => {
    const tlsServer = await startPostgres({ tls: true });
    try {
      const url = await tlsServer.database("azgate_tls");
      const b = await PostgresBackend.open({ connectionString: url, caPem: tlsServer.caPem, clock: systemClock });
      try {
        const { rows } = await b.pool.query<{ ssl: boolean }>("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
        expect(rows[0].ssl).toBe(true);
      } finally {
        await b.close();
      }
      // Another CA: the connection is refused before any password is sent.
      await expect(PostgresBackend.open({ connectionString: url, caPem: await otherCaPem(), clock: systemClock })).rejects.toThrow(/PostgreSQL: .*(self[- ]signed|unable to verify|certificate)/i);
      // sslmode in the string alone (no CA given): verify-full with the system CAs refuses it too.
      await expect(PostgresBackend.open({ connectionString: `${url}?sslmode=verify-full`, clock: systemClock })).rejects.toThrow(/PostgreSQL: .*(self[- ]signed|unable to verify|certificate)/i);
    } finally {
      await tlsServer.stop();
    }
  }, 60_000);

  it("asks a password source for each new connection (how Entra tokens are used)", async () => {
    const url = new URL(await freshDatabase());
    const password = decodeURIComponent(url.password);
    url.password = "";
    let asked = 0;
    const b = await PostgresBackend.open({ connectionString: url.toString(), password: async () => (asked++, password), clock: systemClock });
    try {
      await b.put("roles/a", 1);
      expect(asked).toBeGreaterThan(0);
    } finally {
      await b.close();
    }
  });
});

describe("Entra ID passwords for Azure Database for PostgreSQL", () => {
  it("asks for the OSS RDBMS scope, reuses a token until 5 minutes before it expires, then asks again", async () => {
    const clock = new FakeClock();
    const scopes: string[] = [];
    let issued = 0;
    const credential = {
      async getToken(scope: string | string[]) {
        scopes.push([scope].flat()[0]);
        issued++;
        return { token: `entra-token-${issued}`, expiresOnTimestamp: clock.now() + 60 * 60_000 };
      },
    };
    const password = entraPassword(clock, credential);
    expect(await password()).toBe("entra-token-1");
    clock.advance(50 * 60_000); // 10 minutes left: still good
    expect(await password()).toBe("entra-token-1");
    clock.advance(6 * 60_000); // 4 minutes left: renewed
    expect(await password()).toBe("entra-token-2");
    expect(scopes).toEqual(["https://ossrdbms-aad.database.windows.net/.default", "https://ossrdbms-aad.database.windows.net/.default"]);
  });
});
