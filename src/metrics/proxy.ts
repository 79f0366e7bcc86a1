/**
 * The proxy's Prometheus metrics (prom-client), one registry per proxy.
 * Labels are bounded: apps, Azure identities and methods come from the
 * cluster's own configuration, status and denial reasons from fixed sets.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";

const FAST = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
const SLOW = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export function proxyMetrics() {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    requests: new Counter({ name: "azgate_requests_total", help: "Azure requests forwarded, by app, Azure identity, method and status", labelNames: ["app", "identity", "method", "status"], registers }),
    overhead: new Histogram({ name: "azgate_proxy_overhead_seconds", help: "What azgate adds to a request (proxy, tunnels, agent, token): its whole time minus Azure's", labelNames: ["app"], buckets: FAST, registers }),
    upstream: new Histogram({ name: "azgate_upstream_seconds", help: "Azure's time to answer, measured at the agent", labelNames: ["app"], buckets: SLOW, registers }),
    denials: new Counter({ name: "azgate_denials_total", help: "Requests refused, by reason", labelNames: ["reason"], registers }),
    backend: new Histogram({ name: "azgate_backend_seconds", help: "Backend operation latency", labelNames: ["op"], buckets: FAST, registers }),
    tunnels: new Gauge({ name: "azgate_tunnels", help: "Connected tunnels, by kind (agent, client)", labelNames: ["kind"], registers }),
    auditExport: new Counter({ name: "azgate_audit_export_total", help: "Audit export, by target: events sent (a batch sent again after a crash counts again) and failed attempts", labelNames: ["target", "result"], registers }),
    openStreams: new Gauge({ name: "azgate_open_streams", help: "Client streams being relayed now", registers }),
    // Read when scraped (process.memoryUsage works on Node and Deno): what each connected tunnel costs shows here.
    memory: new Gauge({
      name: "azgate_process_memory_bytes",
      help: "The proxy process's memory: resident set (rss) and the JavaScript heap in use (heap_used)",
      labelNames: ["kind"],
      registers,
      collect() {
        const m = process.memoryUsage();
        this.set({ kind: "rss" }, m.rss);
        this.set({ kind: "heap_used" }, m.heapUsed);
      },
    }),
  };
}

export type ProxyMetrics = ReturnType<typeof proxyMetrics>;
