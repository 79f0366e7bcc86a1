import { createServer, type AddressInfo, type Server, type Socket } from "node:net";

export interface Listening {
  port: number;
  /** Stops listening and ends open connections (keep-alive and CONNECT tunnels would hold close() open forever). */
  close(): Promise<void>;
}

/** The server's open connections, kept as they come and go, so a close can end them. */
function trackConnections(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  return sockets;
}

/** Listens on hostname:port (0: any free port) and tracks connections so close() can end them. */
export function listenTracked(server: Server, port: number, hostname: string): Promise<Listening> {
  const sockets = trackConnections(server);
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

/**
 * A port listened on before the server that will answer it is ready: its
 * connections are accepted but not read (paused) until `adopt` hands them,
 * and every later one, to that server. `azgate az` takes its port this way
 * and starts az at once, loading keys and dialling the proxy while az boots.
 */
export interface ReservedPort {
  port: number;
  adopt(server: Server): Listening;
  close(): Promise<void>;
}

export function reservePort(port: number, hostname: string): Promise<ReservedPort> {
  // noDelay as http.createServer sets it: with Nagle on, a response's body waits out the client's delayed ACK of its head (40 ms).
  const early = createServer({ pauseOnConnect: true, noDelay: true });
  const waiting = new Set<Socket>();
  const hold = (s: Socket) => {
    waiting.add(s);
    s.once("close", () => waiting.delete(s));
    // A client that gives up before the server is ready resets its connection: nothing to report.
    s.on("error", () => s.destroy());
  };
  early.on("connection", hold);
  return new Promise((resolve, reject) => {
    early.once("error", reject);
    early.listen(port, hostname, () => {
      const closeEarly = () => new Promise<void>((done) => early.close(() => done()));
      resolve({
        port: (early.address() as AddressInfo).port,
        adopt(server) {
          const sockets = trackConnections(server);
          const handOver = (s: Socket) => {
            server.emit("connection", s);
            s.resume();
          };
          early.off("connection", hold);
          early.on("connection", handOver);
          const held = [...waiting];
          waiting.clear();
          for (const s of held) handOver(s);
          return {
            port: (early.address() as AddressInfo).port,
            close: () => {
              for (const s of sockets) s.destroy();
              return closeEarly();
            },
          };
        },
        close: () => {
          for (const s of waiting) s.destroy();
          return closeEarly();
        },
      });
    });
  });
}
