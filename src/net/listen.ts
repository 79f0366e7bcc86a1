import type { AddressInfo, Server, Socket } from "node:net";

export interface Listening {
  port: number;
  /** Stops listening and ends open connections (keep-alive and CONNECT tunnels would hold close() open forever). */
  close(): Promise<void>;
}

/** Listens on hostname:port (0: any free port) and tracks connections so close() can end them. */
export function listenTracked(server: Server, port: number, hostname: string): Promise<Listening> {
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, hostname, () => {
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
