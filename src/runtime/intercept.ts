import http from "node:http";
import https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { getRequestListener } from "@hono/node-server";

export interface InterceptingProxyOptions {
  fetch: (req: Request) => Response | Promise<Response>;
  hostname: string;
  port: number;
  /** Certificate chain and key presented for every intercepted host (SANs must name them). */
  tls: { key: string; cert: string };
}

/**
 * An HTTP proxy that terminates `CONNECT host:443` itself: it answers 200,
 * runs TLS on the tunnel with the given certificate, and serves the inner
 * requests with `fetch`. Plain absolute-URI requests are served too.
 */
export function serveInterceptingProxy(opts: InterceptingProxyOptions): Promise<{ port: number; close(): Promise<void> }> {
  const listener = getRequestListener(opts.fetch);
  const inner = https.createServer({ key: opts.tls.key, cert: opts.tls.cert }, listener);
  const outer = http.createServer(listener);
  const sockets = new Set<Socket>();
  outer.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  outer.on("connect", (_req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    if (head.length) socket.unshift(head);
    inner.emit("connection", socket);
  });
  return new Promise((resolve, reject) => {
    outer.once("error", reject);
    outer.listen(opts.port, opts.hostname, () => {
      resolve({
        port: (outer.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            outer.close(() => done());
          }),
      });
    });
  });
}
