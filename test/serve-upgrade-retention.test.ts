/**
 * An idle tunnel keeps nothing of its upgrade request (runtime/serve.ts,
 * serveUpgrades): the request's headers (a caller's proof among them) must
 * not live as long as the WebSocket. Seen in a heap snapshot of a proxy
 * holding 1,000 idle tunnels: every IncomingMessage and its Authorization
 * value were still there, kept by a closure the socket held as a listener.
 *
 * Node only: the check reads a V8 heap snapshot (node:v8), which Deno does
 * not write.
 */
import { afterAll, describe, expect, it } from "vitest";
import net from "node:net";
import { randomBytes } from "node:crypto";
import v8 from "node:v8";
import vm from "node:vm";
import type { WebSocket } from "ws";
import { serve, type RunningServer } from "../src/runtime/index.ts";

declare const Deno: object | undefined;
const servers: RunningServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

/** A raw upgrade with one distinctive header; resolves with the client socket once the 101 is in. */
function upgradeWith(port: number, path: string, probe: Buffer): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => {
      s.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nx-probe: ${probe.toString("hex")}\r\n\r\n`);
    });
    s.once("data", (d) => (d.toString("latin1").startsWith("HTTP/1.1 101") ? resolve(s) : reject(new Error(d.toString("latin1")))));
    s.once("error", reject);
  });
}

async function heapText(): Promise<string> {
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as () => void;
  gc();
  gc();
  const chunks: Buffer[] = [];
  for await (const c of v8.getHeapSnapshot()) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

describe.skipIf(typeof Deno !== "undefined")("a WebSocket upgrade answered by serve()", () => {
  it("keeps nothing of the request once the socket is open: its headers are gone from the heap", async () => {
    const opened: WebSocket[] = [];
    const seen: number[] = [];
    const server = await serve({
      fetch: () => new Response("no", { status: 404 }),
      hostname: "127.0.0.1",
      port: 0,
      websocket: {
        maxPayload: 1024,
        upgrade: async (req) => {
          // The handler reads the header, as the proxy reads the proof.
          seen.push(req.header("x-probe")!.length);
          return { accept: (ws) => opened.push(ws) };
        },
      },
    });
    servers.push(server);
    // Bytes, not strings: this test keeps them, and a heap snapshot holds strings, not buffers' contents.
    const probes = [randomBytes(16), randomBytes(16), randomBytes(16)];
    const clients: net.Socket[] = [];
    for (const p of probes) clients.push(await upgradeWith(server.port, "/tunnel", p));
    expect(opened).toHaveLength(3);
    expect(seen).toEqual([32, 32, 32]);
    const heap = await heapText();
    // The open WebSockets are there; nothing of their requests' headers is.
    expect(heap).toContain("WebSocket");
    for (const p of probes) expect(heap.includes(p.toString("hex")), "a request's header is still in the heap").toBe(false);
    for (const c of clients) c.destroy();
  }, 60_000);
});
