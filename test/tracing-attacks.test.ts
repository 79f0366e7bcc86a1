/**
 * Second review, tracing (src/tracing): untrusted traceparent/tracestate,
 * OpenTelemetry's environment on a workstation, collectors that are down.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { SpanKind, startTracing, traceIdOf, tracingEndpoint } from "../src/tracing/index.ts";
import { startOtlpReceiver } from "./helpers/otlp.ts";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";

let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
beforeAll(async () => {
  otlp = await startOtlpReceiver();
});
afterAll(() => otlp?.close());

describe("tracing: what the client's headers decide", () => {
  it("a client's traceparent with the sampled flag off: the proxy's own span is still recorded and exported (the operator's traces, not the client's choice)", async () => {
    const tracing = await startTracing("azgate-attack2-sampled", tracingEndpoint(otlp.endpoint));
    const span = tracing.start("azgate proxy GET", SpanKind.SERVER, [["traceparent", `00-${TRACE}-00f067aa0ba902b7-00`]], { "azgate.user": "mallory" });
    const forwarded = tracing.forward([], span);
    const recording = span.isRecording();
    span.end();
    await tracing.shutdown();
    expect(traceIdOf(span)).toBe(TRACE);
    expect({ recording, exported: otlp.spans.filter((s) => s.service === "azgate-attack2-sampled").length, forwarded }).toEqual({
      recording: true,
      exported: 1,
      forwarded: [["traceparent", expect.stringMatching(/-01$/)]],
    });
  });

  it("held: an oversize or malformed tracestate never goes on (dropped or cut to 512 characters, no CR/LF)", async () => {
    const tracing = await startTracing("azgate-attack2-state", tracingEndpoint(otlp.endpoint));
    const huge = Array.from({ length: 2000 }, (_, i) => `k${i}=v${i}`).join(",");
    for (const state of [huge, "a=b\r\nx-injected: 1", "a=" + "x".repeat(20_000)]) {
      const span = tracing.start("p", SpanKind.SERVER, [["traceparent", `00-${TRACE}-00f067aa0ba902b7-01`], ["tracestate", state]]);
      const out = tracing.forward([["tracestate", state]], span);
      const ts = out.filter(([k]) => k === "tracestate").map(([, v]) => v);
      expect(ts.every((v) => v.length <= 512 && !/[\r\n]/.test(v))).toBe(true);
      span.end();
    }
    await tracing.shutdown();
  });
});

describe("tracing: OpenTelemetry's environment on a workstation", () => {
  it("OTEL_EXPORTER_OTLP_ENDPOINT set for another tool's gRPC exporter (localhost:4317, no scheme): azgate neither fails nor throws later", async () => {
    const url = tracingEndpoint(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: "localhost:4317" });
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on("unhandledRejection", onUnhandled);
    try {
      const tracing = await startTracing("azgate-client", url);
      tracing.start("azgate client GET", SpanKind.CLIENT, undefined).end();
      await tracing.shutdown();
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
    expect(unhandled).toEqual([]);
  });

  it("OTEL_SDK_DISABLED=true (OpenTelemetry's switch to turn an SDK off): nothing is loaded or sent", async () => {
    // What a developer sets to silence every OpenTelemetry SDK on the machine, the endpoint left set for other tools.
    expect(tracingEndpoint(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_SDK_DISABLED: "true" })).toBeUndefined();
  });
});

describe("tracing: a collector that is slow", () => {
  it("held: a collector that takes the connection and never answers costs a stop at most ~2 s, and ending spans never waits on it", async () => {
    const sockets = new Set<import("node:net").Socket>();
    const server = http.createServer(() => undefined); // reads the request, never answers
    server.on("connection", (c) => (sockets.add(c), c.on("close", () => sockets.delete(c))));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const tracing = await startTracing("azgate-attack2-slow", tracingEndpoint(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
      const t0 = performance.now();
      for (let i = 0; i < 900; i++) tracing.start("s", SpanKind.SERVER, undefined).end();
      const ending = performance.now() - t0;
      await new Promise((r) => setTimeout(r, 1200)); // a batch is in flight to the collector that does not answer
      const t1 = performance.now();
      await tracing.shutdown();
      expect({ endingUnder: ending < 1000, stopUnder: performance.now() - t1 < 3000 }).toEqual({ endingUnder: true, stopUnder: true });
    } finally {
      sockets.forEach((c) => c.destroy());
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
