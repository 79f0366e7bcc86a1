/**
 * Liveness and readiness, as Kubernetes probes and the container's
 * HEALTHCHECK ask for them: /healthz answers while the process serves;
 * /readyz is 200 only when it can do its job (503 with the reason otherwise).
 */
import { Hono } from "hono";
import { serve, type RunningServer } from "../runtime/index.ts";

export type Readiness = { ready: true } | { ready: false; reason: string };

export function probeRoutes(readiness: () => Readiness | Promise<Readiness>): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    const r = await readiness();
    return r.ready ? c.json({ status: "ready" }) : c.json({ status: "not ready", reason: r.reason }, 503);
  });
  return app;
}

/** Prometheus text, as a registry renders it. */
export type MetricsSource = () => Promise<{ contentType: string; text: string }>;

/** The plain-HTTP diagnostics listener (`--diag-addr`): the probes and /metrics. */
export function serveDiag(hostname: string, port: number, readiness: () => Readiness | Promise<Readiness>, metrics?: MetricsSource): Promise<RunningServer> {
  const app = probeRoutes(readiness);
  if (metrics) {
    app.get("/metrics", async (c) => {
      const m = await metrics();
      return c.body(m.text, 200, { "content-type": m.contentType });
    });
  }
  return serve({ fetch: app.fetch, hostname, port });
}
