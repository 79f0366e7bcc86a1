/**
 * The CONNECT server behind the workstation's local proxy, per connection:
 * the JavaScript SDKs open a new connection for every request behind
 * HTTPS_PROXY, so a client that offers its TLS session resumes it instead of
 * a full handshake, and resuming changes nothing that is decided per
 * connection (the CONNECT target, the Host that must match it).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import type net from "node:net";
import type tls from "node:tls";
import { serveConnect, type RunningConnectServer } from "../src/net/connect-server.ts";
import { createLocalCa, LeafMinter, type LocalCaFiles } from "../src/client/local-ca.ts";
import { connectThrough } from "./helpers/local-proxy.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { resumesTlsSessions } from "../src/runtime/version.ts";

const ARM = "management.azure.com";
let server: RunningConnectServer;
let ca: LocalCaFiles;

beforeAll(async () => {
  const clock = new FakeClock();
  ca = await createLocalCa({ now: clock.date(), notAfter: new Date(clock.now() + 3_600_000) });
  const minter = new LeafMinter(ca, clock);
  server = await serveConnect({ hostname: "127.0.0.1", port: 0, decide: () => ({ intercept: true }), secureContext: (name) => minter.context(name), fetch: (req) => new Response(`served ${new URL(req.url).host}`) });
});
afterAll(() => server.close());

/** One GET over an open TLS socket, with the Host header given; the socket's session tickets are collected. */
function get(socket: tls.TLSSocket, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const r = http.request({ path: "/", headers: { host }, setHost: false, createConnection: () => socket as unknown as net.Socket }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    r.on("error", reject);
    r.end();
  });
}

/** A first connection's session, as a client that keeps one (Node's https.Agent, curl) would offer it next time. */
async function firstSession(host: string): Promise<Buffer | undefined> {
  const socket = await connectThrough(server.port, host, ca.certPem);
  const ticket = RESUMES ? new Promise<Buffer>((resolve) => socket.once("session", resolve)) : undefined;
  expect(socket.isSessionReused()).toBe(false);
  expect(await get(socket, host)).toEqual({ status: 200, body: `served ${host}` });
  const session = await ticket;
  socket.destroy();
  return session;
}

// Deno's node:tls keeps no TLS sessions (src/runtime/version.ts): there every connection is a full handshake,
// and the rest holds the same.
const RESUMES = resumesTlsSessions();
describe("a new connection to the local proxy", () => {
  it("resumes the TLS session a client offers, and serves the request as before", async () => {
    const session = await firstSession(ARM);
    for (let i = 0; i < 3; i++) {
      const again = await connectThrough(server.port, ARM, ca.certPem, session);
      expect(again.isSessionReused()).toBe(RESUMES);
      expect(await get(again, ARM)).toEqual({ status: 200, body: `served ${ARM}` });
      again.destroy();
    }
  });

  it("decides per connection even when resumed: a Host that is not the CONNECT target is still refused", async () => {
    const session = await firstSession(ARM);
    const again = await connectThrough(server.port, ARM, ca.certPem, session);
    expect(again.isSessionReused()).toBe(RESUMES);
    const res = await get(again, "graph.microsoft.com");
    expect(res.status).toBe(421);
    expect(res.body).toMatch(/does not match the CONNECT target/);
    again.destroy();
  });

  it("a session from one host offered to another gets that host's own certificate", async () => {
    const session = await firstSession(ARM);
    const other = "vault.azure.net";
    const socket = await connectThrough(server.port, `x.${other}`, ca.certPem, session);
    // Whether OpenSSL resumes across names or not, the client verified the certificate for the name it asked for.
    expect(socket.authorized).toBe(true);
    expect(await get(socket, `x.${other}`)).toEqual({ status: 200, body: `served x.${other}` });
    socket.destroy();
  });
});
