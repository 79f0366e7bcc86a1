/**
 * Streaming HTTPS requests to an address chosen by the caller (the agent
 * pins the address it checked, or the operator's connect-to), with the URL's
 * host name kept for SNI, certificate checks and Host. Bodies stream both
 * ways with backpressure; redirects are never followed.
 *
 * The one place the runtimes differ for the agent's data path: Deno's
 * node:https and node:tls read a response without backpressure (a slow
 * reader makes them buffer the whole body; seen with Deno 2.9). So on Deno
 * this uses fetch, whose streams do have backpressure, through a loopback
 * CONNECT proxy of our own that dials the chosen address (fetch cannot be
 * told which address to connect to otherwise). Node uses node:https with a
 * fixed lookup.
 *
 * Deno's fetch sends a streamed body chunked and drops a Content-Length the
 * caller set, which Azure Storage refuses for uploads. So on Deno a request
 * whose body has a declared length goes through node:https (its writes are
 * paced by waitForWritable); its response is usually small.
 */
import https from "node:https";
import { Readable } from "node:stream";
import type { LookupFunction } from "node:net";
import { waitForWritable } from "./backpressure.ts";

export interface HttpsRequest {
  url: URL;
  method: string;
  headers: [string, string][];
  body?: ReadableStream<Uint8Array> | null;
  /** Where to connect; the URL's host still names the server. */
  connect: { host: string; port: number };
  /** Extra CA to trust (the emulator's); the system store otherwise. */
  caPem?: string;
  signal?: AbortSignal;
}

export interface HttpsResponse {
  status: number;
  headers: [string, string][];
  body: ReadableStream<Uint8Array>;
}

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

export function httpsRequest(req: HttpsRequest): Promise<HttpsResponse> {
  const declaredLength = req.headers.some(([k]) => k.toLowerCase() === "content-length") && !["GET", "HEAD"].includes(req.method);
  return typeof Deno !== "undefined" && !declaredLength ? viaDenoFetch(req) : viaNodeHttps(req);
}

// ---- Deno -----------------------------------------------------------------------

const denoClients = new Map<string, { close(): void }>();

async function viaDenoFetch(req: HttpsRequest): Promise<HttpsResponse> {
  const key = `${req.connect.host}:${req.connect.port}\n${req.caPem ?? ""}`;
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

/** Closes pooled connections and, on Deno, the pinning proxy, so a stopping process can exit. */
export async function closeHttpsClients(): Promise<void> {
  for (const c of denoClients.values()) c.close();
  denoClients.clear();
  for (const a of nodeAgents.values()) a.destroy();
  nodeAgents.clear();
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

// ---- Node -----------------------------------------------------------------------

const nodeAgents = new Map<string, https.Agent>();

function viaNodeHttps(req: HttpsRequest): Promise<HttpsResponse> {
  const caKey = req.caPem ?? "";
  let agent = nodeAgents.get(caKey);
  if (!agent) nodeAgents.set(caKey, (agent = new https.Agent({ keepAlive: true, maxSockets: 256, ca: req.caPem })));
  const family = req.connect.host.includes(":") ? 6 : 4;
  const lookup: LookupFunction = (_host, options, cb) => {
    if ((options as { all?: boolean }).all) (cb as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: req.connect.host, family }]);
    else cb(null, req.connect.host, family);
  };
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of req.headers) {
    const prev = headers[k];
    headers[k] = prev === undefined ? v : [...[prev].flat(), v];
  }
  headers.host = req.url.host;
  const out = https.request({
    protocol: "https:",
    host: req.url.hostname,
    servername: req.url.hostname,
    port: req.connect.port,
    path: req.url.pathname + req.url.search,
    method: req.method,
    headers,
    lookup,
    agent,
    ca: req.caPem,
    signal: req.signal,
  });
  return new Promise((resolve, reject) => {
    out.once("error", reject);
    out.once("response", (res) => {
      const rawHeaders: [string, string][] = [];
      for (let i = 0; i < res.rawHeaders.length; i += 2) rawHeaders.push([res.rawHeaders[i], res.rawHeaders[i + 1]]);
      resolve({ status: res.statusCode ?? 502, headers: rawHeaders, body: Readable.toWeb(res) as unknown as ReadableStream<Uint8Array> });
    });
    void (async () => {
      try {
        if (req.body) {
          const reader = req.body.getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            out.write(value);
            await waitForWritable(out);
          }
        }
        out.end();
      } catch (e) {
        out.destroy(e as Error);
      }
    })();
  });
}
