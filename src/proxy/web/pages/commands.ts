/**
 * The audit log by command (`admin audit commands` on the web): one row per
 * az command or `azgate exec` run, newest first, each linked to its requests
 * on the audit page (its session and command ID). The same filters and code
 * as the CLI (proxy/audit-commands.ts); permission as the audit page.
 */
import { html } from "hono/html";
import { COMMAND_RESULTS, type CommandRow } from "../../../audit/commands.ts";
import { identityName } from "../../../azure/resource-id.ts";
import { auditCommands, COMMAND_FILTERS, type CommandFilters } from "../../audit-commands.ts";
import type { Caller } from "../../caller.ts";
import type { ProxyContext } from "../../context.ts";
import { cell, timeCell, type Html } from "../layout.ts";

const SHOWN = COMMAND_FILTERS.filter((k) => k !== "limit");
const LABELS: Record<(typeof SHOWN)[number], string> = {
  since: "Since (time or 1h)",
  until: "Before",
  user: "User",
  identity: "Azure identity",
  app: "App",
  session: "Session ID",
  status: "Result",
};

export function commandFiltersFrom(query: Record<string, string>): CommandFilters {
  const f: CommandFilters = {};
  for (const k of SHOWN) if (query[k]) f[k] = query[k];
  return f;
}

export async function commandsPage(ctx: ProxyContext, caller: Caller, f: CommandFilters): Promise<Html> {
  const rows = await auditCommands(ctx, caller, { ...f, limit: "200" });
  const now = ctx.clock.now();
  return html`<h1>Commands</h1>
    <p class="muted">One row per az command or <code>azgate exec</code> run; the command and its parameter names are what the client said it ran. <a href="/web/audit">Every event</a></p>
    <form method="get" action="/web/audit/commands" class="card">
      <div class="row">
        ${SHOWN.map((k) =>
          k === "status"
            ? html`<label>${LABELS[k]}<select name="status"><option value="">any</option>${COMMAND_RESULTS.map((r) => html`<option ${f.status === r ? "selected" : ""}>${r}</option>`)}</select></label>`
            : html`<label>${LABELS[k]}<input name="${k}" value="${f[k] ?? ""}"></label>`,
        )}
      </div>
      <p><button type="submit">Search</button> <a class="button secondary" href="/web/audit/commands">Clear</a></p>
    </form>
    ${rows.length === 0 ? html`<p class="muted">No commands match.</p>` : ""}
    <div class="grid-wrap">
    <table class="grid audit commands">
      <thead><tr><th class="time">Time</th><th class="user">User</th><th class="wide identity">Identity</th><th>Command</th><th class="wide">Parameters</th><th>Requests</th><th class="wide">Operations</th><th>Result</th><th class="wide">Duration</th></tr></thead>
      <tbody>${rows.map((r) => row(r, now))}</tbody>
    </table>
    </div>`;
}

function row(r: CommandRow, now: number): Html {
  const requests = `/web/audit?${new URLSearchParams({ session: r.session_id, command: r.id })}`;
  const what = r.command ?? `${r.first_request.method} ${r.first_request.host}${r.first_request.path}`;
  return html`<tr class="result-${r.result}">
    ${timeCell(r.time, now)}
    ${cell(r.user)}
    <td class="wide" title="${r.azure_identity}">${identityName(r.azure_identity)}</td>
    <td title="${what}"><a href="${requests}">${what}</a></td>
    ${cell(r.parameters ?? "", "wide")}
    ${cell(String(r.requests))}
    ${cell(r.actions.join(", "), "wide")}
    ${cell(r.result)}
    ${cell(`${r.duration_ms} ms`, "wide")}
  </tr>`;
}
