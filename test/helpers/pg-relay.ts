/**
 * A TCP relay in front of PostgreSQL for tests of the change feed, the
 * connection that sends LISTEN: it can cut it at LISTEN or just after its
 * answer, swallow LISTEN's answer, silence it after LISTEN's or the first
 * check's answer (a NAT or a load balancer's idle timeout: no error, no end),
 * or hold new connections until released. Event-driven: nothing is timed.
 */
import { connect, createServer, type Server, type Socket } from "node:net";

export interface Relay {
  port: number;
  accepted: number;
  listens: number;
  checks: number;
  mode: {
    /** Forward LISTEN, never its answer (silenced between LISTEN and its answer), for this many LISTENs. */
    swallowListen: number;
    /** Forward LISTEN's answer, then cut the connection at once. */
    killAfterAnswer: boolean;
    /** Forward LISTEN's answer, then go silent both ways. */
    blackholeAfterAnswer: boolean;
    /** On a LISTEN connection: forward the first check's answer, then go silent both ways. */
    blackholeAfterFirstCheck: boolean;
    /** Hold new connections until released. */
    hold: boolean;
    /** Cut the connection when it sends LISTEN (before any answer). */
    killListen: boolean;
  };
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
    checks: 0,
    mode: { swallowListen: 0, killAfterAnswer: false, blackholeAfterAnswer: false, blackholeAfterFirstCheck: false, hold: false, killListen: false },
    release() {
      relay.mode.hold = false;
      for (const f of held.splice(0)) f();
    },
    close: () =>
      new Promise<void>((r) => {
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
      let isListen = false;
      let swallow = false;
      let afterAnswer: "kill" | "blackhole" | null = null;
      let checkAnswer = false;
      client.on("data", (d: Buffer) => {
        if (isListen && d.includes("SELECT 1")) relay.checks++;
        if (dead) return;
        if (d.includes("LISTEN azgate_items")) {
          relay.listens++;
          isListen = true;
          if (relay.mode.killListen) {
            client.destroy();
            up.destroy();
            return;
          }
          if (relay.mode.swallowListen > 0) {
            relay.mode.swallowListen--;
            swallow = true;
          } else if (relay.mode.killAfterAnswer) afterAnswer = "kill";
          else if (relay.mode.blackholeAfterAnswer) afterAnswer = "blackhole";
        }
        if (isListen && d.includes("SELECT 1") && relay.mode.blackholeAfterFirstCheck) checkAnswer = true;
        up.write(d);
      });
      up.on("data", (d: Buffer) => {
        if (dead) return;
        if (swallow) {
          dead = true;
          return;
        }
        client.write(d);
        if (afterAnswer === "kill") {
          client.destroy();
          up.destroy();
        } else if (afterAnswer === "blackhole" || checkAnswer) dead = true;
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
