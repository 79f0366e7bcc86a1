/**
 * Resilience with real processes: a proxy restart, an agent dying while
 * requests flow, a 1 GiB blob through both tunnels with a slow reader, and
 * resets crossing from one side to the other.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, openAppSession, readBody, spawnAgent, startCluster, type AgentProcess, type AppSession, type TestCluster, type UserSession } from "../helpers/cluster.ts";
import { startProxyProcess } from "../helpers/azgate.ts";
import { ApiClient } from "../../src/api/client.ts";
import { readLocalAdmin } from "../../src/proxy/local-admin.ts";
import { StreamResetError } from "../../src/tunnel/index.ts";
import type { TunnelResponse } from "../../src/tunnel/http.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");
const CONTRIBUTOR = IDENTITY("teleport-contributor");
const SUBS = "https://management.azure.com/subscriptions?api-version=2019-11-01";
const BLOB = (name: string) => `https://teleportdemostore.blob.core.windows.net/reports/${name}`;
const MiB = 1024 * 1024;

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : 0;
}

/** Zero-filled bytes produced only as fast as they are consumed. */
function generated(total: number, chunk = 256 * 1024): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream<Uint8Array>(
    {
      pull(c) {
        if (sent >= total) return c.close();
        const n = Math.min(chunk, total - sent);
        sent += n;
        c.enqueue(new Uint8Array(n));
      },
    },
    { highWaterMark: 0 },
  );
}

