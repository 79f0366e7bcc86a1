/**
 * HTTPS on Node: node:https with a fixed lookup (the pinned address), keep-alive
 * agents per CA, request bodies paced by waitForWritable.
 */
import https from "node:https";
import type { LookupFunction } from "node:net";
import { waitForWritable } from "../backpressure.ts";
import type { HttpsRequest, HttpsResponse, PreparedHttpsRequest } from "../https-client.ts";

const nodeAgents = new Map<string, https.Agent>();

/** Ends pooled connections so a stopping process can exit. */
export function closeNodeAgents(): void {
  for (const a of nodeAgents.values()) a.destroy();
  nodeAgents.clear();
}

/**
 * Builds the ClientRequest (its head serialised, a pooled connection taken)
 * without writing to it: node:https sends the head with the first write or
 * end(), which only send() makes.
 */
export function prepareNodeHttps(req: HttpsRequest): PreparedHttpsRequest {
  const poolKey = `${req.pool ?? ""}\n${req.caPem ?? ""}`;
  let agent = nodeAgents.get(poolKey);
  if (!agent) nodeAgents.set(poolKey, (agent = new https.Agent({ keepAlive: true, maxSockets: 256, ca: req.caPem })));
  const family = req.connect.host.includes(":") ? 6 : 4;
  const lookup: LookupFunction = (_host, options, cb) => {
    if ((options as { all?: boolean }).all) (cb as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: req.connect.host, family }]);
    else cb(null, req.connect.host, family);
  };
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of req.headers) {
    // Node writes a request's head as soon as it has a connection when it expects a 100 Continue: never before send().
    if (k.toLowerCase() === "expect") throw new Error("an Expect header is not sent (azure/framing.ts refuses it)");
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
  // A declared length is held to (azure/framing.ts checks it too): Node then refuses to send one byte more or less.
  if (headers["content-length"] !== undefined) (out as { strictContentLength?: boolean }).strictContentLength = true;
  let sent = false;
  /** The connection failed, or the server spoke, before the request was written: send() makes it anew (nothing of it went). */
  let failedUnsent = false;
  const response = new Promise<HttpsResponse>((resolve, reject) => {
    out.once("error", (e) => {
      if (!sent) failedUnsent = true;
      reject(e);
    });
    out.once("response", (res) => {
      // An answer to a request not yet written (bytes the server sent on the kept connection the prepared request
      // took) is no answer to it; and that connection would answer the next request with this one's. Both go.
      if (!sent) {
        failedUnsent = true;
        res.destroy();
        out.destroy(new Error("the server answered a request not sent yet"));
        return;
      }
      const rawHeaders: [string, string][] = [];
      for (let i = 0; i < res.rawHeaders.length; i += 2) rawHeaders.push([res.rawHeaders[i], res.rawHeaders[i + 1]]);
      resolve({ status: res.statusCode ?? 502, headers: rawHeaders, body: res });
    });
  });
  // A pooled connection may fail before send() (closed by the server while the request waited): send() starts again.
  response.catch(() => undefined);
  return {
    send() {
      if (sent) throw new Error("a prepared request is sent once");
      sent = true;
      if (failedUnsent) return prepareNodeHttps(req).send();
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
      return response;
    },
    cancel() {
      if (!sent) out.destroy(new Error("request not sent"));
    },
  };
}
