/**
 * HTTPS on Deno: fetch (its streams keep backpressure, which Deno's
 * node:https does not) through a loopback CONNECT proxy of our own that dials
 * the pinned address, since fetch cannot be told where to connect.
 */
import type { HttpsRequest, HttpsResponse } from "../https-client.ts";

interface DenoConn {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
  close(): void;
}
declare const Deno:
  | {
      createHttpClient(o: { caCerts?: string[]; proxy?: { url: string; basicAuth?: { username: string; password: string } } }): { close(): void };
      listen(o: { hostname: string; port: number }): AsyncIterable<DenoConn> & { addr: { port: number }; close(): void };
      connect(o: { hostname: string; port: number }): Promise<DenoConn>;
    }
  | undefined;

const denoClients = new Map<string, { close(): void }>();

export async function viaDenoFetch(req: HttpsRequest): Promise<HttpsResponse> {
  // One client per pool as well (HttpsRequest.pool: per Azure identity), as on Node: no connection carries two identities' requests.
  const key = `${req.pool ?? ""}\n${req.connect.host}:${req.connect.port}\n${req.caPem ?? ""}`;
  let client = denoClients.get(key);
  if (!client) {
    const proxy = await (pinningProxy ??= startPinningProxy());
    // The proxy learns where to connect from the credentials of this client (one client per address).
    const target = JSON.stringify([req.connect.host, req.connect.port]);
    client = Deno!.createHttpClient({ caCerts: req.caPem ? [req.caPem] : undefined, proxy: { url: `http://127.0.0.1:${proxy.port}`, basicAuth: { username: proxy.secret, password: target } } });
    denoClients.set(key, client);
  }
  const hasBody = req.body && !["GET", "HEAD"].includes(req.method);
  const res = await fetch(req.url, {
    method: req.method,
    headers: req.headers,
    body: hasBody ? req.body : undefined,
    redirect: "manual",
    signal: req.signal,
    // @ts-expect-error Deno's fetch options
    client,
    duplex: "half",
  });
  return { status: res.status, headers: [...res.headers], body: res.body ?? new ReadableStream({ start: (c) => c.close() }) };
}

let pinningProxy: Promise<{ port: number; secret: string; close(): void }> | null = null;

/** Closes the fetch clients and the pinning proxy, so a stopping process can exit. */
export async function closeDenoClients(): Promise<void> {
  for (const c of denoClients.values()) c.close();
  denoClients.clear();
  const p = pinningProxy;
  pinningProxy = null;
  (await p)?.close();
}

/**
 * A loopback CONNECT proxy that opens the tunnel to the address named in its
 * Proxy-Authorization (behind a per-process secret, so it is no open relay).
 * Native Deno sockets and web streams: backpressure holds end to end.
 */
async function startPinningProxy(): Promise<{ port: number; secret: string; close(): void }> {
  const secret = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  const listener = Deno!.listen({ hostname: "127.0.0.1", port: 0 });
  void (async () => {
    try {
      for await (const conn of listener) void handleConnect(conn, secret).catch(() => conn.close());
    } catch {
      // closed
    }
  })();
  return { port: listener.addr.port, secret, close: () => listener.close() };
}

async function handleConnect(conn: DenoConn, secret: string): Promise<void> {
  const reader = conn.readable.getReader();
  let buf = new Uint8Array(0);
  let end = -1;
  while (end < 0) {
    const { done, value } = await reader.read();
    if (done || buf.length > 16384) throw new Error("bad CONNECT");
    const next = new Uint8Array(buf.length + value.length);
    next.set(buf);
    next.set(value, buf.length);
    buf = next;
    end = findHeadEnd(buf);
  }
  const head = new TextDecoder().decode(buf.subarray(0, end));
  const auth = /^proxy-authorization:\s*basic\s+(\S+)\s*$/im.exec(head)?.[1];
  const [user, ...rest] = auth ? atob(auth).split(":") : [];
  const writer = conn.writable.getWriter();
  if (!head.startsWith("CONNECT ") || user !== secret) {
    await writer.write(new TextEncoder().encode("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"));
    throw new Error("refused");
  }
  const [hostname, port] = JSON.parse(rest.join(":")) as [string, number];
  const upstream = await Deno!.connect({ hostname, port });
  await writer.write(new TextEncoder().encode("HTTP/1.1 200 Connection Established\r\n\r\n"));
  writer.releaseLock();
  const leftover = buf.subarray(end + 4);
  const up = upstream.writable.getWriter();
  if (leftover.length) await up.write(leftover);
  up.releaseLock();
  reader.releaseLock();
  await Promise.allSettled([conn.readable.pipeTo(upstream.writable), upstream.readable.pipeTo(conn.writable)]);
}

function findHeadEnd(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.length; i++) if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  return -1;
}

