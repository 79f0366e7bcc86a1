/**
 * The emulator's Activity Log: every ARM write (PUT, PATCH, DELETE, POST),
 * allowed or refused, recorded as Azure records it (EventData: caller,
 * correlationId, httpRequest.clientRequestId, operationName, status), and
 * served where `az monitor activity-log list` reads it:
 *   GET /subscriptions/{s}/providers/microsoft.insights/eventtypes/management/values
 *       ?api-version=2015-04-01&$filter=eventTimestamp ge '...' and eventTimestamp le '...' [and correlationId eq '...']
 * Like Azure's, it names the identity that called (its object ID), not the
 * person behind it: that is what azgate's audit adds (`admin audit correlate`).
 */
import { mapRequest, UnsafePath } from "../azure/operation.ts";
import type { CloudName } from "../azure/clouds.ts";

export interface ActivityEntry {
  authorization: { action: string; scope: string };
  caller: string;
  category: { value: "Administrative"; localizedValue: "Administrative" };
  correlationId: string;
  eventDataId: string;
  eventName: { value: "EndRequest"; localizedValue: "End request" };
  eventTimestamp: string;
  httpRequest: { clientRequestId: string; clientIpAddress: string; method: string };
  id: string;
  level: "Informational" | "Error";
  operationId: string;
  operationName: { value: string; localizedValue: string };
  resourceGroupName: string | null;
  resourceId: string;
  resourceProviderName: { value: string; localizedValue: string };
  status: { value: "Succeeded" | "Failed"; localizedValue: string };
  subStatus: { value: string; localizedValue: string };
  submissionTimestamp: string;
  subscriptionId: string;
  tenantId: string;
}

const WRITES = new Set(["PUT", "PATCH", "DELETE", "POST"]);
/** Azure keeps 90 days; the emulator keeps the newest this many. */
const KEEP = 5_000;
const SUB_STATUS: Record<number, string> = { 200: "OK", 201: "Created", 202: "Accepted", 204: "NoContent", 400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict" };

export class ActivityLog {
  readonly entries: ActivityEntry[] = [];

  constructor(private readonly tenantId: string) {}

  /** Records an ARM request if it is a write under a subscription (what the Activity Log's Administrative category holds). */
  record(r: { method: string; url: URL; status: number; caller: string; correlationId: string; clientRequestId: string | null; cloud: CloudName }): void {
    if (!WRITES.has(r.method)) return;
    const sub = /^\/subscriptions\/([^/]+)/i.exec(r.url.pathname)?.[1];
    if (!sub) return;
    let op;
    try {
      op = mapRequest({ method: r.method, host: r.url.hostname, path: r.url.pathname, query: r.url.searchParams }, r.cloud);
    } catch (e) {
      if (e instanceof UnsafePath) return;
      throw e;
    }
    if (!op.action) return;
    const now = new Date().toISOString();
    const id = crypto.randomUUID();
    const ok = r.status < 400;
    const provider = op.action.split("/")[0];
    this.entries.push({
      authorization: { action: op.action, scope: op.scope },
      caller: r.caller,
      category: { value: "Administrative", localizedValue: "Administrative" },
      correlationId: r.correlationId,
      eventDataId: id,
      eventName: { value: "EndRequest", localizedValue: "End request" },
      eventTimestamp: now,
      httpRequest: { clientRequestId: r.clientRequestId ?? "", clientIpAddress: "127.0.0.1", method: r.method },
      id: `${op.scope}/events/${id}/ticks/${Date.now() * 10_000}`,
      level: ok ? "Informational" : "Error",
      operationId: crypto.randomUUID(),
      operationName: { value: op.action, localizedValue: op.action },
      resourceGroupName: /\/resourceGroups\/([^/]+)/i.exec(op.scope)?.[1] ?? null,
      resourceId: op.scope,
      resourceProviderName: { value: provider, localizedValue: provider },
      status: { value: ok ? "Succeeded" : "Failed", localizedValue: ok ? "Succeeded" : "Failed" },
      subStatus: { value: SUB_STATUS[r.status] ?? String(r.status), localizedValue: SUB_STATUS[r.status] ?? String(r.status) },
      submissionTimestamp: now,
      subscriptionId: sub,
      tenantId: this.tenantId,
    });
    if (this.entries.length > KEEP) this.entries.splice(0, this.entries.length - KEEP);
  }

  /**
   * Entries of a subscription, newest first, filtered as ARM reads `$filter`:
   * `eventTimestamp ge|le '...'`, and `eq` on correlationId, resourceGroupName,
   * resourceId, caller, joined by `and`. A clause it cannot read is an error, as ARM's is.
   */
  list(subscription: string, filter: string | null): ActivityEntry[] | { error: string } {
    const tests: ((e: ActivityEntry) => boolean)[] = [(e) => e.subscriptionId.toLowerCase() === subscription.toLowerCase()];
    for (const clause of (filter ?? "").split(/\s+and\s+/i).map((c) => c.trim()).filter(Boolean)) {
      // Values quoted ('...') or not (az writes times bare, in UTC without a zone).
      const m = /^(\w+)\s+(ge|le|eq)\s+(?:'([^']*)'|(\S+))$/i.exec(clause);
      if (!m) return { error: `The $filter clause '${clause}' is not supported.` };
      const [, field, op] = m;
      const value = m[3] ?? m[4];
      const f = field.toLowerCase();
      if (f === "eventtimestamp" && op.toLowerCase() !== "eq") {
        const t = Date.parse(/[zZ]|[+-]\d\d:\d\d$/.test(value) ? value : `${value}Z`);
        if (Number.isNaN(t)) return { error: `'${value}' is not a time.` };
        tests.push(op.toLowerCase() === "ge" ? (e) => Date.parse(e.eventTimestamp) >= t : (e) => Date.parse(e.eventTimestamp) <= t);
      } else if (op.toLowerCase() === "eq" && ["correlationid", "resourcegroupname", "resourceid", "resourceuri", "caller"].includes(f)) {
        const get = (e: ActivityEntry) => (f === "correlationid" ? e.correlationId : f === "resourcegroupname" ? e.resourceGroupName : f === "caller" ? e.caller : e.resourceId) ?? "";
        tests.push((e) => get(e).toLowerCase() === value.toLowerCase());
      } else return { error: `The $filter field '${field}' is not supported.` };
    }
    return this.entries.filter((e) => tests.every((t) => t(e))).reverse();
  }
}
