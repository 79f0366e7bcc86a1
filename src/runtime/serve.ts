import { serve as honoServe } from "@hono/node-server";
import { WebSocketServer, type WebSocket } from "ws";
import { STATUS_CODES, type IncomingMessage } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";

export interface ServeOptions {
  fetch: (req: Request, env?: unknown) => Response | Promise<Response>;
  hostname: string;
  port: number;
  /** PEM key and certificate chain; plain HTTP when absent. */
  tls?: { key: string; cert: string };
  /** Answer WebSocket upgrades with `upgrade`, messages up to `maxPayload` bytes. */
  websocket?: { maxPayload: number; upgrade: (req: UpgradeRequest) => Promise<UpgradeAnswer> };
}

/** What an upgrade handler is told of the request: nothing of it is kept once it has answered. */
export interface UpgradeRequest {
  path: string;
  /** The query, with its "?" (what a proof of possession signs with the path). */
  search: string;
  header(name: string): string | undefined;
  /** The address of the socket it came in on. */
  socketAddr: string;
}

/** Take the connection (`accept` gets the open WebSocket), refuse it with a status and headers, or say no such endpoint (null: 404). */
export type UpgradeAnswer = { accept: (ws: WebSocket) => void } | { refuse: { status: number; headers?: Record<string, string> } } | null;

export interface RunningServer {
  port: number;
  hostname: string;
  /** Serves another TLS key and certificate to connections from now on (open ones keep theirs): a rotated CA's. */
  setTls(tls: { key: string; cert: string }): void;
  close(): Promise<void>;
}

/** Serves a fetch handler with @hono/node-server, which runs unchanged on Node and Deno. */
export function serve(opts: ServeOptions): Promise<RunningServer> {
  return new Promise((resolve, reject) => {
    const server = honoServe(
      {
        fetch: opts.fetch,
        hostname: opts.hostname,
        port: opts.port,
        ...(opts.tls ? { createServer: createHttpsServer, serverOptions: { key: opts.tls.key, cert: opts.tls.cert } } : {}),
      },
      (info: AddressInfo) => {
        resolve({
          port: info.port,
          hostname: opts.hostname,
          // node:https and Deno's node:https both take a new secure context for connections to come.
          setTls: (tls) => (server as unknown as { setSecureContext(o: { key: string; cert: string }): void }).setSecureContext({ key: tls.key, cert: tls.cert }),
          close: () =>
            new Promise<void>((done) => {
              (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
              server.close(() => done());
            }),
        });
      },
    );
    server.once("error", reject);
    if (opts.websocket) serveUpgrades(server as unknown as import("node:http").Server, opts.websocket);
  });
}

/**
 * WebSocket upgrades, answered here rather than as routes of the fetch
 * handler: a tunnel lives for hours, and whatever its upgrade made (a
 * Request, its Headers, a router's context, the IncomingMessage) would live
 * as long, in every idle tunnel, had the handler's closures kept it. The
 * handler sees the path, the headers and the address, and answers; once
 * the WebSocket is open, only the socket and what `accept` keeps remain.
 * The same on Node and Deno (node:http's "upgrade" event and ws).
 */
function serveUpgrades(server: import("node:http").Server, ws: NonNullable<ServeOptions["websocket"]>): void {
  const wss = new WebSocketServer({ noServer: true, maxPayload: ws.maxPayload });
  server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
    // A function of the module's, not a closure here: the socket keeps its listeners for the tunnel's life,
    // and a closure here would keep this scope, the IncomingMessage and its headers (the caller's proof) with it.
    socket.on("error", destroySocket);
    if (req.headers.upgrade?.toLowerCase() !== "websocket") return refuseUpgrade(socket, 400);
    const target = req.url ?? "/";
    const q = target.indexOf("?");
    const request: UpgradeRequest = {
      path: q < 0 ? target : target.slice(0, q),
      search: q < 0 ? "" : target.slice(q),
      header: (name) => {
        const v = req.headers[name.toLowerCase()];
        return Array.isArray(v) ? v[0] : v;
      },
      socketAddr: req.socket.remoteAddress ?? "unknown",
    };
    ws.upgrade(request).then(
      (answer) => {
        if (socket.destroyed) return;
        if (!answer) return refuseUpgrade(socket, 404);
        if ("refuse" in answer) return refuseUpgrade(socket, answer.refuse.status, answer.refuse.headers);
        wss.handleUpgrade(req, socket, head, (open) => answer.accept(open));
      },
      () => refuseUpgrade(socket, 500),
    );
  });
  server.on("close", () => wss.close());
}

function destroySocket(this: Socket): void {
  this.destroy();
}

function refuseUpgrade(socket: Socket, status: number, headers: Record<string, string> = {}): void {
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v.replace(/[\r\n]/g, " ")}\r\n`).join("");
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}\r\nconnection: close\r\ncontent-length: 0\r\n${lines}\r\n`);
}
