/**
 * A TCP load balancer on loopback, as in front of proxy replicas: each new
 * connection goes to the next backend in turn; a backend that refuses is
 * skipped. It knows nothing of TLS or HTTP (the proxies' TLS passes through).
 */
import { connect, createServer, type Socket } from "node:net";
import { listenTracked, type Listening } from "../../src/net/listen.ts";

export interface TcpBalancer {
  port: number;
  addr: string;
  backends: number[];
  close(): Promise<void>;
}

export async function startTcpBalancer(backends: number[] = []): Promise<TcpBalancer> {
  let next = 0;
  const state = { backends };
  const dial = (client: Socket, tries: number) => {
    if (tries >= state.backends.length) return client.destroy();
    const port = state.backends[next++ % state.backends.length];
    const upstream = connect(port, "127.0.0.1");
    upstream.once("connect", () => {
      client.pipe(upstream).pipe(client);
      client.resume();
    });
    upstream.once("error", () => (upstream.remoteAddress ? client.destroy() : dial(client, tries + 1)));
    client.once("error", () => upstream.destroy());
    client.once("close", () => upstream.destroy());
    upstream.once("close", () => client.destroy());
  };
  const server = createServer({ pauseOnConnect: true }, (client) => dial(client, 0));
  const listening: Listening = await listenTracked(server, 0, "127.0.0.1");
  return {
    port: listening.port,
    addr: `127.0.0.1:${listening.port}`,
    get backends() {
      return state.backends;
    },
    set backends(b: number[]) {
      state.backends = b;
    },
    close: () => listening.close(),
  };
}
