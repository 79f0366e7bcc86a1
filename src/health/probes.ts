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

/** A plain-HTTP server with only the probes (the agent's `--diag-addr`). */
export function serveProbes(hostname: string, port: number, readiness: () => Readiness | Promise<Readiness>): Promise<RunningServer> {
  return serve({ fetch: probeRoutes(readiness).fetch, hostname, port });
}
