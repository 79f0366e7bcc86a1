/**
 * A reserved port (net/listen.ts): what `azgate az` listens on before its
 * proxy is ready. A client that connects and sends at once is answered by the
 * server adopted later, byte for byte; connections after adoption go straight
 * there; closing before adoption ends the waiting connections.
 */
import { describe, expect, it } from "vitest";
import http from "node:http";
import net from "node:net";
import { reservePort } from "../src/net/listen.ts";

function rawGet(port: number, path: string): { socket: net.Socket; response: Promise<string> } {
  const socket = net.connect(port, "127.0.0.1");
  socket.write(`GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
  let out = "";
  socket.on("data", (d) => (out += d));
  return { socket, response: new Promise((resolve, reject) => (socket.on("end", () => resolve(out)), socket.on("error", reject))) };
}

describe("a reserved port", () => {
  it("holds connections until a server is adopted, which then answers them, and every later one", async () => {
    const reserved = await reservePort(0, "127.0.0.1");
    const early = rawGet(reserved.port, "/early");
    // The request is on its way (or already in the kernel) before any server exists.
    await new Promise((r) => early.socket.once("connect", r));
    const server = http.createServer((req, res) => res.end(`served ${req.url}`));
    const listening = reserved.adopt(server);
    expect(await early.response).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*served \/early$/);
    expect(await rawGet(reserved.port, "/later").response).toMatch(/served \/later$/);
    await listening.close();
    await expect(rawGet(reserved.port, "/closed").response).rejects.toThrow(/ECONNREFUSED/);
  });

  it("closed before a server is adopted, ends the connections that waited", async () => {
    const reserved = await reservePort(0, "127.0.0.1");
    const waiting = rawGet(reserved.port, "/never");
    await new Promise((r) => waiting.socket.once("connect", r));
    const outcome = waiting.response.then((text) => `ended: ${text}`, (e: Error) => `failed: ${e.message}`);
    await reserved.close();
    expect(await outcome).toMatch(/^(ended: $|failed: .*ECONNRESET)/);
  });
});
