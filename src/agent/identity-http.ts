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
      const headers: Record<string, string> = {};
      for (const [k, v] of request.headers) headers[k] = v;
      const body = typeof request.body === "string" ? request.body : request.body instanceof Uint8Array ? request.body : undefined;
      if (request.body !== undefined && request.body !== null && body === undefined) throw new Error("identity client: unsupported request body type");
      if (body !== undefined) headers["content-length"] = String(Buffer.byteLength(body));
      const timeoutMs = request.timeout > 0 ? request.timeout : 30_000;
      const req =
        url.protocol === "http:"
          ? http.request(url, { method: request.method, headers, timeout: timeoutMs })
          : outbound.request(url, await outbound.pin(url.hostname, Number(url.port || 443), false), { method: request.method, headers, timeoutMs });
      return new Promise<PipelineResponse>((resolve, reject) => {
        const onAbort = () => req.destroy(new Error("request aborted"));
        request.abortSignal?.addEventListener("abort", onAbort, { once: true });
        req.on("error", (e) => {
          request.abortSignal?.removeEventListener("abort", onAbort);
          reject(Object.assign(e, { code: (e as NodeJS.ErrnoException).code ?? "REQUEST_SEND_ERROR" }));
        });
        req.on("timeout", () => req.destroy(new Error(`timeout after ${timeoutMs}ms`)));
        req.on("response", (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", reject);
          res.on("end", () => {
            request.abortSignal?.removeEventListener("abort", onAbort);
            const out = createHttpHeaders();
            for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) out.set(k, Array.isArray(v) ? v.join(", ") : v);
            resolve({ request, status: res.statusCode ?? 0, headers: out, bodyAsText: Buffer.concat(chunks).toString("utf8") });
          });
        });
        req.end(body);
      });
    },
  };
}
