/**
 * Attacks on "nothing reaches Azure before the request's start audit event is
 * stored" for held requests whose call is built early (forward.ts prepareEarly,
 * runtime/node/https.ts prepareNodeHttps). Each test asserts the property the
 * control promises: a failing test is an attack that worked.
 *
 * The upstream is a TLS server that records every byte of every connection and
 * answers each request head with its probe name as the body. Written by an
 * outside review of the change (a helper that knew the README and the code);
 * A4, A5, A5c, A5d and A6 failed before the fixes in runtime/node/https.ts
 * and runtime/deno/https.ts.
 */
import { systemClock } from "../src/util/clock.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import tls from "node:tls";
import net from "node:net";
import path from "node:path";
import { parse, stringify } from "yaml";
import { DEFAULT_WORLD_YAML } from "../src/emulator/default-world.ts";
import { useEmulator } from "./helpers/emulator.ts";
import { agentEnv, IDENTITY, readBody } from "./helpers/cluster.ts";
import { tempDir } from "./helpers/azgate.ts";
import { Outbound } from "../src/agent/outbound.ts";
import { identityHttpClient } from "../src/agent/identity-http.ts";
import { AzureTokenProvider } from "../src/agent/tokens.ts";
import { forwardStream } from "../src/agent/forward.ts";
import { memoryPair } from "../src/tunnel/memory.ts";
import type { TunnelSession, TunnelStream } from "../src/tunnel/index.ts";
import { generateKeyPair, privateKeyToPem } from "../src/pki/keys.ts";
import { signPlaceholder } from "../src/azure/placeholder.ts";
import { createAuthority } from "../src/pki/authority.ts";
import { issueServerCert } from "../src/pki/certificate.ts";
import { closeHttpsClients } from "../src/runtime/index.ts";

declare const Deno: object | undefined;
const worldFile = path.join(tempDir("azgate-world-"), "world.yaml");
writeFileSync(worldFile, stringify(parse(DEFAULT_WORLD_YAML)));
const fx = useEmulator({ projectToken: true, worldFile });
const READER = IDENTITY("teleport-reader");
const CONTRIBUTOR = IDENTITY("teleport-contributor");
const BASE = "https://management.azure.com/subscriptions?api-version=2019-11-01";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const STRAY = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nSTRAY";
/** Until the client has dropped a connection (Node does once it read bytes nobody asked for, or the server's end), or `ms` at most (Deno's fetch may keep it). */
const droppedOrAfter = (c: { socket: tls.TLSSocket; closed: boolean }, ms: number) =>
  c.closed ? Promise.resolve() : Promise.race([new Promise<void>((r) => c.socket.once("close", () => r())), sleep(ms)]);

interface Conn {
  bytes: string;
  closed: boolean;
  socket: tls.TLSSocket;
  /** Heads answered on this connection, in order (their probe names). */
  answered: string[];
}

/** What the upstream does after answering a head on a connection (a stray response, an idle close). */
type AfterAnswer = (conn: Conn, probe: string) => void;

