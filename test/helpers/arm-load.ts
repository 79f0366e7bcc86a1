/**
 * A load generator for a running `azgate proxy azure`: N kept-alive HTTPS
 * connections through its CONNECT port (trusting its local CA), each sending
 * ARM GETs one after another with the placeholder its token endpoint gave
 * once (cached, as the SDKs cache it). Every answer that is not a 200 is a
 * failure, kept with its body. Used by the rotation tests: zero failed
 * requests is the assertion. `paceMs` spaces each connection's requests: on
 * a 2-core machine an unpaced load takes every cycle the proxy, the agent,
 * the CLI and az need to run the rotation it is there to watch.
 */
import http from "node:http";
import type { Duplex } from "node:stream";
import { connectThrough } from "./local-proxy.ts";

const GROUPS_PATH = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2022-09-01";

/** Opens each connection with CONNECT through the local proxy, then TLS with its local CA; keeps them alive. */
class ConnectAgent extends http.Agent {
  constructor(
    private readonly proxyPort: number,
    private readonly caPem: string,
    connections: number,
  ) {
    super({ keepAlive: true, maxSockets: connections });
  }
  override createConnection(options: http.ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): Duplex {
    connectThrough(this.proxyPort, String(options.host), this.caPem).then((s) => callback?.(null, s), (e: Error) => callback?.(e, undefined as unknown as Duplex));
    return undefined as unknown as Duplex;
  }
}

function get(agent: http.Agent, host: string, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host, port: 443, path, method: "GET", headers: { host, ...headers } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** A token from the session's loopback token endpoint (IDENTITY_ENDPOINT, App Service 2019 dialect), as an SDK asks for one. */
export async function placeholderFrom(env: Record<string, string>): Promise<string> {
  const url = new URL(env.IDENTITY_ENDPOINT);
  url.searchParams.set("resource", "https://management.core.windows.net/");
  url.searchParams.set("api-version", "2019-08-01");
  const res = await fetch(url, { headers: { "X-IDENTITY-HEADER": env.IDENTITY_HEADER } });
  if (res.status !== 200) throw new Error(`the token endpoint answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { access_token: string }).access_token;
}

export interface ArmLoad {
  /** Requests answered 200 so far. */
  ok(): number;
  /** Waits until `n` more requests went through (the load is moving). */
  more(n?: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<{ ok: number; failures: string[] }>;
}

export function startArmLoad(o: { proxyPort: number; caPem: string; token: string; connections: number; paceMs?: number }): ArmLoad {
  const agent = new ConnectAgent(o.proxyPort, o.caPem, o.connections);
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  const loops = Array.from({ length: o.connections }, async () => {
    while (running) {
      try {
        const res = await get(agent, "management.azure.com", GROUPS_PATH, { authorization: `Bearer ${o.token}` });
        if (res.status === 200) ok++;
        else failures.push(`HTTP ${res.status}: ${res.body.slice(0, 400)}`);
      } catch (e) {
        failures.push(`${new Date().toISOString()} ${(e as Error).message}`);
      }
      if (o.paceMs) await new Promise((r) => setTimeout(r, o.paceMs));
    }
  });
  return {
    ok: () => ok,
    async more(n = 50, timeoutMs = 30_000) {
      const target = ok + n;
      const until = Date.now() + timeoutMs;
      while (ok < target) {
        if (Date.now() > until) throw new Error(`the load stalled at ${ok} requests (wanted ${target}); failures: ${failures.slice(-3).join(" | ")}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return { ok, failures };
    },
  };
}
