import { serve as honoServe, upgradeWebSocket } from "@hono/node-server";
import { WebSocketServer } from "ws";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";

export interface ServeOptions {
  fetch: (req: Request, env?: unknown) => Response | Promise<Response>;
  hostname: string;
  port: number;
  /** PEM key and certificate chain; plain HTTP when absent. */
  tls?: { key: string; cert: string };
  /** Accept WebSocket upgrades on routes that use `upgradeWebSocket`, with this largest message. */
  websocket?: { maxPayload: number };
}

/** Hono middleware that turns a request into a WebSocket (the same adapter on Node and Deno). */
export { upgradeWebSocket };

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
        ...(opts.websocket ? { websocket: { server: new WebSocketServer({ noServer: true, maxPayload: opts.websocket.maxPayload }) } } : {}),
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
  });
}
