/**
 * A TCP relay in front of PostgreSQL for tests of the change feed: it can cut
 * the connection that sends LISTEN, let LISTEN be answered and then go silent
 * on it (a NAT or a load balancer's idle timeout: no error, no end), or hold
 * new connections until released.
 */
import { connect, createServer, type Server, type Socket } from "node:net";

export interface Relay {
  port: number;
  accepted: number;
  /** LISTENs that went through (or were cut). */
  listens: number;
  mode: { killListen: boolean; blackholeListen: boolean; hold: boolean };
  blackholed: number;
  release(): void;
  close(): Promise<void>;
}
export async function startRelay(upstreamPort: number): Promise<Relay> {
  const held: (() => void)[] = [];
  const sockets = new Set<Socket>();
  const relay: Relay = {
    port: 0,
    accepted: 0,
    listens: 0,
    blackholed: 0,
    mode: { killListen: false, blackholeListen: false, hold: false },
    release() {
      relay.mode.hold = false;
      for (const f of held.splice(0)) f();
    },
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
  const server: Server = createServer({ pauseOnConnect: true }, (client) => {
    relay.accepted++;
    sockets.add(client);
    const start = () => {
      const up = connect(upstreamPort, "127.0.0.1");
      sockets.add(up);
      let dead = false;
      /** LISTEN went up: once its answer has come back, this connection goes silent both ways. */
      let silentAfterAnswer = false;
      client.on("data", (d: Buffer) => {
        if (dead) return;
        if (d.includes("LISTEN azgate_items")) {
          relay.listens++;
          if (relay.mode.killListen) {
            client.destroy();
            up.destroy();
            return;
          }
          if (relay.mode.blackholeListen) silentAfterAnswer = true;
        }
        up.write(d);
      });
      up.on("data", (d: Buffer) => {
        if (dead) return;
        client.write(d);
        if (silentAfterAnswer) {
          dead = true;
          relay.blackholed++;
        }
      });
      client.on("error", () => up.destroy());
      up.on("error", () => client.destroy());
      client.on("close", () => up.destroy());
      up.on("close", () => client.destroy());
      client.resume();
    };
    if (relay.mode.hold) held.push(start);
    else start();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  relay.port = (server.address() as { port: number }).port;
  return relay;
}


/** `url` (a postgres:// URL) through the relay on `port`. */
export function viaRelay(url: string, port: number): string {
  const u = new URL(url);
  u.port = String(port);
  return u.toString();
}
