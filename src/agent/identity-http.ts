/**
 * An @azure/core-rest-pipeline HttpClient on the agent's Outbound, so
 * @azure/identity's token fetches (and our ARM lookups) follow connect-to and
 * its CA. Plain-http targets (IMDS on a VM) go direct: IMDS is local.
 */
import http from "node:http";
import { createHttpHeaders, type HttpClient, type PipelineRequest, type PipelineResponse } from "@azure/core-rest-pipeline";
import type { Outbound } from "./outbound.ts";

export function identityHttpClient(outbound: Outbound): HttpClient {
  return {
    async sendRequest(request: PipelineRequest): Promise<PipelineResponse> {
      const url = new URL(request.url);
      const headers: [string, string][] = [...request.headers];
      const body = typeof request.body === "string" ? new TextEncoder().encode(request.body) : request.body instanceof Uint8Array ? request.body : undefined;
      if (request.body !== undefined && request.body !== null && body === undefined) throw new Error("identity client: unsupported request body type");
      if (body !== undefined) headers.push(["content-length", String(body.length)]);
      const timeoutMs = request.timeout > 0 ? request.timeout : 30_000;
      const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), ...(request.abortSignal ? [request.abortSignal as AbortSignal] : [])]);
      const res = url.protocol === "http:" ? await plainHttp(url, request.method, headers, body, signal) : await viaOutbound(outbound, url, request.method, headers, body, signal);
      const out = createHttpHeaders();
      for (const [k, v] of res.headers) out.set(k, v);
      return { request, status: res.status, headers: out, bodyAsText: res.text };
    },
  };
}

async function viaOutbound(outbound: Outbound, url: URL, method: string, headers: [string, string][], body: Uint8Array | undefined, signal: AbortSignal) {
  const pinned = await outbound.pinTrusted(url.hostname, Number(url.port || 443));
  const res = await outbound.send(url, pinned, { method, headers, body: body ? new ReadableStream<Uint8Array>({ start: (c) => (c.enqueue(body), c.close()) }) : null, signal });
  const chunks: Uint8Array[] = [];
  for await (const chunk of res.body) chunks.push(chunk);
  return { status: res.status, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") };
}

function plainHttp(url: URL, method: string, headers: [string, string][], body: Uint8Array | undefined, signal: AbortSignal) {
  return new Promise<{ status: number; headers: [string, string][]; text: string }>((resolve, reject) => {
    const req = http.request(url, { method, headers: Object.fromEntries(headers), signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const list: [string, string][] = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) list.push([res.rawHeaders[i], res.rawHeaders[i + 1]]);
        resolve({ status: res.statusCode ?? 0, headers: list, text: Buffer.concat(chunks).toString("utf8") });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}
