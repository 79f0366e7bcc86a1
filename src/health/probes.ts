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

/**
 * Kubernetes probes and Prometheus address a pod by IP; a browser sent to a
 * rebinding DNS name carries that name. Only IP literals and localhost are
 * answered, so a web page cannot read the metrics through the user's browser.
 */
export function isDiagHost(host: string | undefined): boolean {
  if (!host) return false;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:]+))(?::\d{1,5})?$/.exec(host);
  if (!m) return false;
  const name = (m[1] ?? m[2]).toLowerCase();
  return m[1] !== undefined || name === "localhost" || /^\d{1,3}(\.\d{1,3}){3}$/.test(name);
}

/** The plain-HTTP diagnostics listener (`--diag-addr`): the probes and /metrics. */
export function serveDiag(hostname: string, port: number, readiness: () => Readiness | Promise<Readiness>, metrics?: MetricsSource): Promise<RunningServer> {
  const app = new Hono();
  app.use("*", async (c, next) => {
    if (!isDiagHost(c.req.header("host"))) return c.json({ error: { code: "access_denied", message: "the diagnostics port answers requests to an IP address or localhost only" } }, 403);
    await next();
  });
  app.route("/", probeRoutes(readiness));
  if (metrics) {
    app.get("/metrics", async (c) => {
      const m = await metrics();
      return c.body(m.text, 200, { "content-type": m.contentType });
    });
  }
  return serve({ fetch: app.fetch, hostname, port });
}
