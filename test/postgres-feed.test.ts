/**
 * The PostgreSQL change feed (LISTEN) cut by the database: a restart, a
 * failover, idle_session_timeout, a pooler or a firewall. From an outside
 * review: the cut ended the proxy process (an error on a checked-out client
 * nobody handled), and a replica that survived it would never have heard of
 * a CA a rotation on another replica retired. The feed now comes back at
 * once (or after RELISTEN_MS, doubling, while it cannot), watchers hear a
 * resync, and a connection that goes silent is found by a check every
 * FEED_CHECK_MS. A second review's cases: no reconnect loop, close() during a
 * reconnect, five cuts in a row, a silent connection.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useEmulator } from "./helpers/emulator.ts";
import { IDENTITY, startCluster } from "./helpers/cluster.ts";
import { memoryReplicas, startMemoryCluster, type MemoryCluster } from "./helpers/memory-cluster.ts";
import { asSuperuser, startPostgres, type TestPostgres } from "./helpers/postgres.ts";
import { rotateAuthority } from "../src/proxy/rotation.ts";
import { FEED_CHECK_MS, FEED_CHECK_TIMEOUT_MS, PostgresBackend, RELISTEN_MAX_MS, RELISTEN_MS } from "../src/storage/postgres.ts";
import { startRelay, viaRelay } from "./helpers/pg-relay.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import type { Phase } from "../src/pki/rotation.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");
const GROUPS = "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2022-09-01";
const role = (name: string) => `kind: role\nversion: v7\nmetadata: {name: ${name}}\nspec: {allow: {app_labels: {'*': '*'}, azure_identities: ['${READER}']}}\n`;


/** The backends LISTENing on `database` (each replica's change feed). */
const listeners = async (url: string, database: string) => (await asSuperuser<{ pid: number }>(url, `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND query ILIKE 'LISTEN%'`, [database])).map((r) => r.pid).sort();

describe("a proxy process on PostgreSQL whose change feed is cut", () => {
  let server: TestPostgres;
  beforeAll(async () => {
    server = await startPostgres();
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });

  it("keeps running, says so, and LISTENs again", async () => {
    const conn = await server.database("feedproc");
    const cluster = await startCluster({ env: { AZGATE_STORAGE_TYPE: "postgres", AZGATE_STORAGE_CONN_STRING: conn } });
    try {
      await expect.poll(() => listeners(conn, "feedproc"), { timeout: 15_000 }).toHaveLength(1);
      const [before] = await listeners(conn, "feedproc");
      await asSuperuser(conn, `SELECT pg_terminate_backend($1)`, [before]);
      await expect.poll(async () => (await listeners(conn, "feedproc")).filter((p) => p !== before), { timeout: 15_000 }).toHaveLength(1);
      expect(cluster.proxy.child.exitCode).toBeNull();
      expect(cluster.proxy.output()).toMatch(/the change feed \(LISTEN\) was cut: .*; listening again/);
      // Still serving: the API answers.
      expect(await cluster.admin.call("GET", "/v1/whoami")).toMatchObject({ name: expect.any(String) });
    } finally {
      await cluster.stop();
    }
  }, 60_000);
});


