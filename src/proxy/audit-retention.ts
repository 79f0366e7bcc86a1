/**
 * audit.retention: events older than the retention are deleted by the sink
 * (AuditSink.prune: the file sink's whole days, PostgreSQL's rows in
 * batches off the request path), every RETENTION_EVERY_MS and once at
 * start, each deletion recorded as an audit.retention event of its own. On
 * PostgreSQL every replica prunes; a batch one replica holds the others
 * skip, so each counts only what it deleted.
 */
import { audit } from "../audit/events.ts";
import type { ProxyContext } from "./context.ts";

export const RETENTION_EVERY_MS = 60 * 60_000;

/** Deletes what is past retention now (by ctx.clock); audits the deletion when anything went. Returns how many events went. */
export async function enforceRetention(ctx: ProxyContext, retentionMs: number): Promise<number> {
  const before = new Date(ctx.clock.now() - retentionMs);
  const { events, oldest } = await ctx.audit.prune(before);
  if (events > 0) await ctx.audit.emit(audit("AUDIT_RETENTION", { before: before.toISOString(), events, oldest }));
  return events;
}

/** Runs enforceRetention now and every RETENTION_EVERY_MS, one pass at a time. */
export function startRetention(ctx: ProxyContext, retentionMs: number): { stop(): Promise<void> } {
  let running: Promise<unknown> = Promise.resolve();
  const pass = () => {
    running = running.then(() => enforceRetention(ctx, retentionMs)).catch((e) => console.error("[proxy] audit retention failed:", (e as Error).message));
  };
  const timer = ctx.clock.every(RETENTION_EVERY_MS, pass).unref();
  pass();
  return {
    stop: async () => {
      timer.cancel();
      await running;
    },
  };
}
