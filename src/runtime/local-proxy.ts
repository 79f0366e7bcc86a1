/**
 * The workstation's forward proxy: loopback only, CONNECT only. Intercepted
 * hosts get TLS terminated here with a certificate chosen by SNI and their
 * requests served by `fetch`, which learns the CONNECT target (to check the
 * Host header against it); other hosts are tunnelled unchanged.
 *
 * Runtime note: the CONNECT target travels on the raw socket and is read
 * back through the TLS socket's `_parent`, which Node and Deno 2 both set.
 */
import http from "node:http";
import https from "node:https";
import net from "node:net";
import dns from "node:dns/promises";
import { localTargetReason } from "../net/address-policy.ts";
import { connectTarget } from "../util/address.ts";
import type tls from "node:tls";
import type { Socket } from "node:net";
import { listenTracked, type Listening } from "./listen.ts";
import { getRequestListener } from "@hono/node-server";

/** Set by the proxy on intercepted requests (any value a client sends is dropped first). */
export const CONNECT_TARGET_HEADER = "x-azgate-connect-target";

export interface LocalProxyOptions {
  port: number;
  /** True when CONNECT host:port must be terminated here. */
  intercept(host: string, port: number): boolean;
  /** A reason to refuse every CONNECT (as 403 with that reason), or null to serve. */
  refusal?(): string | null;
  secureContext(servername: string): Promise<tls.SecureContext>;
  fetch(req: Request): Response | Promise<Response>;
  log?(line: string): void;
}

export type RunningLocalProxy = Listening;

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.replace(/^::ffff:/, "");
  return a === "::1" || /^127\.\d+\.\d+\.\d+$/.test(a);
}

export function serveLocalProxy(opts: LocalProxyOptions): Promise<RunningLocalProxy> {
  const listener = getRequestListener(opts.fetch);
  const inner = https.createServer(
    {
      SNICallback: (name, cb) => {
        opts.secureContext(name).then((ctx) => cb(null, ctx), (e) => cb(e as Error));
      },
    },
    (req, res) => {
      delete req.headers[CONNECT_TARGET_HEADER];
      const target = (req.socket as unknown as { _parent?: { azgateTarget?: string } })._parent?.azgateTarget;
      if (target) req.headers[CONNECT_TARGET_HEADER] = target;
      void listener(req, res);
    },
  );
  const outer = http.createServer((req, res) => {
    res.writeHead(400, { "content-type": "text/plain" }).end("azgate's local proxy only takes CONNECT\n");
  });
  outer.on("connection", (s: Socket) => {
    if (!isLoopback(s.remoteAddress)) {
      opts.log?.(`refused a connection from ${s.remoteAddress}: the local proxy serves this machine only`);
      s.destroy();
    }
  });
  outer.on("connect", (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    const target = connectTarget(req.url);
    if (!target) {
      socket.end("HTTP/1.1 400 Bad Request\r\n\r\n");
      return;
    }
    const refusal = opts.refusal?.();
    if (refusal) {
      // Clients show the reason phrase ("Tunnel connection failed: 403 ..."): it must be one clean line.
      const reason = refusal.replace(/[^\x20-\x7e]/g, " ");
      socket.end(`HTTP/1.1 403 ${reason}\r\ncontent-type: text/plain\r\ncontent-length: ${reason.length + 1}\r\n\r\n${reason}\n`);
      return;
    }
    if (opts.intercept(target.host, target.port)) {
      (socket as Socket & { azgateTarget?: string }).azgateTarget = `${target.host}:${target.port}`;
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length) socket.unshift(head);
      inner.emit("connection", socket);
      return;
    }
    // Everything else goes through untouched, as a plain TCP tunnel, but never to this machine or its link
    // (loopback services, IMDS): the name is resolved here and the checked address is the one dialled.
    void resolveTunnelTarget(target.host).then(
      (address) => tunnel(socket, head, address, target.port),
      (e: Error) => {
        opts.log?.(`refused CONNECT ${target.host}:${target.port}: ${e.message}`);
        const reason = `azgate local proxy: ${e.message}`.replace(/[^\x20-\x7e]/g, " ");
        socket.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: ${reason.length + 1}\r\n\r\n${reason}\n`);
      },
    );
  });
  return listenTracked(outer, opts.port, "127.0.0.1");
}

/** The address to dial for a tunnelled CONNECT, refusing loopback and link-local targets however they are named. */
async function resolveTunnelTarget(host: string): Promise<string> {
  const literal = net.isIP(host) ? [{ address: host }] : await dns.lookup(host, { all: true, verbatim: true }).catch(() => {
    throw new Error(`cannot resolve ${host}`);
  });
  for (const { address } of literal) {
    const why = localTargetReason(address);
    if (why) throw new Error(`${host} is a ${why} address; the local proxy does not tunnel to this machine or its link`);
  }
  if (literal.length === 0) throw new Error(`cannot resolve ${host}`);
  return literal[0].address;
}

function tunnel(socket: Socket, head: Buffer, address: string, port: number): void {
  const upstream = net.connect(port, address);
  upstream.once("connect", () => {
    socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    if (head.length) upstream.write(head);
    upstream.pipe(socket);
    socket.pipe(upstream);
  });
  upstream.on("error", () => socket.end("HTTP/1.1 503 Service Unavailable\r\n\r\n"));
  socket.on("error", () => upstream.destroy());
}
