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
import { closeDenoClients, viaDenoFetch } from "./deno/https.ts";
import { closeNodeAgents, prepareNodeHttps } from "./node/https.ts";

declare const Deno: object | undefined;

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
  /** Which pool of kept-alive connections to use: a request never shares a connection with another pool's. */
  pool?: string;
}

export interface HttpsResponse {
  status: number;
  headers: [string, string][];
  /**
   * The body, chunk by chunk, with backpressure (the next chunk is read when
   * asked for); leaving the loop early cancels it. Node's response stream or
   * fetch's web stream, as they are: wrapping Node's in a web stream
   * (Readable.toWeb) cost the agent more than the copy itself.
   */
  body: AsyncIterable<Uint8Array>;
}

export function httpsRequest(req: HttpsRequest): Promise<HttpsResponse> {
  return prepareHttpsRequest(req).send();
}

/**
 * A request made ready to go but not sent: the agent builds a held request's
 * call while the proxy writes its audit event, and sends it on the RELEASE.
 * Nothing of the request reaches the server before `send()` (node:https may
 * take a pooled connection, or open one, meanwhile); `cancel()` drops it.
 */
export interface PreparedHttpsRequest {
  send(): Promise<HttpsResponse>;
  cancel(): void;
}

export function prepareHttpsRequest(req: HttpsRequest): PreparedHttpsRequest {
  const declaredLength = req.headers.some(([k]) => k.toLowerCase() === "content-length") && !["GET", "HEAD"].includes(req.method);
  if (typeof Deno !== "undefined" && !declaredLength) return { send: () => viaDenoFetch(req), cancel: () => undefined };
  return prepareNodeHttps(req);
}

/** Closes pooled connections and, on Deno, the pinning proxy, so a stopping process can exit. */
export async function closeHttpsClients(): Promise<void> {
  closeNodeAgents();
  await closeDenoClients();
}
