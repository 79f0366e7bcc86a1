/**
 * Tracing (OpenTelemetry): one Azure request as spans across the client's
 * local proxy, the proxy, the agent and the agent's call to Azure, linked by
 * W3C `traceparent` headers that ride with the request through the tunnels,
 * exported with OTLP over HTTP when an endpoint is set (`tracing.endpoint`,
 * or OpenTelemetry's own OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT).
 *
 * With none, nothing is loaded, recorded or sent: OpenTelemetry's SDK costs
 * a third of a second to load, which every CLI command would pay. Spans are
 * then one inert object, and a caller's traceparent passes through as it
 * came. With one, the SDK is loaded once, at the mode's start.
 *
 * Each mode makes its own Tracing and passes it down; nothing is registered
 * globally, so several proxies and agents in one process (the tests) keep
 * apart, and no context manager is needed: a span's parent is passed in.
 */
import { VERSION } from "../version.ts";

type HeaderList = [string, string][];

/** OpenTelemetry's span kinds (the same numbers). */
export const SpanKind = { INTERNAL: 0, SERVER: 1, CLIENT: 2 } as const;
export type SpanKind = (typeof SpanKind)[keyof typeof SpanKind];

/** What azgate does with a span: OpenTelemetry's Span has all of it. */
export interface Span {
  spanContext(): { traceId: string; spanId: string };
  setAttribute(key: string, value: string | number | boolean): unknown;
  setStatus(status: { code: number; message?: string }): unknown;
  end(): void;
  isRecording(): boolean;
}

/** OpenTelemetry's status code for a failed span. */
const STATUS_ERROR = 2;

export interface Tracing {
  /** Whether spans are recorded and exported (an endpoint is set). */
  readonly enabled: boolean;
  /** A span, child of `parent` (a span, or the traceparent in request headers), or a new trace's root. */
  start(name: string, kind: SpanKind, parent: Span | HeaderList | undefined, attributes?: Record<string, string | number | boolean>): Span;
  /** `headers` for the next hop: its traceparent and tracestate this span's (with no tracing, the caller's as they came). */
  forward(headers: HeaderList, span: Span): HeaderList;
  /** Sends what is recorded and stops; a CLI calls it before it exits. */
  shutdown(): Promise<void>;
}

/** The endpoint to export to: the configured one, else OpenTelemetry's environment variables; undefined: none. */
export function tracingEndpoint(configured: string | undefined, env: Record<string, string | undefined> = process.env): string | undefined {
  // OpenTelemetry's own off switch wins over every endpoint.
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return undefined;
  if (configured) return `${configured.replace(/\/+$/, "")}/v1/traces`;
  if (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT) return `${env.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, "")}/v1/traces`;
  return undefined;
}

const INERT: Span = {
  spanContext: () => ({ traceId: "", spanId: "" }),
  setAttribute: () => INERT,
  setStatus: () => INERT,
  end: () => undefined,
  isRecording: () => false,
};

/** No tracing: nothing loaded or recorded; headers pass through untouched. */
export const NO_TRACING: Tracing = {
  enabled: false,
  start: () => INERT,
  forward: (headers) => headers,
  shutdown: async () => undefined,
};

/** The longest a stopping mode waits for its last spans to leave. */
const SHUTDOWN_MS = 2_000;
const TRACE_HEADERS = new Set(["traceparent", "tracestate"]);

/** Tracing for one mode (`service`: azgate-proxy, azgate-agent, azgate-client): OTLP/HTTP to `url` (a full .../v1/traces URL), or none. */
export async function startTracing(service: string, url: string | undefined): Promise<Tracing> {
  if (!url) return NO_TRACING;
  const [{ ROOT_CONTEXT, trace }, { W3CTraceContextPropagator }, { OTLPTraceExporter }, { resourceFromAttributes }, { AlwaysOnSampler, BatchSpanProcessor, ParentBasedSampler, TracerProvider }] = await Promise.all([
    import("@opentelemetry/api"),
    import("@opentelemetry/core"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/sdk-trace"),
  ]);
  const propagator = new W3CTraceContextPropagator();
  const provider = new TracerProvider({
    // Every request is recorded: a caller's traceparent saying "not sampled" does not switch azgate's spans off (the operator's choice, not the client's).
    sampler: new ParentBasedSampler({ root: new AlwaysOnSampler(), remoteParentNotSampled: new AlwaysOnSampler() }),
    resource: resourceFromAttributes({ "service.name": service, "service.version": VERSION }),
    // Batches leave every second (or at 512 spans); a CLI's spans leave at shutdown.
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url, timeoutMillis: SHUTDOWN_MS }), scheduledDelayMillis: 1000 })],
  });
  const tracer = provider.getTracer("azgate", VERSION);
  const parentContext = (parent: Span | HeaderList | undefined) => {
    if (!parent) return ROOT_CONTEXT;
    if (!Array.isArray(parent)) return trace.setSpan(ROOT_CONTEXT, parent as never);
    // Only a well-formed traceparent counts (the propagator checks it); one header of each at most, the first.
    const carrier: Record<string, string> = {};
    for (const [k, v] of parent) {
      const n = k.toLowerCase();
      if (TRACE_HEADERS.has(n) && !(n in carrier)) carrier[n] = v;
    }
    return propagator.extract(ROOT_CONTEXT, carrier, { get: (c, k) => c[k], keys: (c) => Object.keys(c) });
  };
  return {
    enabled: true,
    start: (name, kind, parent, attributes) => tracer.startSpan(name, { kind, attributes }, parentContext(parent)) as Span,
    forward(headers, span) {
      const out = headers.filter(([k]) => !TRACE_HEADERS.has(k.toLowerCase()));
      const carrier: Record<string, string> = {};
      propagator.inject(trace.setSpan(ROOT_CONTEXT, span as never), carrier, { set: (c, k, v) => (c[k] = v) });
      for (const [k, v] of Object.entries(carrier)) out.push([k, v]);
      return out;
    },
    // A collector that is down does not hold a CLI's exit: what is not sent in SHUTDOWN_MS is dropped.
    shutdown: () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<void>((r) => (timer = setTimeout(r, SHUTDOWN_MS)));
      return Promise.race([provider.shutdown().catch(() => undefined), late]).finally(() => clearTimeout(timer));
    },
  };
}

/** The span's trace ID, for an audit event; undefined with no tracing. */
export function traceIdOf(span: Span): string | undefined {
  const id = span.spanContext().traceId;
  return /^[0-9a-f]{32}$/.test(id) && !/^0+$/.test(id) ? id : undefined;
}

/** Ends a span with an HTTP status: 5xx (or none) marks it failed. */
export function endWithStatus(span: Span, status: number | undefined, error?: string): void {
  if (status !== undefined) span.setAttribute("http.response.status_code", status);
  if (error || status === undefined || status >= 500) span.setStatus({ code: STATUS_ERROR, ...(error ? { message: error } : {}) });
  span.end();
}
