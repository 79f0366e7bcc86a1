/**
 * Tracing (OpenTelemetry): one Azure request as spans across the client's
 * local proxy, the proxy, the agent and the agent's call to Azure, linked by
 * W3C `traceparent` headers that ride with the request through the tunnels,
 * exported with OTLP over HTTP when an endpoint is set (`tracing.endpoint`,
 * or OpenTelemetry's own OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT). With none,
 * nothing is recorded or sent: spans are OpenTelemetry's no-op ones, which
 * still carry an incoming trace ID on (so an audit event can name the
 * trace a caller's SDK started).
 *
 * Each mode makes its own Tracing and passes it down; nothing is registered
 * globally, so several proxies and agents in one process (the tests) keep
 * apart, and no context manager is needed: a span's parent is passed in.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { VERSION } from "../version.ts";

export { SpanKind, SpanStatusCode, type Span };

type HeaderList = [string, string][];

const propagator = new W3CTraceContextPropagator();
const TRACE_HEADERS = new Set(["traceparent", "tracestate"]);

export interface Tracing {
  /** Whether spans are recorded and exported (an endpoint is set). */
  readonly enabled: boolean;
  /** A span, child of `parent` (a span, or the traceparent in request headers), or a new trace's root. */
  start(name: string, kind: SpanKind, parent: Span | HeaderList | undefined, attributes?: Attributes): Span;
  /** Sends what is recorded and stops; a CLI calls it before it exits. */
  shutdown(): Promise<void>;
}

/** The endpoint to export to: the configured one, else OpenTelemetry's environment variables; undefined: none. */
export function tracingEndpoint(configured: string | undefined, env: Record<string, string | undefined> = process.env): string | undefined {
  if (configured) return `${configured.replace(/\/+$/, "")}/v1/traces`;
  if (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT) return `${env.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, "")}/v1/traces`;
  return undefined;
}

const noopTracer = trace.getTracer("azgate-noop");

/** The longest a stopping mode waits for its last spans to leave. */
const SHUTDOWN_MS = 2_000;

/** Tracing that records nothing (no endpoint); an incoming traceparent's trace ID still shows on its spans. */
export const NO_TRACING: Tracing = {
  enabled: false,
  start: (name, kind, parent, attributes) => noopTracer.startSpan(name, { kind, attributes }, parentContext(parent)),
  shutdown: async () => undefined,
};

/** Tracing for one mode (`service`: azgate-proxy, azgate-agent, azgate-client): OTLP/HTTP to `url` (a full .../v1/traces URL), or none. */
export function startTracing(service: string, url: string | undefined): Tracing {
  if (!url) return NO_TRACING;
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ "service.name": service, "service.version": VERSION }),
    // Batches leave every second (or at 512 spans); a CLI's spans leave at shutdown.
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url, timeoutMillis: SHUTDOWN_MS }), scheduledDelayMillis: 1000 })],
  });
  const tracer: Tracer = provider.getTracer("azgate", VERSION);
  return {
    enabled: true,
    start: (name, kind, parent, attributes) => tracer.startSpan(name, { kind, attributes }, parentContext(parent)),
    // A collector that is down does not hold a CLI's exit: what is not sent in SHUTDOWN_MS is dropped.
    shutdown: () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<void>((r) => (timer = setTimeout(r, SHUTDOWN_MS)));
      return Promise.race([provider.shutdown().catch(() => undefined), late]).finally(() => clearTimeout(timer));
    },
  };
}

function parentContext(parent: Span | HeaderList | undefined): Context {
  if (!parent) return ROOT_CONTEXT;
  if (!Array.isArray(parent)) return trace.setSpan(ROOT_CONTEXT, parent);
  // Only a well-formed traceparent counts (the propagator checks it); one header of each at most, the first.
  const carrier: Record<string, string> = {};
  for (const [k, v] of parent) {
    const n = k.toLowerCase();
    if (TRACE_HEADERS.has(n) && !(n in carrier)) carrier[n] = v;
  }
  return propagator.extract(ROOT_CONTEXT, carrier, { get: (c, k) => c[k], keys: (c) => Object.keys(c) });
}

/** `headers` with this span as the next hop's parent: any traceparent and tracestate the caller sent replaced by the span's. */
export function withTraceparent(headers: HeaderList, span: Span): HeaderList {
  const out = headers.filter(([k]) => !TRACE_HEADERS.has(k.toLowerCase()));
  if (!trace.isSpanContextValid(span.spanContext())) return out;
  const carrier: Record<string, string> = {};
  propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, { set: (c, k, v) => (c[k] = v) });
  for (const [k, v] of Object.entries(carrier)) out.push([k, v]);
  return out;
}

/** The span's trace ID, for an audit event; undefined when it has none (no tracing, and no traceparent came). */
export function traceIdOf(span: Span): string | undefined {
  const sc = span.spanContext();
  return trace.isSpanContextValid(sc) ? sc.traceId : undefined;
}

/** Ends a span with an HTTP status: 5xx (or none) marks it failed. */
export function endWithStatus(span: Span, status: number | undefined, error?: string): void {
  if (status !== undefined) span.setAttribute("http.response.status_code", status);
  if (error || status === undefined || status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, ...(error ? { message: error } : {}) });
  span.end();
}
