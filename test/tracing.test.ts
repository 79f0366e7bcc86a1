/**
 * The tracing module (src/tracing): spans exported with OTLP/HTTP to a
 * receiver when an endpoint is set; W3C traceparent read from request
 * headers (only a well-formed one, the first) and replaced on the way out by
 * the span's own. With no endpoint nothing is loaded or recorded, and a
 * caller's traceparent passes through as it came.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NO_TRACING, SpanKind, startTracing, traceIdOf, tracingEndpoint } from "../src/tracing/index.ts";
import { startOtlpReceiver } from "./helpers/otlp.ts";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT = `00-${TRACE}-00f067aa0ba902b7-01`;

let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
beforeAll(async () => {
  otlp = await startOtlpReceiver();
});
afterAll(() => otlp?.close());

describe("tracing", () => {
  it("exports spans with OTLP/HTTP, children of the traceparent the request came with", async () => {
    const tracing = await startTracing("azgate-test", tracingEndpoint(otlp.endpoint));
    const server = tracing.start("azgate proxy GET", SpanKind.SERVER, [["TraceParent", PARENT], ["traceparent", `00-${"1".repeat(32)}-00f067aa0ba902b7-01`]], { "url.path": "/x" });
    const out = tracing.forward([["traceparent", "00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-01"], ["x-other", "1"]], server);
    const child = tracing.start("Azure GET", SpanKind.CLIENT, out);
    child.end();
    server.end();
    await tracing.shutdown();
    const got = otlp.spans.filter((s) => s.service === "azgate-test");
    expect(got.map((s) => s.name).sort()).toEqual(["Azure GET", "azgate proxy GET"]);
    const [p, c] = ["azgate proxy GET", "Azure GET"].map((n) => got.find((s) => s.name === n)!);
    expect(p.traceId).toBe(TRACE);
    expect(p.parentSpanId).toBe("00f067aa0ba902b7");
    expect(c.parentSpanId).toBe(p.spanId);
    expect(p.attributes["url.path"]).toBe("/x");
    // The caller's traceparent was replaced, not kept beside the span's.
    expect(out.filter(([k]) => k === "traceparent")).toEqual([["traceparent", `00-${TRACE}-${p.spanId}-01`]]);
    expect(out).toContainEqual(["x-other", "1"]);
  });

  it("without an endpoint loads, records and sends nothing: a caller's traceparent passes through as it came, and no trace ID is named", async () => {
    expect(tracingEndpoint(undefined, {})).toBeUndefined();
    expect(tracingEndpoint(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318/" })).toBe("http://c:4318/v1/traces");
    expect(tracingEndpoint(undefined, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:4318/t", OTEL_EXPORTER_OTLP_ENDPOINT: "http://x" })).toBe("http://c:4318/t");
    expect(await startTracing("x", undefined)).toBe(NO_TRACING);
    const span = NO_TRACING.start("p", SpanKind.SERVER, [["traceparent", PARENT]]);
    expect(span.isRecording()).toBe(false);
    expect(traceIdOf(span)).toBeUndefined();
    expect(NO_TRACING.forward([["traceparent", PARENT], ["a", "b"]], span)).toEqual([["traceparent", PARENT], ["a", "b"]]);
  });

  it("with an endpoint, a malformed traceparent starts a trace of its own (none of the caller's words)", async () => {
    const tracing = await startTracing("azgate-test", tracingEndpoint(otlp.endpoint));
    for (const bad of ["00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-xyz-00f067aa0ba902b7-01", `ff-${TRACE}-00f067aa0ba902b7-01`, `00-${TRACE}-0000000000000000-01`, `${PARENT}\r\nx: y`]) {
      const s = tracing.start("p", SpanKind.SERVER, [["traceparent", bad]]);
      expect(traceIdOf(s), bad).toMatch(/^[0-9a-f]{32}$/);
      expect(traceIdOf(s), bad).not.toBe(TRACE);
      s.end();
    }
    await tracing.shutdown();
  });

  it("a collector that is down does not hold a stop for more than a moment", async () => {
    const tracing = await startTracing("azgate-test", "http://127.0.0.1:9/v1/traces");
    tracing.start("s", SpanKind.INTERNAL, undefined).end();
    const t0 = performance.now();
    await tracing.shutdown();
    expect(performance.now() - t0).toBeLessThan(5_000);
  });
});
