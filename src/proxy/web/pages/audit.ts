/**
 * The audit log, searched on the server: the filters of `admin audit ls`
 * (the same names, the same code: proxy/admin.ts auditQuery, run in SQL on
 * PostgreSQL), newest first, a page at a time; one request's or one
 * session's record a click away; the filtered set as JSON lines or CSV.
 * Permission as `admin audit ls`: the rule to list events (the auditor role).
 */
import { html } from "hono/html";
import type { AuditEvent } from "../../../audit/sink.ts";
import { identityName } from "../../../azure/resource-id.ts";
import { AUDIT_FILTERS, searchAudit, type AuditFilters } from "../../admin.ts";
import type { Caller } from "../../caller.ts";
import type { ProxyContext } from "../../context.ts";
import type { Html } from "../layout.ts";

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
  return html`<h1>Audit log</h1>
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
    <table class="audit">
      <thead><tr><th>Time</th><th>Event</th><th>User</th><th>Identity</th><th>Request</th><th>Status</th><th>Operation</th><th>Decision</th></tr></thead>
      <tbody>${rows.map((e) => row(e, f))}</tbody>
    </table>
    <p>${p > 1 ? html`<a class="button secondary" href="${link(f)}&page=${p - 1}">Newer</a> ` : ""}${older ? html`<a class="button secondary" href="${link(f)}&page=${p + 1}">Older</a>` : ""}</p>`;
}

function row(e: AuditEvent, f: AuditFilters): Html {
  const s = (k: string) => (typeof e[k] === "string" ? (e[k] as string) : "");
  const policy = e.policy as { decision?: string; role?: string } | undefined;
  return html`<tr>
    <td>${e.time.replace("T", " ").slice(0, 23)}</td>
    <td>${e.event}</td>
    <td>${e.user ?? ""}</td>
    <td>${s("azure_identity") ? html`<span title="${s("azure_identity")}">${identityName(s("azure_identity"))}</span>` : ""}</td>
    <td>${s("method")} ${s("host")}${s("path")}</td>
    <td>${e.status ?? ""}</td>
    <td>${s("action")}</td>
    <td>${policy?.decision ?? ""}${policy?.role ? html` <span class="muted">(${policy.role})</span>` : ""}</td>
  </tr>
  <tr class="detail"><td colspan="8"><details><summary>Details${s("request_id") ? html` · <a href="${link({}, { request_id: s("request_id") })}">this request</a>` : ""}${s("session_id") ? html` · <a href="${link({}, { session: s("session_id") })}">this session</a>` : ""}${s("access_request_id") ? html` · <a href="/web/requests/${s("access_request_id")}">access request</a> · <a href="${link({}, { request: s("access_request_id") })}">all done with it</a>` : ""}${s("azure_request_id") ? html` · Azure request ID <code>${s("azure_request_id")}</code>` : ""}</summary><pre>${JSON.stringify(e, null, 2)}</pre></details></td></tr>`;
}

const CSV_COLUMNS = ["time", "event", "code", "user", "app", "azure_identity", "session_id", "request_id", "method", "host", "path", "status", "action", "scope", "decision", "access_request_id", "azure_request_id", "success", "reason"];

/**
 * One CSV cell for a spreadsheet: always quoted, and no piece of it that a
 * spreadsheet may split off starts a formula. Quoting keeps a cell whole for
 * a reader that honours quotes; a reader told to split on ; or tab (or a
 * user's "text to columns") may still cut `a;=2+3` in two, so wherever a
 * piece may begin (the cell's start, or after , ; tab | or a line break),
 * blanks (space, tab, CR, LF) are skipped and a formula starter (= + - @)
 * gets a ' right before it: shown as text however the cell is split or
 * trimmed (a ' put before the blanks, as this did, left `a;\t=1` a formula
 * once split on the tab). The JSON lines export keeps every value exact.
 */
export function csvCell(v: unknown): string {
  const t = v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
  const inert = t.replace(/(^|[,;\t\r\n|])([ \t\r\n]*)(?=[=+\-@])/g, "$1$2'");
  return `"${inert.replace(/"/g, '""')}"`;
}

/** The filtered events, oldest first, as JSON lines or CSV (csvCell: every cell quoted, no formula anywhere a spreadsheet splits). */
export async function auditExport(ctx: ProxyContext, caller: Caller, f: AuditFilters, format: string): Promise<{ body: string; type: string; ext: string }> {
  const events = await searchAudit(ctx, caller, { ...f, limit: "100000" });
  if (format === "csv") {
    const lines = events.map((e) => CSV_COLUMNS.map((c) => csvCell(c === "decision" ? (e.policy as { decision?: string } | undefined)?.decision : e[c])).join(","));
    return { body: [CSV_COLUMNS.join(","), ...lines].join("\r\n") + "\r\n", type: "text/csv; charset=utf-8", ext: "csv" };
  }
  return { body: events.map((e) => JSON.stringify(e)).join("\n") + (events.length ? "\n" : ""), type: "application/x-ndjson; charset=utf-8", ext: "jsonl" };
}
