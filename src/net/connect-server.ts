/**
 * An HTTP proxy that serves CONNECT, the one implementation behind the
 * workstation's local proxy and the emulator's: for each CONNECT it decides
 * to terminate TLS here (and serve the inner requests with `fetch`), to
 * tunnel to the target over TCP, or to refuse. Every decision is made here,
 * where the CONNECT target is known: an intercepted request whose Host
 * header names another host than the CONNECT target is refused before
 * `fetch` sees it (421), token hosts included.
 */
import http from "node:http";
import net from "node:net";
import tls from "node:tls";
import { getRequestListener } from "@hono/node-server";
import { HostMismatch } from "../errors/index.ts";
import { refusal } from "../azure/forwarding.ts";
import { connectTarget } from "../util/address.ts";
import { listenTracked, type Listening, type ReservedPort } from "./listen.ts";
import { runtimeName } from "../runtime/version.ts";

/**
 * Deno (2.9.6) serves a connection handed to an http.Server with `emit("connection")` (every connection
 * here: the inner server's TLS sockets, and the outer server's, adopted from a reserved port) for one
 * request only: it closes it after the response, yet the response says `Connection: keep-alive`. A
 * kept-alive client (az, the SDKs, the rotation tests' load) may send its next request on the closing
 * socket and get "socket hang up" (ECONNRESET on a reused socket): 1 to 4 of ~1600 requests in the
 * rotation e2e test, where the phase changes load the machine. On Deno each response says
 * `Connection: close`, which is what happens: clients open a new connection instead of racing the close.
 */
const closesEachConnection = runtimeName() === "deno";

export type ConnectDecision = { intercept: true } | { tunnel: string } | { refuse: string };

export interface ConnectServerOptions {
  /** Where to listen; or `reserved`, a port taken earlier whose connections wait for this server. */
  hostname: string;
  port: number;
  reserved?: ReservedPort;
  /** Serve this machine only: connections from elsewhere are closed unanswered. */
  loopbackOnly?: boolean;
  /**
   * What to do with CONNECT host:port: intercept it, tunnel it to the given
   * (checked) address, or refuse it with a one-line reason (clients print it).
   */
  decide(target: { host: string; port: number }): ConnectDecision | Promise<ConnectDecision>;
  /** The TLS context for an intercepted host, by SNI name. */
  secureContext(servername: string): Promise<tls.SecureContext>;
  /** Serves an intercepted request (its Host matched the CONNECT target). */
  fetch(req: Request): Response | Promise<Response>;
  /** Serves a plain proxy request (absolute URI, no CONNECT); 400 when absent. */
  plain?(req: Request): Response | Promise<Response>;
  /**
   * Answer every request that has a body with an interim `100 Continue` at
   * once (see `continueBody`). The workstation's local proxy does; the
   * emulator, standing in for Azure, does not.
   */
  interimContinue?: boolean;
  log?(line: string): void;
}

export type RunningConnectServer = Listening;

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.replace(/^::ffff:/, "");
  return a === "::1" || /^127\.\d+\.\d+\.\d+$/.test(a);
}

/**
 * Sends `100 Continue` for an HTTP/1.1 request with a body that did not ask
 * for it (Node answers `Expect: 100-continue` itself). Why: Python's
 * http.client writes a POST's head and body separately, and urllib3 leaves
 * Nagle on for connections through a proxy, so the body waits for the ACK of
 * the head; with nothing to send until the body is in, Linux delays that ACK
 * 40 ms. az 2.45 POSTs to the token endpoint twice per command: 80 ms of
 * waiting. HTTP/1.1 clients must accept an unsolicited 1xx (RFC 9110 15.2).
 */
function continueBody(req: http.IncomingMessage, res: http.ServerResponse): void {
  const hasBody = (req.headers["content-length"] !== undefined && req.headers["content-length"] !== "0") || req.headers["transfer-encoding"] !== undefined;
  if (hasBody && req.httpVersion === "1.1" && req.headers.expect === undefined) res.writeContinue();
}

const hostOnly = (value: string, port: number) => {
  const v = value.toLowerCase();
  return v.endsWith(`:${port}`) ? v.slice(0, -`:${port}`.length) : v;
};