describe("two replicas on PostgreSQL: B's change feed cut, a CA retired on A", () => {
  let replicas: Awaited<ReturnType<typeof memoryReplicas>>;
  let conn: string;
  let a: MemoryCluster;
  let b: MemoryCluster;
  let n = 0;
  beforeAll(async () => {
    replicas = await memoryReplicas(fx, "feedpg");
    ({ a, b, conn } = replicas);
  }, 90_000);
  afterAll(async () => {
    await replicas?.close();
  });

  /** A session on B of the user CA signing now, answered once. */
  const onB = async () => {
    const r = `feed-${++n}`;
    await a.createRoles(role(r));
    const user = `feeduser-${n}`;
    const { caller, expires } = await b.signIn(user, [r]);
    const session = await b.appSessionAs(caller, expires, READER, { pinned: true });
    const app = {
      async request() {
        const res = await session.request(GROUPS);
        const text = await res.text();
        return { status: res.status, code: res.status === 200 ? null : (JSON.parse(text).error?.code as string) };
      },
      close: () => session.session.close(0, "done"),
    };
    expect((await app.request()).status).toBe(200);
    return { user, app };
  };
  const rotateUserCaToRetirement = async () => {
    for (const phase of ["init", "update_clients", "update_servers", "standby"] as Phase[]) await rotateAuthority(a.ctx, a.admin, "user", { mode: "manual", phase });
  };
  const refusedOnB = async (user: string) => (await b.ctx.audit.search({ event: "app.request.denied" })).filter((e) => e.user === user).map((e) => e.error_code);

  it("cut and back at once: B hears the rotation, and the old CA's tunnel is refused on its next request, audited", async () => {
    const { user, app } = await onB();
    const before = await listeners(conn, "feedpg");
    expect(before).toHaveLength(2);
    await asSuperuser(conn, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'feedpg' AND query ILIKE 'LISTEN%'`);
    // Both replicas LISTEN again, on new connections, with no clock moved.
    await expect.poll(async () => (await listeners(conn, "feedpg")).filter((p) => !before.includes(p)), { timeout: 15_000 }).toHaveLength(2);
    await rotateUserCaToRetirement();
    await expect.poll(() => app.request(), { timeout: 10_000 }).toEqual({ status: 401, code: "ca_retired" });
    expect(await refusedOnB(user)).toContain("ca_retired");
    app.close();
  }, 60_000);

  it("the database refusing connections for a while: B refuses meanwhile, LISTENs again on its next retry, and the resync brings the rotation it missed", async () => {
    const { user, app } = await onB();
    const cut = await listeners(conn, "feedpg");
    await asSuperuser(conn, `ALTER DATABASE feedpg ALLOW_CONNECTIONS false`);
    try {
      // Every connection to it goes: the feeds and the pools' (a restart, as a replica sees one).
      await asSuperuser(conn, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'feedpg' AND pid <> pg_backend_pid()`);
      await expect.poll(() => listeners(conn, "feedpg"), { timeout: 10_000 }).toEqual([]);
      // B cannot read its state or commit a start event: refused (500 internal), nothing answered as if allowed.
      expect(await app.request()).toEqual({ status: 500, code: "internal" });
    } finally {
      await asSuperuser(conn, `ALTER DATABASE feedpg ALLOW_CONNECTIONS true`);
    }
    // A rotates while B's feed waits for its retry: the NOTIFY goes out with nobody on B to hear it.
    await rotateUserCaToRetirement();
    b.clock.advance(RELISTEN_MAX_MS); // the retry's wait, however far it has doubled
    await expect.poll(async () => (await listeners(conn, "feedpg")).filter((p) => !cut.includes(p)), { timeout: 10_000 }).toHaveLength(2);
    // Back, B resyncs: it reloads the authorities and hears of the retired CA it missed.
    await expect.poll(() => app.request(), { timeout: 10_000 }).toEqual({ status: 401, code: "ca_retired" });
    expect(await refusedOnB(user)).toContain("ca_retired");
    app.close();
  }, 60_000);
});

