import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import { getRequestListener } from "@hono/node-server";
import { listenTracked, type Listening } from "./listen.ts";

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
export function serveInterceptingProxy(opts: InterceptingProxyOptions): Promise<Listening> {
  const listener = getRequestListener(opts.fetch);
  const inner = https.createServer({ key: opts.tls.key, cert: opts.tls.cert }, listener);
  const outer = http.createServer(listener);
  outer.on("connect", (_req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    if (head.length) socket.unshift(head);
    inner.emit("connection", socket);
  });
  return listenTracked(outer, opts.port, opts.hostname);
}
