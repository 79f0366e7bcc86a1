/**
 * The audit log, searched on the server: the filters of `admin audit ls`
 * (the same names, the same code: proxy/admin.ts auditQuery, run in SQL on
 * PostgreSQL), newest first, a page at a time; one request's or one
 * session's record a click away; the filtered set as JSON lines or CSV.
 * Permission as `admin audit ls`: the rule to list events (the auditor role).
 */
import { html } from "hono/html";
import { CSV_HEADER, csvRow } from "../../../audit/csv.ts";
import type { AuditEvent } from "../../../audit/sink.ts";
import { identityName } from "../../../azure/resource-id.ts";
import { AUDIT_FILTERS, auditReach, reachLine, searchAudit, type AuditFilters } from "../../admin.ts";
import type { Caller } from "../../caller.ts";
import type { ProxyContext } from "../../context.ts";
import { cell, timeCell, type Html } from "../layout.ts";

export const PAGE_SIZE = 50;
const LABELS: Record<(typeof AUDIT_FILTERS)[number], string> = {
  since: "Since (time or 1h)",
  until: "Before",
  user: "User",
  event: "Event",
  request: "Access request ID",
  app: "App",
  identity: "Azure identity",
  method: "Method",
  status: "Status (403, 4xx)",
  action: "Azure operation (* wildcard)",
  resource: "Resource ID prefix",
  decision: "Policy decision",
  session: "Session ID",
  request_id: "Request ID (x-azgate-request-id)",
  command: "Command ID",
  bot: "Bot",
  ci: "CI fact (repository=acme/infra, a SHA, a run ID)",
};

export function filtersFrom(query: Record<string, string>): AuditFilters {
  const f: AuditFilters = {};
  for (const k of AUDIT_FILTERS) if (query[k]) f[k] = query[k];
  return f;
}

const link = (f: AuditFilters, extra: AuditFilters = {}) => `/web/audit?${new URLSearchParams({ ...f, ...extra } as Record<string, string>)}`;

/** Pages count back from the newest event (page 1); the searches return the newest N, so page P reads P pages and one more event. */
const MAX_PAGE = Math.floor(100_000 / PAGE_SIZE) - 1;

export async function auditPage(ctx: ProxyContext, caller: Caller, f: AuditFilters, pageNumber = 1): Promise<Html> {
  const p = Math.min(Math.max(1, Math.floor(pageNumber) || 1), MAX_PAGE);
  const found = (await searchAudit(ctx, caller, { ...f, limit: String(PAGE_SIZE * p + 1) })).reverse();
  const rows = found.slice(PAGE_SIZE * (p - 1), PAGE_SIZE * p);
  const older = found.length > PAGE_SIZE * p && p < MAX_PAGE;
  const exportQuery = new URLSearchParams(f as Record<string, string>).toString();
  const now = ctx.clock.now();
  const reach = await auditReach(ctx, caller);
  return html`<h1>Audit log</h1>
    <p class="muted">Every event, newest first. <a href="/web/audit/commands">By command</a></p>
    <p class="muted reach">${reachLine(reach.oldest, reach.retention)}</p>
    <form method="get" action="/web/audit" class="card">
      <div class="row">
        ${AUDIT_FILTERS.map((k) =>
          k === "decision"
            ? html`<label>${LABELS[k]}<select name="decision"><option value="">any</option>${["unrestricted", "allow", "deny", "would_deny"].map((d) => html`<option ${f.decision === d ? "selected" : ""}>${d}</option>`)}</select></label>`
            : html`<label>${LABELS[k]}<input name="${k}" value="${f[k] ?? ""}"></label>`,
        )}
      </div>
      <p><button type="submit">Search</button> <a class="button secondary" href="/web/audit">Clear</a>
        Export these: <a href="/web/audit/export?format=jsonl&${exportQuery}">JSON lines</a> · <a href="/web/audit/export?format=csv&${exportQuery}">CSV</a></p>
    </form>
    ${rows.length === 0 ? html`<p class="muted">No events match.</p>` : ""}
    <div class="grid-wrap">
    <table class="grid audit">
      <thead><tr><th class="time">Time</th><th class="event">Event</th><th class="user">User</th><th class="wide identity">Identity</th><th class="wide">Request</th><th class="wide status">Status</th><th class="wide">Operation</th><th class="wide decision">Decision</th><th class="more"><span class="sr">Details</span></th></tr></thead>
      <tbody>${rows.map((e) => row(e, now))}</tbody>
    </table>
    </div>
    <p>${p > 1 ? html`<a class="button secondary" href="${link(f)}&page=${p - 1}">Newer</a> ` : ""}${older ? html`<a class="button secondary" href="${link(f)}&page=${p + 1}">Older</a>` : ""}</p>`;
}

/**
 * One event, one row, one line a cell (cut with an ellipsis, the whole value
 * on hover); its whole record and the links to what belongs with it open
 * from the last cell, over the rows below, without breaking the table.
 */
function row(e: AuditEvent, now: number): Html {
  const s = (k: string) => (typeof e[k] === "string" ? (e[k] as string) : "");
  const policy = e.policy as { decision?: string; role?: string } | undefined;
  const decision = `${policy?.decision ?? ""}${policy?.role ? ` (${policy.role})` : ""}`;
  const links = [
    s("request_id") ? html`<a href="${link({}, { request_id: s("request_id") })}">this request</a>` : "",
    s("session_id") ? html`<a href="${link({}, { session: s("session_id") })}">this session</a>` : "",
    s("access_request_id") ? html`<a href="/web/requests/${s("access_request_id")}">access request</a> · <a href="${link({}, { request: s("access_request_id") })}">all done with it</a>` : "",
    s("azure_request_id") ? html`Azure request ID <code>${s("azure_request_id")}</code>` : "",
  ].filter((l) => l !== "");
  return html`<tr>
    ${timeCell(e.time, now)}
    ${cell(e.event)}
    ${cell(e.user ?? "")}
    <td class="wide" title="${s("azure_identity")}">${s("azure_identity") ? identityName(s("azure_identity")) : ""}</td>
    <td class="wide" title="${`${s("method")} ${s("host")}${s("path")}`.trim()}">${`${s("method")} ${s("path") || s("host")}`.trim()}</td>
    ${cell(String(e.status ?? ""), "wide")}
    ${cell(s("action"), "wide")}
    ${cell(decision, "wide")}
    <td class="more"><details><summary title="The whole event, and what belongs with it">More</summary><div class="pop">${links.length ? html`<p>${links.map((l, i) => html`${i ? " · " : ""}${l}`)}</p>` : ""}<pre>${JSON.stringify(e, null, 2)}</pre></div></details></td>
  </tr>`;
}

/** The filtered events, oldest first, as JSON lines or CSV (csvCell: every cell quoted, no formula anywhere a spreadsheet splits). */
export async function auditExport(ctx: ProxyContext, caller: Caller, f: AuditFilters, format: string): Promise<{ body: string; type: string; ext: string }> {
  const events = await searchAudit(ctx, caller, { ...f, limit: "100000" });
  if (format === "csv") {
    return { body: CSV_HEADER + events.map(csvRow).join(""), type: "text/csv; charset=utf-8", ext: "csv" };
  }
  return { body: events.map((e) => JSON.stringify(e)).join("\n") + (events.length ? "\n" : ""), type: "application/x-ndjson; charset=utf-8", ext: "jsonl" };
}