async function recordingUpstream() {
  const ca = await createAuthority("host", "attack fixture", new Date());
  const k = await generateKeyPair();
  const cert = await issueServerCert({ ca, publicKey: k.publicKey, dnsNames: ["management.azure.com"], ips: [], now: new Date(), notAfter: new Date(Date.now() + 3_600_000) });
  const conns: Conn[] = [];
  const state: { after: AfterAnswer | null } = { after: null };
  const server = tls.createServer({ key: await privateKeyToPem(k.privateKey), cert: cert.toString("pem") }, (socket) => {
    const c: Conn = { bytes: "", closed: false, socket, answered: [] };
    conns.push(c);
    let cursor = 0;
    socket.on("data", (d) => {
      c.bytes += d.toString("latin1");
      for (;;) {
        const end = c.bytes.indexOf("\r\n\r\n", cursor);
        if (end < 0) break;
        const head = c.bytes.slice(cursor, end);
        cursor = end + 4;
        const probe = /probe=(\w+)/.exec(head)?.[1] ?? "none";
        const isHead = head.startsWith("HEAD ");
        c.answered.push(probe);
        socket.write(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${probe.length}\r\n\r\n${isHead ? "" : probe}`);
        state.after?.(c, probe);
      }
    });
    socket.on("close", () => (c.closed = true));
    socket.on("error", () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    conns,
    state,
    outbound: new Outbound({ connectTo: { host: "127.0.0.1", port }, caPem: ca.cert.toString("pem") }),
    /** How many times the probe's request line reached the upstream, over all connections. */
    seen: (probe: string) => conns.reduce((n, c) => n + c.bytes.split(`probe=${probe} `).length - 1, 0),
    close: () => server.close(),
  };
}

describe("held requests built early: attacks", () => {
  let up: Awaited<ReturnType<typeof recordingUpstream>>;
  let session: TunnelSession;
  let key: CryptoKeyPair;
  let clientKey: JsonWebKey;
  let tokens: AzureTokenProvider;
  beforeAll(async () => {
    up = await recordingUpstream();
    tokens = new AzureTokenProvider({ env: agentEnv(fx), httpClient: identityHttpClient(new Outbound({ connectTo: { host: "127.0.0.1", port: fx.emu.httpsPort }, caPem: fx.emu.caPem })), clock: systemClock });
    session = memoryPair({}, { onStream: (s) => void forwardStream({ outbound: up.outbound, tokens, clock: systemClock }, s) }).dialer;
    key = await generateKeyPair();
    clientKey = await crypto.subtle.exportKey("jwk", key.publicKey);
  });
  afterAll(async () => {
    session.close();
    up.outbound.close();
    await closeHttpsClients();
    up.close();
  });

  const open = async (probe: string, o: { method?: string; hold?: boolean; headers?: [string, string][]; identity?: string } = {}): Promise<TunnelStream> => {
    const identity = o.identity ?? READER;
    const token = await signPlaceholder(key.privateKey, { tid: "t", resource: "https://management.core.windows.net/", identity, now: new Date(), expires: new Date(Date.now() + 3_600_000) });
    return session.open({
      kind: "http",
      method: o.method ?? "GET",
      url: `${BASE}&probe=${probe}`,
      headers: [["authorization", `Bearer ${token}`], ...(o.headers ?? [])],
      session: { user: "a", app: "azure-cli", azure_identity: identity, session_id: "s" },
      client_key: clientKey,
      request_id: probe,
      ...(o.hold === false ? {} : { hold: true }),
    });
  };
  /** The proxy's order on release: META release, then the (empty) body's END. */
  const release = (s: TunnelStream) => {
    s.sendMeta({ release: true });
    s.end();
  };
  const answer = async (s: TunnelStream) => {
    const head = (await s.readMeta()) as { status: number };
    let body = "";
    for (let c = await s.read(); c; c = await s.read()) body += new TextDecoder().decode(c);
    return { status: head.status, body };
  };
  /** A request sent at once (no hold), answered whole. */
  const plain = async (probe: string, identity = READER) => {
    const s = await open(probe, { hold: false, identity });
    s.end();
    return answer(s);
  };

  it("A1: OPTIONS with Content-Length: 0 and HEAD, held (node:https on both runtimes for the OPTIONS): no byte before the release", async () => {
    for (const [probe, method, headers] of [
      ["a1options", "OPTIONS", [["content-length", "0"]]],
      ["a1head", "HEAD", []],
      ["a1getcl0", "GET", [["content-length", "0"]]],
    ] as [string, string, [string, string][]][]) {
      const before = up.conns.map((c) => c.bytes.length);
      const s = await open(probe, { method, headers });
      await sleep(400);
      expect(up.seen(probe), `${method} before the release`).toBe(0);
      expect(up.conns.slice(0, before.length).map((c) => c.bytes.length), "no byte on an existing connection").toEqual(before);
      for (const c of up.conns.slice(before.length)) expect(c.bytes, "no byte on a new connection").toBe("");
      release(s);
      const got = await answer(s);
      expect(got.status, method).toBe(200);
      expect(up.seen(probe)).toBe(1);
    }
  });

  it("A2: a held GET on a reused pooled connection writes nothing before the release", async () => {
    expect((await plain("a2warm")).body).toBe("a2warm");
    const warmConn = up.conns.find((c) => c.answered.includes("a2warm"))!;
    const before = warmConn.bytes;
    const s = await open("a2held");
    await sleep(400);
    expect(up.seen("a2held")).toBe(0);
    expect(warmConn.bytes).toBe(before);
    release(s);
    expect(await answer(s)).toEqual({ status: 200, body: "a2held" });
    expect(up.seen("a2held")).toBe(1);
  });

  it("A3: cancelled held calls (reset, another word, a body after the release) on pooled connections never go, and the next request gets its own answer", async () => {
    expect((await plain("a3warm")).body).toBe("a3warm");
    const reset = await open("a3reset");
    await sleep(200);
    reset.reset(4, "the request could not be audited");
    const other = await open("a3other");
    await sleep(200);
    other.sendMeta({ release: false });
    other.end();
    await expect(other.readMeta()).rejects.toMatchObject({ code: 1 });
    // Released, then a body on a GET: a request line smuggled in it must never reach the upstream.
    const body = await open("a3body");
    await sleep(200);
    body.sendMeta({ release: true });
    await body.write(new TextEncoder().encode("GET /x?probe=a3smuggled HTTP/1.1\r\nhost: management.azure.com\r\n\r\n"));
    body.end();
    expect((await answer(body)).status).toBe(400);
    // A body after the release and END? The END closes the direction: nothing after it is read. A DATA right after the release, before END, is above.
    await sleep(200);
    expect((await plain("a3next")).body).toBe("a3next");
    expect([up.seen("a3reset"), up.seen("a3other"), up.seen("a3body"), up.seen("a3smuggled")]).toEqual([0, 0, 0, 0]);
  });

  it("A4: a held request of another Azure identity never takes the first identity's pooled connection (node:https, and Deno's fetch clients, one per pool)", async () => {
    expect((await plain("a4reader")).body).toBe("a4reader");
    const readerConn = up.conns.find((c) => c.answered.includes("a4reader"))!;
    const s = await open("a4contrib", { identity: CONTRIBUTOR });
    await sleep(300);
    release(s);
    expect(await answer(s)).toEqual({ status: 200, body: "a4contrib" });
    const contribConn = up.conns.find((c) => c.answered.includes("a4contrib"))!;
    expect(contribConn === readerConn, "the contributor's request on the reader's connection").toBe(false);
  });

  it("A5: an upstream that sends an unsolicited response on an idle kept connection: the held request still gets its own answer, and the next one its own", async () => {
    try {
      expect((await plain("a5warm")).body).toBe("a5warm");
      const warm = up.conns.find((c) => c.answered.includes("a5warm"))!;
      const s = await open("a5held"); // takes the kept connection (or, if the stray comes first, a new one)
      await sleep(50);
      warm.socket.write(STRAY);
      await droppedOrAfter(warm, 1_000);
      release(s);
      const held = await answer(s);
      await sleep(100);
      const next = await plain("a5next");
      expect({ held: held.body, next: next.body }).toEqual({ held: "a5held", next: "a5next" });
    } finally {
      up.state.after = null;
    }
  });

  it("A5c: the stray response, then a request right after the held one's release: no request gets another's answer", async () => {
    const mismatches: string[] = [];
    try {
      for (let i = 0; i < 8; i++) {
        await plain(`a5cwarm${i}`);
        const warm = up.conns.find((c) => c.answered.includes(`a5cwarm${i}`))!;
        const s = await open(`a5cheld${i}`);
        await sleep(50);
        warm.socket.write(STRAY);
        await droppedOrAfter(warm, 1_000);
        release(s);
        const [held, next] = await Promise.all([answer(s), sleep(i).then(() => plain(`a5cnext${i}`))]);
        if (held.body !== `a5cheld${i}`) mismatches.push(`a5cheld${i} got ${held.body}`);
        if (next.body !== `a5cnext${i}`) mismatches.push(`a5cnext${i} got ${next.body}`);
        await sleep(50);
      }
    } finally {
      up.state.after = null;
    }
    expect(mismatches).toEqual([]);
  });

  it("A5d: the stray response against a held OPTIONS with Content-Length: 0 (node:https on Deno too): it gets its own answer", async () => {
    try {
      const warm = await open("a5dwarm", { method: "OPTIONS", headers: [["content-length", "0"]], hold: false });
      warm.end();
      expect((await answer(warm)).body).toBe("a5dwarm");
      const warmConn = up.conns.find((c) => c.answered.includes("a5dwarm"))!;
      const s = await open("a5dheld", { method: "OPTIONS", headers: [["content-length", "0"]] });
      await sleep(50);
      warmConn.socket.write(STRAY);
      await droppedOrAfter(warmConn, 1_000);
      release(s);
      expect((await answer(s)).body).toBe("a5dheld");
    } finally {
      up.state.after = null;
    }
  });

  it("A5b: the same stray response without a hold (before the change's window): the request gets its own answer", async () => {
    try {
      expect((await plain("a5bwarm")).body).toBe("a5bwarm");
      const warm = up.conns.find((c) => c.answered.includes("a5bwarm"))!;
      warm.socket.write(STRAY);
      await droppedOrAfter(warm, 1_000);
      const s = await plain("a5bnow");
      const next = await plain("a5bnext");
      expect({ now: s.body, next: next.body }).toEqual({ now: "a5bnow", next: "a5bnext" });
    } finally {
      up.state.after = null;
    }
  });

  it("A6: the pooled connection a held call took is closed by the upstream during the hold: a GET goes once (retried on a new connection), an OPTIONS is not answered 502 for a request never sent", async () => {
    try {
      expect((await plain("a6getidle")).body).toBe("a6getidle");
      const getIdle = up.conns.find((c) => c.answered.includes("a6getidle"))!;
      const get = await open("a6get");
      await sleep(50);
      getIdle.socket.end();
      await droppedOrAfter(getIdle, 1_000);
      release(get);
      expect(await answer(get)).toEqual({ status: 200, body: "a6get" });
      expect(up.seen("a6get")).toBe(1);

      expect((await plain("a6optidle")).body).toBe("a6optidle");
      const optIdle = up.conns.find((c) => c.answered.includes("a6optidle"))!;
      const opt = await open("a6opt", { method: "OPTIONS" });
      await sleep(50);
      optIdle.socket.end();
      await droppedOrAfter(optIdle, 1_000);
      release(opt);
      const got = await answer(opt);
      expect({ status: got.status, seen: up.seen("a6opt") }).toEqual({ status: 200, seen: 1 });
    } finally {
      up.state.after = null;
    }
  });
});