export function serveConnect(opts: ConnectServerOptions): Promise<RunningConnectServer> {
  const listener = getRequestListener(opts.fetch);
  // Every intercepted connection starts from this one context, and SNI picks its leaf. Without it, each
  // TLSSocket made its own default context (an OpenSSL context built per connection) with its own random
  // session-ticket keys, so no client could ever resume: the JavaScript SDKs open a new connection per
  // request behind HTTPS_PROXY. OpenSSL seals and opens tickets with the first context's keys, so a
  // client that offers its ticket (Node's https.Agent, curl) skips the full handshake.
  const initial = tls.createSecureContext();
  /** Each terminated TLS socket and the CONNECT target it was opened for. */
  const targets = new WeakMap<net.Socket, { host: string; port: number }>();
  // Plain HTTP over the decrypted socket: the TLS socket is made below, where the target is known.
  const inner = http.createServer((req, res) => {
    if (closesEachConnection) res.setHeader("connection", "close");
    const target = targets.get(req.socket);
    const host = hostOnly(req.headers.host ?? "", target?.port ?? 443);
    if (!target || host !== target.host) {
      const r = refusal(new HostMismatch(`the Host header (${host || "none"}) does not match the CONNECT target (${target ? `${target.host}:${target.port}` : "none"})`), "azgate");
      res.writeHead(r.status, { "content-type": "application/json; charset=utf-8" }).end(JSON.stringify(r.body));
      return;
    }
    if (opts.interimContinue) continueBody(req, res);
    void listener(req, res);
  });
  const plain = opts.plain ? getRequestListener(opts.plain) : null;
  const outer = http.createServer((req, res) => {
    if (closesEachConnection) res.setHeader("connection", "close");
    if (plain) {
      if (opts.interimContinue) continueBody(req, res);
      return void plain(req, res);
    }
    res.writeHead(400, { "content-type": "text/plain" }).end("this proxy only takes CONNECT\n");
  });
  if (opts.loopbackOnly) {
    outer.on("connection", (s: net.Socket) => {
      if (!isLoopback(s.remoteAddress)) {
        opts.log?.(`refused a connection from ${s.remoteAddress}: the local proxy serves this machine only`);
        s.destroy();
      }
    });
  }
  outer.on("connect", (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    const target = connectTarget(req.url);
    if (!target) {
      socket.end("HTTP/1.1 400 Bad Request\r\n\r\n");
      return;
    }
    socket.on("error", () => socket.destroy());
    void Promise.resolve(opts.decide(target)).then(
      (decision) => {
        if ("refuse" in decision) return refuse(socket, decision.refuse, opts.log, target);
        if ("tunnel" in decision) return tunnel(socket, head, decision.tunnel, target.port);
        // TLS starts once the 200 is written, not merely queued. On Deno, wrapping a socket in the same
        // tick as a write to it fails the handshake's first write with EPERM (14 of 400 CONNECTs to a
        // server that did so in its connect handler; the test recorder did, and az saw EOF). The decision's
        // promise happens to defer the wrap here (0 of 400), but correctness should not hang on that. The
        // client sends nothing before it reads the 200, so this waits for nothing else.
        socket.write("HTTP/1.1 200 Connection Established\r\n\r\n", (err) => {
          if (err) return void socket.destroy();
          if (head.length) socket.unshift(head);
          const secure = new tls.TLSSocket(socket, {
            isServer: true,
            secureContext: initial,
            SNICallback: (name, cb) => opts.secureContext(name).then((c) => cb(null, c), (e) => cb(e as Error)),
          });
          secure.on("error", () => socket.destroy());
          targets.set(secure, target);
          inner.emit("connection", secure);
        });
      },
      (e: Error) => refuse(socket, e.message, opts.log, target),
    );
  });
  return opts.reserved ? Promise.resolve(opts.reserved.adopt(outer)) : listenTracked(outer, opts.port, opts.hostname);
}

/** A refusal at CONNECT: clients show the reason phrase ("Tunnel connection failed: 403 ..."), so it is one clean line. */
function refuse(socket: net.Socket, reason: string, log: ((line: string) => void) | undefined, target: { host: string; port: number }): void {
  log?.(`refused CONNECT ${target.host}:${target.port}: ${reason}`);
  const line = reason.replace(/[^\x20-\x7e]/g, " ");
  socket.end(`HTTP/1.1 403 ${line}\r\ncontent-type: text/plain\r\ncontent-length: ${line.length + 1}\r\n\r\n${line}\n`);
}

function tunnel(socket: net.Socket, head: Buffer, address: string, port: number): void {
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