describe("tunnel resilience", () => {
  let cluster: TestCluster;
  let agents: AgentProcess[] = [];
  let alice: UserSession;

  beforeAll(async () => {
    cluster = await startCluster();
    const token = await cluster.joinToken();
    agents = [spawnAgent({ proxy: cluster.proxy, fx, token }), spawnAgent({ proxy: cluster.proxy, fx, token })];
    await Promise.all(agents.map((a) => a.waitFor(/tunnel to .* is up/)));
    await cluster.admin.call("POST", "/v1/admin/resources", { text: `kind: role\nversion: v7\nmetadata: {name: azure}\nspec: {allow: {app_labels: {env: prod}, azure_identities: ["${READER}", "${CONTRIBUTOR}"]}}\n` });
    alice = await cluster.user("alice", ["azure"]);
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await cluster?.stop();
  });

  it("streams a 1 GiB blob up and down through proxy and agent with flat memory, even with a slow reader", async () => {
    const app = await alice.appSession("azure-cli", CONTRIBUTOR);
    const pids = [cluster.proxy.child.pid!, ...agents.map((a) => a.child.pid!)];
    const base = pids.map(rssMiB);
    const peak = [...base];
    const sampler = setInterval(() => pids.forEach((p, i) => (peak[i] = Math.max(peak[i], rssMiB(p)))), 100);
    try {
      const size = 1024 * MiB;
      const put = await app.request(BLOB("big.bin"), {
        method: "PUT",
        resource: "https://storage.azure.com",
        headers: [["x-ms-blob-type", "BlockBlob"], ["content-length", String(size)], ["x-ms-version", "2021-08-06"]],
        body: generated(size),
      });
      expect(put.status).toBe(201);
      await readBody(put);
      // Azure Storage needs the length: the upload must not arrive chunked.
      const seenPut = [...fx.emu.requests].reverse().find((r) => r.method === "PUT" && r.path.endsWith("/big.bin"));
      expect(seenPut?.headers["content-length"]).toBe(String(size));

      const get = await app.request(BLOB("big.bin"), { resource: "https://storage.azure.com", headers: [["x-ms-version", "2021-08-06"]] });
      expect(get.status).toBe(200);
      const reader = get.body.getReader();
      let got = 0;
      while (got < 64 * MiB) got += (await reader.read()).value!.length;
      // The reader stalls: flow control must stop the agent and the proxy from buffering the rest.
      const stalledAt = pids.map(rssMiB);
      // What is measured is that nothing grows while the reader stalls: the stall must last (3 s of 400+ MB/s upstream).
      await new Promise((r) => setTimeout(r, 3000));
      const afterStall = pids.map(rssMiB);
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        got += value.length;
      }
      expect(got).toBe(size);
      pids.forEach((_, i) => expect(afterStall[i] - stalledAt[i], `process ${i} grew while its reader stalled`).toBeLessThan(32));
      pids.forEach((_, i) => expect(peak[i] - base[i], `process ${i} peak over baseline`).toBeLessThan(160));
      console.log(`RSS MiB (proxy, agent, agent): base ${base.map(Math.round)}, peak ${peak.map(Math.round)}`);
    } finally {
      clearInterval(sampler);
      app.close();
    }
  }, 240_000);

  it("passes a client's reset to the agent: an upload cut off leaves no blob", async () => {
    const app = await alice.appSession("azure-cli", CONTRIBUTOR);
    try {
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (sent >= 32 * MiB) {
            // A client that stops sending, then gives up a moment later (what an interrupted upload does).
            await new Promise((r) => setTimeout(r, 200));
            return c.error(new Error("client gave up"));
          }
          sent += MiB;
          c.enqueue(new Uint8Array(MiB));
        },
      });
      const res = app.request(BLOB("cut.bin"), { method: "PUT", resource: "https://storage.azure.com", headers: [["x-ms-blob-type", "BlockBlob"], ["content-length", String(256 * MiB)]], body });
      await expect(res.then((r) => readBody(r))).rejects.toBeInstanceOf(StreamResetError);
      // The reset travels on to the agent and the emulator; the blob must never appear.
      const exists = async () => {
        const check = await app.request(BLOB("cut.bin"), { resource: "https://storage.azure.com" });
        await readBody(check);
        return check.status;
      };
      await expect.poll(exists, { timeout: 5_000, interval: 100 }).toBe(404);
    } finally {
      app.close();
    }
  });

  it("passes an agent's death to the client as a reset, not a silently short body", async () => {
    const extra = spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken() });
    await extra.waitFor(/tunnel to .* is up/);
    const app = await alice.appSession("azure-cli", CONTRIBUTOR);
    try {
      // Stop the other two so the download runs on the extra agent, then kill it mid-body.
      await Promise.all(agents.map((a) => a.stop()));
      const get = await app.request(BLOB("big.bin"), { resource: "https://storage.azure.com" });
      expect(get.status).toBe(200);
      const reader = get.body.getReader();
      let got = 0;
      while (got < 16 * MiB) got += (await reader.read()).value!.length;
      await extra.stop("SIGKILL");
      const rest = (async () => {
        for (;;) if ((await reader.read()).done) return "ended";
      })();
      await expect(rest).rejects.toBeInstanceOf(StreamResetError);
    } finally {
      app.close();
      const token = await cluster.joinToken();
      agents = [spawnAgent({ proxy: cluster.proxy, fx, token }), spawnAgent({ proxy: cluster.proxy, fx, token })];
      await Promise.all(agents.map((a) => a.waitFor(/tunnel to .* is up/)));
    }
  }, 120_000);

  it("keeps serving when one of two agents dies mid-traffic", async () => {
    const app = await alice.appSession("azure-cli", READER);
    try {
      let ok = 0;
      const failures: string[] = [];
      const cutMidBody: string[] = [];
      let stop = false;
      const loop = async () => {
        while (!stop) {
          const res = await app.request(SUBS).catch((e) => ({ status: -1, error: String(e) }) as const);
          if (res.status !== 200) {
            failures.push(String(res.status));
            continue;
          }
          // A response whose head had already been relayed cannot move to the other
          // agent; it must end with a reset naming the cause, never a truncated 200.
          const body = await readBody(res as TunnelResponse).catch((e: unknown) => e);
          if (typeof body === "string") ok++;
          else if (body instanceof StreamResetError) cutMidBody.push(body.reason);
          else failures.push(String(body));
        }
      };
      const workers = [loop(), loop(), loop()];
      // Traffic flows before the kill, and goes on after it: wait for answers, not for time.
      await expect.poll(() => ok, { timeout: 20_000, interval: 50 }).toBeGreaterThanOrEqual(5);
      const before = ok;
      await agents[0].stop("SIGKILL");
      await expect.poll(() => ok, { timeout: 20_000, interval: 50 }).toBeGreaterThan(before + 5);
      stop = true;
      await Promise.all(workers);
      // Requests not yet answered were retried on the surviving agent: none failed.
      expect(failures).toEqual([]);
      // At most the requests in flight at the kill (one per worker) were cut.
      expect(cutMidBody.length).toBeLessThanOrEqual(workers.length);
      for (const reason of cutMidBody) expect(reason).toMatch(/tunnel closed|went away/);
      expect(ok).toBeGreaterThan(before + 5);
    } finally {
      app.close();
    }
  });

  it("reconnects the agent within seconds after the proxy restarts", async () => {
    const survivor = agents[1];
    const mark = survivor.output().length;
    await cluster.proxy.stop();
    cluster.proxy = await startProxyProcess({ dataDir: cluster.proxy.dataDir, home: cluster.home, port: cluster.proxy.port, args: ["--second-factor", "off"] });
    const started = Date.now();
    await survivor.waitFor(/tunnel to .* is up/, 20_000, mark);
    const reconnectMs = Date.now() - started;
    expect(reconnectMs).toBeLessThan(10_000);
    // Users and their certificates survive; a new app session works through the new proxy process.
    const local = (await readLocalAdmin(cluster.proxy.dataDir))!;
    const target = { baseUrl: `https://127.0.0.1:${cluster.proxy.port}`, ca_pem: local.ca_pem };
    const api = new ApiClient(target, { keyPem: alice.keyPem, certPem: alice.certPem });
    let app: AppSession | undefined;
    try {
      app = await openAppSession(target, api, "azure-cli", READER);
      const res = await app.request(SUBS);
      expect(res.status).toBe(200);
      await readBody(res);
    } finally {
      app?.close();
    }
  });
});
