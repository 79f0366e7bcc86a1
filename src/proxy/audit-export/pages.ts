/**
 * `admin audit export`: the whole log (or a window of it, with the same
 * filters as `admin audit ls`) in the order it was written, page after page,
 * however long it is. A page reads PAGE events after the caller's cursor
 * and returns those that match: the cursor is the sink's own
 * (AuditSink.readAfter), so a page never skips an event and memory stays
 * bounded on both ends. Unlike `ls` (the newest matches, at most 100,000),
 * nothing is left out.
 */
import { AzgateError } from "../../errors/index.ts";
import { matchesQuery } from "../../audit/sink.ts";
import type { AuditExportPage } from "../../api/types.ts";
import { auditQuery, type AuditFilters } from "../admin.ts";
import { authorize, type Caller } from "../caller.ts";
import type { ProxyContext } from "../context.ts";

/** Events read per page. */
export const PAGE = 1000;

export async function exportPage(ctx: ProxyContext, caller: Caller, filters: AuditFilters & { after?: string }): Promise<AuditExportPage> {
  authorize(caller, "event", "list");
  const q = auditQuery(filters, ctx.clock.now());
  const after = filters.after || null;
  if (after && after.length > 200) throw new AzgateError("bad_parameter", "after: not a cursor this proxy gave");
  const { events, cursor, held } = await ctx.audit.readAfter(after, PAGE, { since: q.since, until: q.until });
  // Not the end while later events wait for a transaction still open in the database: the caller asks again.
  const end = events.length < PAGE && !held;
  return { items: events.filter((e) => matchesQuery(e, { ...q, limit: undefined })), cursor, done: end, ...(held && events.length < PAGE ? { held: true } : {}) };
}
