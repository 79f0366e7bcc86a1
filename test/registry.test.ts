import { describe, expect, it } from "vitest";
import { AppRegistry, type AgentTunnel } from "../src/proxy/registry.ts";
import type { AppSpec } from "../src/api/types.ts";
import type { TunnelSession } from "../src/tunnel/index.ts";
import { FakeClock } from "./helpers/fake-clock.ts";

const app = (name: string, labels: Record<string, string> = {}): AppSpec => ({ name, cloud: "Azure", uri: "cloud://Azure", labels });

function tunnel(id: string, state = { closed: false, draining: false, open: 0 }): AgentTunnel & { state: typeof state } {
  const session = {
    get isClosed() {
      return state.closed;
    },
    get isDraining() {
      return state.draining;
    },
    get openStreams() {
      return state.open;
    },
  } as unknown as TunnelSession;
  return { id, hostId: id, hostName: id, session, connectedAt: 0, state };
}

describe("app registry", () => {
  it("registers apps from heartbeats and expires agents that fall silent", () => {
    const clock = new FakeClock();
    const reg = new AppRegistry(clock, 45_000);
    const a = tunnel("a");
    reg.heartbeat(a, [app("azure-cli", { env: "prod" })]);
    expect(reg.all().map((s) => s.app)).toEqual([app("azure-cli", { env: "prod" })]);
    clock.advance(44_000);
    expect(reg.servers("azure-cli")).toHaveLength(1);
    clock.advance(2_000);
    expect(reg.servers("azure-cli")).toHaveLength(0);
    expect(reg.all("azure-cli")).toEqual([]);
  });

  it("drops an agent at once when its tunnel closes, and skips draining ones for new streams", () => {
    const reg = new AppRegistry(new FakeClock());
    const a = tunnel("a");
    const b = tunnel("b");
    reg.heartbeat(a, [app("azure-cli")]);
    reg.heartbeat(b, [app("azure-cli")]);
    a.state.draining = true;
    expect(reg.servers("azure-cli").map((s) => s.tunnel.id)).toEqual(["b"]);
    expect(reg.all("azure-cli").map((s) => s.tunnel.id)).toEqual(["a", "b"]);
    b.state.closed = true;
    expect(reg.servers("azure-cli")).toEqual([]);
    expect(reg.all("azure-cli").map((s) => s.tunnel.id)).toEqual(["a"]);
  });

  it("spreads streams: least busy first, rotating among equals", () => {
    const reg = new AppRegistry(new FakeClock());
    const [a, b, c] = [tunnel("a"), tunnel("b"), tunnel("c")];
    for (const t of [a, b, c]) reg.heartbeat(t, [app("azure-cli")]);
    const firsts = Array.from({ length: 6 }, () => reg.servers("azure-cli")[0].tunnel.id);
    expect(new Set(firsts)).toEqual(new Set(["a", "b", "c"]));
    a.state.open = 5;
    b.state.open = 1;
    c.state.open = 3;
    expect(reg.servers("azure-cli").map((s) => s.tunnel.id)).toEqual(["b", "c", "a"]);
  });

  it("keeps each server's own labels when two agents announce one app name, and filters servers by the caller's check", () => {
    const clock = new FakeClock();
    const reg = new AppRegistry(clock, 45_000);
    reg.heartbeat(tunnel("a"), [app("azure-cli", { env: "dev" })]);
    clock.advance(10);
    reg.heartbeat(tunnel("b"), [app("azure-cli", { env: "prod" })]);
    expect(reg.all("azure-cli").map((s) => [s.tunnel.id, s.app.labels.env])).toEqual([["a", "dev"], ["b", "prod"]]);
    // A heartbeat of the dev agent does not relabel the prod one (the old registry kept the last heartbeat's labels).
    clock.advance(10);
    reg.heartbeat(tunnel("a"), [app("azure-cli", { env: "dev" })]);
    const devOnly = (s: { app: AppSpec }) => s.app.labels.env === "dev";
    for (let i = 0; i < 4; i++) expect(reg.servers("azure-cli", devOnly).map((s) => s.tunnel.id)).toEqual(["a"]);
  });
});

describe("the peer list in heartbeat answers", () => {
  it("is listed once, dropped when an advertisement changes, and re-listed after PEERS_MAX_AGE_MS", async () => {
    const { mkdtempSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const path = await import("node:path");
    const { FileBackend } = await import("../src/storage/file.ts");
    const { cachedPeers, PEERS_MAX_AGE_MS } = await import("../src/proxy/peers.ts");
    const { KEYS } = await import("../src/proxy/keys.ts");
    const clock = new FakeClock();
    const backend = await FileBackend.open(mkdtempSync(path.join(tmpdir(), "azgate-peers-")), clock);
    let lists = 0;
    const counted = Object.assign(Object.create(backend), { list: (prefix: string) => (lists++, backend.list(prefix)) });
    const ctx = { backend: counted, clock } as unknown as import("../src/proxy/context.ts").ProxyContext;
    const peers = cachedPeers(ctx);
    const advertise = (id: string) => backend.put(KEYS.proxy(id), { id, addr: `${id}:3080`, started: "" });
    await advertise("a");
    expect((await peers.peers()).map((p) => p.id)).toEqual(["a"]);
    expect((await peers.peers()).map((p) => p.id)).toEqual(["a"]);
    expect(lists).toBe(1);
    await advertise("b");
    expect((await peers.peers()).map((p) => p.id)).toEqual(["a", "b"]);
    expect(lists).toBe(2);
    clock.advance(PEERS_MAX_AGE_MS);
    await peers.peers();
    expect(lists).toBe(3);
    peers.close();
    await backend.close();
  });
});
