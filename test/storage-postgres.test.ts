/**
 * The PostgreSQL backend against a real PostgreSQL server (Debian's): the
 * same suite as the file backend, then what only a shared backend must do:
 * several replicas on one database agree, see each other's changes, and
 * migrate once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { PostgresBackend } from "../src/storage/postgres.ts";
import type { WatchEvent } from "../src/storage/backend.ts";
import { backendSuite } from "./helpers/backend-suite.ts";
import { BackendReplayCache } from "../src/auth/replay-cache.ts";
import { entraPassword } from "../src/storage/postgres-auth.ts";
import { startPostgres, type TestPostgres } from "./helpers/postgres.ts";
import { createSelfSignedCa } from "../src/pki/authority.ts";

async function otherCaPem(): Promise<string> {
  return (await createSelfSignedCa("CN=another CA", new Date(Date.now() + 86_400_000))).cert.toString("pem") + "\n";
}

let server: TestPostgres;
let databases = 0;
const freshDatabase = () => server.database(`azgate_test_${++databases}`);

beforeAll(async () => {
  server = await startPostgres();
}, 60_000);
afterAll(async () => server?.stop());

backendSuite("postgres", async () => PostgresBackend.open({ connectionString: await freshDatabase() }));

describe("postgres backend shared by replicas", () => {
  it("two replicas on one database: one compare-and-swap winner, and each sees the other's changes", async () => {
    const url = await freshDatabase();
    const [a, b] = await Promise.all([PostgresBackend.open({ connectionString: url }), PostgresBackend.open({ connectionString: url })]);
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
    const [a, b] = await Promise.all([PostgresBackend.open({ connectionString: url }), PostgresBackend.open({ connectionString: url })]);
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

  it("expiry follows the database's clock, and an expired key can be claimed again", async () => {
    const b = await PostgresBackend.open({ connectionString: await freshDatabase() });
    try {
      await b.put("login-failures/x", 1, { expires: new Date(Date.now() - 1) });
      expect(await b.get("login-failures/x")).toBeNull();
      expect(await b.delete("login-failures/x")).toBe(false);
      await b.put("invites/y", 1, { expires: new Date(Date.now() - 1) });
      expect((await b.compareAndSwap("invites/y", null, 2)).value).toBe(2);
    } finally {
      await b.close();
    }
  });

  it("migrates once when replicas start together, and refuses a schema newer than it knows", async () => {
    const url = await freshDatabase();
    const opened = await Promise.all(Array.from({ length: 4 }, () => PostgresBackend.open({ connectionString: url })));
    await Promise.all(opened.map((b) => b.close()));
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      expect((await client.query("SELECT version FROM azgate_schema ORDER BY version")).rows).toEqual([{ version: 1 }, { version: 2 }, { version: 3 }, { version: 4 }]);
      await client.query("INSERT INTO azgate_schema (version) VALUES (99)");
    } finally {
      await client.end();
    }
    await expect(PostgresBackend.open({ connectionString: url })).rejects.toThrow(/schema is version 99, newer than this azgate knows/);
  });

  it("says clearly when the database cannot be reached or refuses the password", async () => {
    await expect(PostgresBackend.open({ connectionString: "postgres://azgate:x@127.0.0.1:1/postgres" })).rejects.toMatchObject({ code: "connection_failed", message: expect.stringMatching(/^PostgreSQL: .*ECONNREFUSED/) });
    const wrong = new URL(server.url);
    wrong.password = "wrong";
    await expect(PostgresBackend.open({ connectionString: wrong.toString() })).rejects.toThrow(/PostgreSQL: password authentication failed/);
  });

  it("verifies a TLS server against the given CA, and refuses one it does not trust", async () => {
    const tlsServer = await startPostgres({ tls: true });
    try {
      const url = await tlsServer.database("azgate_tls");
      const b = await PostgresBackend.open({ connectionString: url, caPem: tlsServer.caPem });
      try {
        const { rows } = await b.pool.query<{ ssl: boolean }>("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
        expect(rows[0].ssl).toBe(true);
      } finally {
        await b.close();
      }
      // Another CA: the connection is refused before any password is sent.
      await expect(PostgresBackend.open({ connectionString: url, caPem: await otherCaPem() })).rejects.toThrow(/PostgreSQL: .*(self[- ]signed|unable to verify|certificate)/i);
      // sslmode in the string alone (no CA given): verify-full with the system CAs refuses it too.
      await expect(PostgresBackend.open({ connectionString: `${url}?sslmode=verify-full` })).rejects.toThrow(/PostgreSQL: .*(self[- ]signed|unable to verify|certificate)/i);
    } finally {
      await tlsServer.stop();
    }
  }, 60_000);

  it("asks a password source for each new connection (how Entra tokens are used)", async () => {
    const url = new URL(await freshDatabase());
    const password = decodeURIComponent(url.password);
    url.password = "";
    let asked = 0;
    const b = await PostgresBackend.open({ connectionString: url.toString(), password: async () => (asked++, password) });
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
    let now = Date.now();
    const scopes: string[] = [];
    let issued = 0;
    const credential = {
      async getToken(scope: string | string[]) {
        scopes.push([scope].flat()[0]);
        issued++;
        return { token: `entra-token-${issued}`, expiresOnTimestamp: now + 60 * 60_000 };
      },
    };
    const password = entraPassword(credential, () => now);
    expect(await password()).toBe("entra-token-1");
    now += 50 * 60_000; // 10 minutes left: still good
    expect(await password()).toBe("entra-token-1");
    now += 6 * 60_000; // 4 minutes left: renewed
    expect(await password()).toBe("entra-token-2");
    expect(scopes).toEqual(["https://ossrdbms-aad.database.windows.net/.default", "https://ossrdbms-aad.database.windows.net/.default"]);
  });
});