describe("the change feed of one backend, through a relay that cuts, holds or silences it", () => {
  let server: TestPostgres;
  beforeAll(async () => {
    server = await startPostgres();
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });

  it("a LISTEN cut every time is tried again on the backend's clock, not in a loop", async () => {
    const conn = await server.database("feedloop");
    const relay = await startRelay(Number(new URL(conn).port));
    const clock = new FakeClock();
    const backend = await PostgresBackend.open({ connectionString: viaRelay(conn, relay.port), clock });
    try {
      relay.mode.killListen = true;
      const before = relay.listens;
      const heard: string[] = [];
      backend.watch("x/", (e) => heard.push(e.type));
      await expect.poll(() => relay.listens - before, { timeout: 10_000 }).toBe(1);
      // The clock has not moved: whatever else happens in real time, no second attempt (a loop made 57 in 2 s).
      await new Promise((r) => setTimeout(r, 500));
      expect(relay.listens - before).toBe(1);
      // Each retry waits on the clock, the waits doubling: 1 s, then 2 s more.
      clock.advance(RELISTEN_MS);
      await expect.poll(() => relay.listens - before, { timeout: 10_000 }).toBe(2);
      clock.advance(RELISTEN_MS);
      await new Promise((r) => setTimeout(r, 200));
      expect(relay.listens - before).toBe(2);
      relay.mode.killListen = false;
      clock.advance(RELISTEN_MS);
      await expect.poll(() => heard, { timeout: 10_000 }).toEqual(["resync"]);
    } finally {
      await backend.close();
      await relay.close();
    }
  }, 30_000);

  it("close() while the feed is being opened again ends, and leaves no connection LISTENing", async () => {
    const conn = await server.database("feedclose");
    const relay = await startRelay(Number(new URL(conn).port));
    const backend = await PostgresBackend.open({ connectionString: viaRelay(conn, relay.port), clock: new FakeClock() });
    backend.watch("x/", () => undefined);
    await expect.poll(() => listeners(conn, "feedclose"), { timeout: 10_000 }).toHaveLength(1);
    relay.mode.hold = true; // the next connection (the feed's, opened again) waits at the relay
    const accepted = relay.accepted;
    const [pid] = await listeners(conn, "feedclose");
    await asSuperuser(conn, `SELECT pg_terminate_backend($1)`, [pid]);
    await expect.poll(() => relay.accepted, { timeout: 10_000 }).toBe(accepted + 1);
    const closing = backend.close().then(() => "closed");
    relay.release();
    expect(await Promise.race([closing, new Promise((r) => setTimeout(() => r("hung"), 8_000))])).toBe("closed");
    await expect.poll(() => listeners(conn, "feedclose"), { timeout: 10_000 }).toEqual([]);
    await relay.close();
  }, 30_000);

  it("five cuts in a row: one connection LISTENing, none leaked, and a writer's change still heard", async () => {
    const conn = await server.database("feedcuts");
    const clock = new FakeClock();
    const backend = await PostgresBackend.open({ connectionString: conn, clock });
    const writer = await PostgresBackend.open({ connectionString: conn, clock: new FakeClock() });
    try {
      const heard: string[] = [];
      backend.watch("x/", (e) => heard.push(e.type === "put" ? e.item.key : e.type));
      for (let i = 0; i < 5; i++) {
        await expect.poll(() => listeners(conn, "feedcuts"), { timeout: 10_000 }).toHaveLength(1);
        await asSuperuser(conn, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'feedcuts' AND query ILIKE 'LISTEN%'`);
        // The first cut is taken up at once; the next ones (no check passed in between) wait a retry, doubling.
        if (i > 0) {
          await expect.poll(() => listeners(conn, "feedcuts"), { timeout: 10_000 }).toEqual([]);
          clock.advance(RELISTEN_MAX_MS);
        }
      }
      await expect.poll(() => listeners(conn, "feedcuts"), { timeout: 10_000 }).toHaveLength(1);
      await writer.put("x/after", { v: 1 });
      await expect.poll(() => heard.includes("x/after"), { timeout: 5_000 }).toBe(true);
      const open = await asSuperuser<{ n: string }>(conn, `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = 'feedcuts'`);
      expect(Number(open[0].n)).toBeLessThanOrEqual(12);
    } finally {
      await writer.close();
      await backend.close();
    }
  }, 60_000);
});

describe("two replicas, B's change feed silent (no error, no end: a NAT's or a load balancer's idle timeout)", () => {
  let server: TestPostgres;
  let relay: Awaited<ReturnType<typeof startRelay>>;
  let a: MemoryCluster;
  let b: MemoryCluster;
  beforeAll(async () => {
    server = await startPostgres();
    const conn = await server.database("feedsilent");
    relay = await startRelay(Number(new URL(conn).port));
    relay.mode.blackholeAfterAnswer = true;
    a = await startMemoryCluster(fx, { storage: { type: "postgres", conn_string: conn } });
    b = await startMemoryCluster(fx, { storage: { type: "postgres", conn_string: viaRelay(conn, relay.port) } });
    a.agent();
    b.agent();
  }, 90_000);
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await relay?.close();
    await server?.stop();
  });

  it("a user CA retired on A: B's check finds its feed dead, LISTENs again, and refuses the old CA's tunnel", async () => {
    await expect.poll(() => relay.listens, { timeout: 10_000 }).toBe(1);
    await a.createRoles(role("silent"));
    const { caller, expires } = await b.signIn("silent-user", ["silent"]);
    const app = await b.appSessionAs(caller, expires, READER, { pinned: true });
    expect((await app.request(GROUPS)).status).toBe(200);
    for (const phase of ["init", "update_clients", "update_servers", "standby"] as Phase[]) await rotateAuthority(a.ctx, a.admin, "user", { mode: "manual", phase });
    // The check goes out (the relay sees it) and no answer comes back; then its time limit passes. (A connection that
    // answers is not cut: test/postgres-feed-attacks.test.ts.)
    const checks = relay.checks;
    await b.clock.advance(FEED_CHECK_MS);
    await expect.poll(() => relay.checks, { timeout: 10_000 }).toBe(checks + 1);
    await b.clock.advance(FEED_CHECK_TIMEOUT_MS);
    // Opened again at once (and silenced again by the relay), and B resyncs: the retired CA is refused.
    await expect.poll(() => relay.listens, { timeout: 10_000 }).toBe(2);
    await expect.poll(async () => (await app.request(GROUPS)).status, { timeout: 10_000 }).toBe(401);
    expect((await b.ctx.audit.search({ event: "app.request.denied" })).filter((e) => e.user === "silent-user").map((e) => e.error_code)).toContain("ca_retired");
  }, 60_000);
});
