/**
 * Test-side tools for azgate's local proxy: a raw HTTPS request through it
 * (to send what a well-behaved client would not), and a recording man in the
 * middle that decrypts with the same local CA and keeps every byte the local
 * proxy sends back, so a test can search what reached the client.
 */
import { systemClock } from "../../src/util/clock.ts";
import http from "node:http";
import net from "node:net";
import tls from "node:tls";
import type { AddressInfo } from "node:net";
import { LeafMinter, type LocalCaFiles } from "../../src/client/local-ca.ts";

/** CONNECT host:443 through the local proxy, then TLS to the intercepted host (trusting `caPem`), offering `session` when given. */
export function connectThrough(proxyPort: number, host: string, caPem: string, session?: Buffer): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port: proxyPort, method: "CONNECT", path: `${host}:443` });
    req.once("connect", (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        return reject(new Error(`CONNECT ${host}: ${res.statusCode} ${res.statusMessage}`));
      }
      const t = tls.connect({ socket, servername: host, ca: caPem, ...(session ? { session } : {}) });
      t.once("secureConnect", () => resolve(t));
      t.once("error", reject);
    });
    req.once("error", reject);
    req.end();
  });
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP/1.1 request over a CONNECT tunnel, with exactly the headers given (Host included). */
export async function rawRequest(proxyPort: number, caPem: string, connectHost: string, req: { method: string; path: string; headers: Record<string, string>; body?: string }): Promise<RawResponse> {
  const socket = await connectThrough(proxyPort, connectHost, caPem);
  return new Promise((resolve, reject) => {
    const r = http.request({ method: req.method, path: req.path, headers: req.headers, setHost: false, createConnection: () => socket as unknown as net.Socket }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => {
        socket.destroy();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    r.once("error", reject);
    r.end(req.body);
  });
}

export interface TrafficRecorder {
  port: number;
  /** Every byte the local proxy sent back, decrypted. */
  received(): Buffer;
  /** What went wrong on either side, for a failing test's message: an EOF alone says nothing. */
  problems(): string[];
  close(): Promise<void>;
}

/** A CONNECT proxy in front of the local proxy: clients point HTTPS_PROXY here instead. */
export function startTrafficRecorder(opts: { upstreamPort: number; ca: LocalCaFiles }): Promise<TrafficRecorder> {
  const minter = new LeafMinter(opts.ca, systemClock);
  const chunks: Buffer[] = [];
  const problems: string[] = [];
  const note = (host: string, side: string) => (e: Error) => problems.push(`${host} ${side}: ${e.message}`);
  const sockets = new Set<net.Socket>();
  const server = http.createServer((_req, res) => res.writeHead(400).end());
  server.on("connect", (req: http.IncomingMessage, client: net.Socket) => {
    sockets.add(client);
    client.once("close", () => sockets.delete(client));
    const host = String(req.url).replace(/:\d+$/, "");
    // TLS starts once the 200 is written (as src/net/connect-server.ts does: on Deno, wrapping a socket
    // whose write is still in flight fails the handshake with EPERM, which az saw as EOF).
    client.write("HTTP/1.1 200 Connection Established\r\n\r\n", () => {
      const inner = new tls.TLSSocket(client, {
        isServer: true,
        SNICallback: (name, cb) => minter.context(name).then((c) => cb(null, c), (e) => cb(e as Error)),
      });
      inner.on("error", (e) => (note(host, "client TLS")(e), client.destroy()));
      connectThrough(opts.upstreamPort, host, opts.ca.certPem).then(
        (upstream) => {
          upstream.on("data", (d: Buffer) => chunks.push(Buffer.from(d)));
          // pipe() ends each side after the other ends; destroying on "close" instead could drop bytes still
          // buffered for the client (seen on Deno as an aborted response).
          upstream.pipe(inner);
          inner.pipe(upstream);
          upstream.on("error", (e) => (note(host, "upstream")(e), inner.destroy()));
          inner.once("close", () => upstream.destroy());
        },
        (e: Error) => (note(host, "upstream CONNECT")(e), inner.destroy()),
      );
    });
  });
  // Leaves for the hosts the tests use, minted before the first handshake, so none waits on minting.
  const warm = Promise.all(["azure-msi.azgate.invalid", "azure-identity.azgate.invalid", "management.azure.com"].map((h) => minter.context(h)));
  return warm.then(() => new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () =>
      resolve({
        port: (server.address() as AddressInfo).port,
        received: () => Buffer.concat(chunks),
        problems: () => [...problems],
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      }),
    );
  }));
}
