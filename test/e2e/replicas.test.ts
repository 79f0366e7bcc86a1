/**
 * Two proxy replicas on one PostgreSQL behind a TCP load balancer, one
 * agent, the emulator (issue 8, part 2). The agent reaches one replica
 * through the balancer, learns of the other and holds a tunnel to both;
 * clients succeed through either; a replica killed with SIGKILL mid-traffic
 * costs only the requests in flight on it, and after the client reconnects
 * requests keep succeeding, with no user, role or acknowledged audit event lost.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useEmulator } from "../helpers/emulator.ts";
import { openAppSession, readBody, type AppSession } from "../helpers/cluster.ts";
import { cli, tempDir, type ProxyProcess } from "../helpers/azgate.ts";
import { READER, startReplicaCluster, type ReplicaCluster } from "../helpers/replicas.ts";
import { IDENTITY } from "../helpers/cluster.ts";

const fx = useEmulator({ projectToken: true });
const SUBS = "https://management.azure.com/subscriptions?api-version=2019-11-01";

describe("proxy replicas", () => {
  let cluster: ReplicaCluster;
  let a: ProxyProcess;
  let b: ProxyProcess;

  beforeAll(async () => {
    cluster = await startReplicaCluster(fx);
    [a, b] = cluster.replicas;
  }, 90_000);
  afterAll(async () => cluster?.stop());

  it("the agent holds a tunnel to each replica, and clients succeed through either", async () => {
    expect(cluster.agent.output()).toMatch(/proxy replica \S+ at 127\.0\.0\.1:\d+: opening a tunnel/);
    for (const p of [a, b]) {
      const { items } = await cluster.alice(await cluster.targetOf(p)).call<{ items: { name: string }[] }>("GET", "/v1/apps");
      expect(items.map((i) => i.name), `apps on replica ${p.port}`).toEqual(["azure-cli"]);
      const app = await cluster.appSession(p);
      try {
        const res = await app.request(SUBS);
        expect(res.status).toBe(200);
        expect(JSON.parse(await readBody(res)).value.length).toBeGreaterThan(0);
      } finally {
        app.close();
      }
    }
  });

  it("a replica with no tunnel to the app's agent refuses a client's request, naming the app", async () => {
    const lonely = await cluster.addReplica({ advertise: false });
    try {
      // The app certificate comes from a replica the agent serves; the stream goes to the one it does not.
      const app = await openAppSession(await cluster.targetOf(lonely), cluster.alice(await cluster.targetOf(b)), "azure-cli", READER);
      try {
        const res = await app.request(SUBS);
        expect(res.status).toBe(503);
        expect(JSON.parse(await readBody(res)).error.message).toBe('azgate: no agent serves app "azure-cli" right now; azgate apps ls shows the apps that are up');
      } finally {
        app.close();
      }
    } finally {
      await lonely.stop();
    }
  });

  it("revocation acts on the next request at every replica: a lock made through one is in force at the other at once, audited; lifting it restores access at once", async () => {
    const onB = cluster.alice(await cluster.targetOf(b));
    // B has read alice, her roles and the locks (and may keep them) before each lock is made through A.
    for (let round = 0; round < 5; round++) {
      await onB.call("GET", "/v1/whoami");
      const lock = await cluster.admin.call<{ metadata: { name: string } }>("POST", "/v1/admin/locks", { target: { user: "alice" }, message: `round ${round}` });
      await expect(onB.call("GET", "/v1/whoami")).rejects.toMatchObject({ code: "locked", message: expect.stringContaining(`round ${round}`) });
      await cluster.admin.call("DELETE", `/v1/admin/resources/lock/${lock.metadata.name}`);
      await expect(onB.call("GET", "/v1/whoami")).resolves.toMatchObject({ name: "alice" });
    }
    // The app path at B: the next request after a lock is refused (403, audited) or finds its tunnel closed by the lock (audited).
    const app = await cluster.appSession(b);
    const since = new Date().toISOString();
    try {
      expect((await app.request(SUBS)).status).toBe(200);
      const lock = await cluster.admin.call<{ metadata: { name: string } }>("POST", "/v1/admin/locks", { target: { user: "alice" }, message: "app round" });
      const refused = await app.request(SUBS).then(
        async (res) => ({ status: res.status, body: await readBody(res) }),
        (e: Error) => ({ status: -1, body: e.message }),
      );
      expect(refused.status === 403 || refused.status === -1, JSON.stringify(refused)).toBe(true);
      expect(refused.body).toContain("app round");
      await cluster.admin.call("DELETE", `/v1/admin/resources/lock/${lock.metadata.name}`);
      const { items } = await cluster.admin.call<{ items: { event: string; user?: string; time: string; reason?: string }[] }>("GET", "/v1/admin/audit?user=alice");
      const audited = items.filter((e) => e.time >= since && ["app.request.denied", "app.session.closed"].includes(e.event) && e.reason?.includes("app round"));
      expect(audited.length).toBeGreaterThan(0);
    } finally {
      app.close();
    }
  });

  it("an access grant made through one replica is honoured at the other on the next request; a revoke through one ends it at the other", async () => {
    const CONTRIB = IDENTITY("teleport-contributor");
    await cluster.admin.call("POST", "/v1/admin/resources", { text: `kind: role\nversion: v7\nmetadata: {name: req-contrib}\nspec:\n  allow:\n    app_labels: {"*": "*"}\n    request:\n      azure_identities: ["${CONTRIB}"]\n` });
    await cluster.admin.call("PATCH", "/v1/admin/users/alice", { roles: ["access", "azure-cli-access", "req-contrib"] });
    const onA = cluster.alice(await cluster.targetOf(a));
    const onB = cluster.alice(await cluster.targetOf(b));
    // The local admin is replica A's: every approval and revoke below goes through A.
    const request = async () => (await onA.call<{ metadata: { name: string } }>("POST", "/v1/requests", { app: "azure-cli", azure_identity: CONTRIB, duration: "10m" })).metadata.name;
    const first = await request();
    await cluster.admin.call("POST", `/v1/requests/${first}/review`, { state: "APPROVED" });
    const app = await openAppSession(await cluster.targetOf(b), onB, "azure-cli", CONTRIB);
    try {
      expect((await app.request(SUBS)).status).toBe(200);
      await cluster.admin.call("POST", `/v1/requests/${first}/revoke`, { reason: "test" });
      // B closes the open tunnel when the revoke reaches it (its watch); a request that beats the close is refused 403. Either way, with the reason.
      const refusal = await app.request(SUBS).then(
        async (res) => `${res.status} ${JSON.parse(await readBody(res)).error.message}`,
        (err: Error) => `closed ${err.message}`,
      );
      expect(refusal).toMatch(/^(403|closed) .*no role allows Azure identity/);
      // A new grant, approved through A, reaches B's next tunnel; the app certificate needs nothing new.
      const second = await request();
      await cluster.admin.call("POST", `/v1/requests/${second}/review`, { state: "APPROVED" });
      await app.redial();
      expect((await app.request(SUBS)).status).toBe(200);
      // The audit table answers by request ID (PostgreSQL, its own index): the first request's whole trail, nothing of the second's.
      const { items } = await cluster.admin.call<{ items: { event: string; access_request_id?: string }[] }>("GET", `/v1/admin/audit?request=${first}`);
      expect(items.map((e) => e.event)).toEqual(expect.arrayContaining(["access_request.create", "access_request.approve", "access_grant.start", "app.request", "access_request.revoke", "access_grant.end"]));
      expect(items.every((e) => e.access_request_id === first)).toBe(true);
    } finally {
      app.close();
      // The later tests count on alice's roles as they were.
      await cluster.admin.call("PATCH", "/v1/admin/users/alice", { roles: ["access", "azure-cli-access"] });
    }
  });

  it("keeps serving after a replica is killed mid-traffic, once clients reconnect, losing nothing acknowledged", async () => {
    let ok = 0;
    let failedInFlight = 0;
    let stop = false;
    // A client as the local proxy is one: it dials again (through the balancer) when its tunnel drops.
    const worker = async () => {
      let app: AppSession | null = null;
      while (!stop) {
        try {
          app ??= await cluster.appSession();
          const res = await app.request(SUBS);
          await readBody(res);
          if (res.status === 200) ok++;
          else throw new Error(`HTTP ${res.status}`);
        } catch {
          failedInFlight++;
          app?.close();
          app = null;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      app?.close();
    };
    const workers = Array.from({ length: 6 }, () => worker());
    // Traffic flows before the kill and after it: wait for answers, not for time.
    await expect.poll(() => ok, { timeout: 20_000, interval: 50 }).toBeGreaterThanOrEqual(12);
    await a.stop("SIGKILL");
    cluster.lb.backends = [b.port]; // the balancer's health check takes the dead replica out
    const atKill = ok;
    await expect.poll(() => ok, { timeout: 20_000, interval: 50 }).toBeGreaterThan(atKill + 6);
    const afterReconnect = ok;
    await expect.poll(() => ok, { timeout: 20_000, interval: 50 }).toBeGreaterThan(afterReconnect + 20);
    stop = true;
    await Promise.all(workers);
    // Only requests in flight at the kill (and dials that raced it) failed; then every worker kept succeeding.
    expect(failedInFlight).toBeLessThanOrEqual(workers.length * 3);

    // Nothing acknowledged is lost: the user, her roles, and an audit start event for every answered request.
    const survivor = cluster.alice(await cluster.targetOf(b));
    const me = await survivor.call<{ name: string; roles: string[] }>("GET", "/v1/whoami");
    expect(me).toMatchObject({ name: "alice", roles: ["access", "azure-cli-access"] });
    const audit = await cli(["admin", "--data-dir", b.dataDir, "audit", "ls", "--event", "app.request.start", "--user", "alice", "--limit", "100000", "--format", "json"], { home: tempDir() });
    expect(audit.code, audit.stderr).toBe(0);
    expect(JSON.parse(audit.stdout).length).toBeGreaterThanOrEqual(ok);
  });

  it("serves Prometheus metrics with the traffic it saw, at each replica and the agent", async () => {
    // One denial, so the denial series has a value.
    const app = await cluster.appSession(b);
    try {
      expect((await app.request("https://example.com/")).status).toBe(403);
    } finally {
      app.close();
    }
    const scrape = async (output: string) => {
      const port = /Diagnostics:\s+http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(output)![1];
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.headers.get("content-type")).toContain("text/plain");
      return parsePrometheus(await res.text());
    };
    const proxy = await scrape(b.output());
    expect(proxy.value("azgate_requests_total", { app: "azure-cli", identity: READER, method: "GET", status: "200" })).toBeGreaterThan(10);
    expect(proxy.value("azgate_proxy_overhead_seconds_count", { app: "azure-cli" })).toBeGreaterThan(10);
    expect(proxy.value("azgate_upstream_seconds_count", { app: "azure-cli" })).toBeGreaterThan(10);
    // Overhead and Azure's time are told apart: both sums are positive and the mean overhead is well under a second.
    const overheadMean = proxy.value("azgate_proxy_overhead_seconds_sum", { app: "azure-cli" }) / proxy.value("azgate_proxy_overhead_seconds_count", { app: "azure-cli" });
    expect(overheadMean).toBeGreaterThan(0);
    expect(overheadMean).toBeLessThan(1);
    expect(proxy.value("azgate_denials_total", { reason: "target_refused" })).toBe(1);
    // One tunnel from the agent (two for a moment while its first one moves here from the dead replica).
    expect(proxy.value("azgate_tunnels", { kind: "agent" })).toBeGreaterThanOrEqual(1);
    expect(proxy.value("azgate_tunnels", { kind: "agent" })).toBeLessThanOrEqual(2);
    expect(proxy.value("azgate_open_streams", {})).toBe(0);
    expect(proxy.value("azgate_backend_seconds_count", { op: "get" })).toBeGreaterThan(0);
    // Memory, read at the scrape: a resident set of some MiB, a heap smaller than it.
    const rss = proxy.value("azgate_process_memory_bytes", { kind: "rss" });
    expect(rss).toBeGreaterThan(20 * 1024 * 1024);
    expect(proxy.value("azgate_process_memory_bytes", { kind: "heap_used" })).toBeGreaterThan(1024 * 1024);
    expect(proxy.value("azgate_process_memory_bytes", { kind: "heap_used" })).toBeLessThan(rss);

    const agentMetrics = await scrape(cluster.agent.output());
    expect(agentMetrics.value("azgate_entra_token_lookups_total", { result: "miss" })).toBeGreaterThanOrEqual(1);
    expect(agentMetrics.value("azgate_entra_token_lookups_total", { result: "hit" })).toBeGreaterThan(10);
    expect(agentMetrics.value("azgate_entra_token_fetch_seconds_count", { outcome: "ok" })).toBeGreaterThanOrEqual(1);
  });

  it("a replica that joins is found by the agent; one stopped cleanly withdraws and loses its tunnel", async () => {
    const mark = cluster.agent.output().length;
    const c = await cluster.addReplica();
    let stopped = false;
    try {
      cluster.lb.backends = [b.port, c.port];
      await cluster.agent.waitFor(/opening a tunnel/, 30_000, mark);
      await cluster.agent.waitFor(/tunnel to .* is up/, 30_000, mark);
      const app = await cluster.appSession(c);
      try {
        expect((await app.request(SUBS)).status).toBe(200);
      } finally {
        app.close();
      }
      // SIGTERM: the replica drains, tells the agent to move, and withdraws its advertisement.
      const before = cluster.agent.output().length;
      await c.stop("SIGTERM");
      stopped = true;
      expect(c.output()).toContain("azgate proxy stopped.");
      await cluster.agent.waitFor(/proxy replica \S+ is gone; its tunnel is closed/, 20_000, before);
    } finally {
      if (!stopped) await c.stop();
    }
  });
});

/** Prometheus text exposition, read into name{labels} -> value. */
function parsePrometheus(text: string) {
  const samples = text
    .split("\n")
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(l)!;
      const labels = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
      return { name: m[1], labels, value: Number(m[3]) };
    });
  return {
    /** The sample with exactly these labels (NaN when there is none). */
    value(name: string, labels: Record<string, string>) {
      const want = JSON.stringify(Object.entries(labels).sort());
      return samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want)?.value ?? NaN;
    },
  };
}
