/**
 * The proxy's audit sink as the services use it: every event must be one of
 * the registry's (audit/events.ts), with its fields; an unregistered name or
 * code, or a missing field, is refused (an error, so the request that caused
 * it is refused too: no event, no access, as for a failed write). The sinks
 * underneath (files, PostgreSQL) store whatever they are given.
 */
import { AzgateError } from "../errors/index.ts";
import { unregistered } from "./events.ts";
import type { AuditEvent, AuditSink } from "./sink.ts";

export function registeredSink(inner: AuditSink): AuditSink {
  const checked = (e: Omit<AuditEvent, "time">) => {
    const why = unregistered(e);
    if (why) throw new AzgateError("internal", why);
    return e;
  };
  return {
    remote: inner.remote,
    emit: async (e) => inner.emit(checked(e)),
    emitLater: async (e) => inner.emitLater(checked(e)),
    search: (q) => inner.search(q),
    prune: (before) => inner.prune(before),
    oldest: () => inner.oldest(),
    readAfter: (cursor, limit, opts) => inner.readAfter(cursor, limit, opts),
    close: () => inner.close(),
  };
}
