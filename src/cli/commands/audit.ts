/**
 * `azgate admin audit`: the audit log as events (`ls`), as commands
 * (`commands`: one row per az command or `azgate exec` run, with its
 * requests folded in), and joined to Azure's Activity Log (`correlate`:
 * which azgate user and command made each entry, or that none did).
 */
import type { Argv } from "yargs";
import { closeSync, openSync, readFileSync, statSync, writeSync } from "node:fs";
import { CSV_HEADER, csvRow } from "../../audit/csv.ts";
import type { AuditExportPage } from "../../api/types.ts";
import { AzgateError } from "../../errors/index.ts";
import { parseDuration } from "../../util/duration.ts";
import { systemClock } from "../../util/clock.ts";
import type { AuditEvent } from "../../audit/sink.ts";
import type { CommandRow } from "../../audit/commands.ts";
import { activityEntrySchema, correlate, CLOCK_SKEW_MS, FINISH_MS, MAX_ACTIVITY_ENTRIES, type ActivityEntry, type Attribution } from "../../audit/correlate.ts";
import { withAdmin, type AdminArgs } from "../connect.ts";
import { reachLine } from "../../proxy/admin.ts";
import { formatOption, print, printErr, structured, table, type Format } from "../output.ts";

/** `admin audit ls` flags: the web UI's audit filters, by the same names (proxy/admin.ts AUDIT_FILTERS). */
const AUDIT_FLAGS: [string, string][] = [
  ["since", "Only events since a time (2026-11-24T10:00:00Z) or for a duration back from now (1h)"],
  ["until", "Only events before a time, or a duration back from now"],
  ["user", "Only events about this user"],
  ["event", "Only this event type and its sub-types (app.request)"],
  ["request", "Only events of this access request: its steps and every request made under its grant"],
  ["app", "Only this app"],
  ["identity", "Only this Azure identity (resource ID, any case)"],
  ["method", "Only this HTTP method"],
  ["status", "Only this HTTP status (403) or class (4xx)"],
  ["action", "Only this Azure operation; * for any run of characters (Microsoft.Compute/*)"],
  ["resource", "Only operations on this resource ID or below it"],
  ["decision", "Only this policy decision: unrestricted, allow, deny, would_deny"],
  ["session", "Only this session (every request of one app session)"],
  ["request-id", "Only this request through azgate (x-azgate-request-id): its start and end"],
  ["command", "Only the requests of one command (its ID, as admin audit commands shows it)"],
  ["bot", "Only this bot's events (its name, as admin bots ls shows it)"],
  ["ci", "Only bots' events with this CI fact: KEY=VALUE (repository=acme/infra, sha=..., run_id=...), or a value of any fact"],
];

/** `admin audit commands` flags (proxy/audit-commands.ts COMMAND_FILTERS). */
const COMMAND_FLAGS: [string, string][] = [
  ["since", "Only commands since a time (2026-11-24T10:00:00Z) or for a duration back from now (1h)"],
  ["until", "Only commands before a time, or a duration back from now"],
  ["user", "Only this user's (or bot's) commands"],
  ["identity", "Only commands run as this Azure identity (resource ID, any case)"],
  ["app", "Only this app"],
  ["session", "Only this session"],
  ["status", "Only commands with this result: allowed, denied (azgate refused a request), failed (Azure refused one), in_flight"],
];

export function auditCommands(t: Argv<AdminArgs>) {
  return t
    .command<AdminArgs & Record<string, string | undefined> & { limit?: number; format: Format }>(
    "ls",
    "List audit events, oldest first",
    (b) => formatOption(AUDIT_FLAGS.reduce((a, [name, describe]) => a.option(name, { type: "string", describe }), b as Argv).option("limit", { type: "number", describe: "The newest N events (default 1000)" })),
    withAdmin(async ({ client }, argv) => {
      const q = new URLSearchParams();
      for (const [name] of AUDIT_FLAGS) if (argv[name]) q.set(name.replace("-", "_"), String(argv[name]));
      if (argv.limit !== undefined) q.set("limit", String(argv.limit));
      const { items, oldest, retention } = await client.call<{ items: AuditEvent[]; oldest?: string | null; retention?: string | null }>("GET", `/v1/admin/audit?${q}`);
      if (argv.format !== "text") return print(await structured(items, argv.format));
      print(table(["Time", "Event", "User", "Details"], items.map((e) => [e.time, e.event, e.user ?? "", auditSummary(e)])));
      // How far back the log reaches: a search cannot find what retention deleted (an older proxy sends neither).
      if (oldest !== undefined) print(`\n${reachLine(oldest, retention ?? null)}`);
    }),
  )
    .command<AdminArgs & Record<string, string | undefined> & { format: "jsonl" | "csv"; output?: string }>(
      "export",
      "Write the whole audit log, or the events since a time, oldest first, as JSON lines or CSV (to a SIEM or a spreadsheet)",
      (b) =>
        AUDIT_FLAGS.reduce((a, [name, describe]) => a.option(name, { type: "string", describe }), b as Argv)
          .option("format", { choices: ["jsonl", "csv"] as const, default: "jsonl" as const, describe: "jsonl: each event whole, one per line; csv: the usual columns, every cell quoted, no formula" })
          .option("output", { alias: "o", type: "string", describe: "Write to this file (created, or replaced) instead of standard output" }),
      withAdmin(async ({ client }, argv) => {
        const q = new URLSearchParams();
        for (const [name] of AUDIT_FLAGS) if (argv[name]) q.set(name.replace("-", "_"), String(argv[name]));
        // A window given as a duration ("1h") is fixed once, here: each page would otherwise count back from its own now.
        for (const name of ["since", "until"]) {
          const v = q.get(name);
          if (v && !/^\d{4}-\d\d-\d\d/.test(v)) q.set(name, new Date(systemClock.now() - parseDuration(v, name)).toISOString());
        }
        // The log as it is when the export starts: events written meanwhile are the next export's (a busy log would never end).
        if (!q.get("until")) q.set("until", systemClock.date().toISOString());
        const out = argv.output ? openSync(argv.output, "w", 0o600) : 1;
        // On a terminal, control characters are shown escaped (print); a file or a pipe gets the bytes.
        const write = (text: string) => (out === 1 && process.stdout.isTTY ? print(text) : writeSync(out, text));
        let n = 0;
        try {
          if (argv.format === "csv") write(CSV_HEADER);
          let heldSince: number | null = null;
          for (;;) {
            const before = q.get("after");
            const page = await client.call<AuditExportPage>("GET", `/v1/admin/audit/export${q.size ? `?${q}` : ""}`);
            if (page.items.length) write(page.items.map((e) => (argv.format === "csv" ? csvRow(e) : `${JSON.stringify(e)}\n`)).join(""));
            n += page.items.length;
            if (page.done) break;
            if (page.cursor) q.set("after", page.cursor);
            // Later events wait for a database transaction still open: wait a while for it, then say so rather than end short.
            // The wait is timed from the first page that read nothing new; a page that read on (its cursor moved) is progress.
            if (page.held && (page.cursor ?? null) === before) {
              // (A wait on I/O, on the runtime's timer: util/clock.ts says why not the Clock.)
              heldSince ??= performance.now();
              if (performance.now() - heldSince > HELD_WAIT_MS) throw new AzgateError("audit_unavailable", `the export stopped after ${n} event(s): later events wait for a transaction open in the database for over ${HELD_WAIT_MS / 1000} s; run it again once that transaction ends (admin audit export --since the last time written)`);
              await new Promise((r) => setTimeout(r, 1000));
            } else heldSince = null;
          }
        } finally {
          if (out !== 1) closeSync(out);
        }
        if (argv.output) printErr(`${n} event(s) written to ${argv.output}`);
      }),
    )
    .command<AdminArgs & Record<string, string | undefined> & { limit?: number; format: Format }>(
      "commands",
      "List commands (one row per az command or azgate exec run), newest first",
      (b) => formatOption(COMMAND_FLAGS.reduce((a, [name, describe]) => a.option(name, { type: "string", describe }), b as Argv).option("limit", { type: "number", describe: "The newest N commands (default 100)" })),
      withAdmin(async ({ client }, argv) => {
        const q = new URLSearchParams();
        for (const [name] of COMMAND_FLAGS) if (argv[name]) q.set(name, String(argv[name]));
        if (argv.limit !== undefined) q.set("limit", String(argv.limit));
        const { items } = await client.call<{ items: CommandRow[] }>("GET", `/v1/admin/audit/commands?${q}`);
        print(argv.format === "text" ? commandTable(items) : await structured(items, argv.format));
      }),
    )
    .command<AdminArgs & { "activity-log": string; format: Format }>(
      "correlate",
      "Name the azgate user and command behind each entry of an Azure Activity Log export, or say that none made it",
      (b) => formatOption(b.option("activity-log", { type: "string", demandOption: true, describe: "The export: a file, or - for stdin (JSON, as az monitor activity-log list -o json prints it)" })),
      withAdmin(async ({ client }, argv) => {
        const entries = readActivityLog(readExport(argv["activity-log"]));
        if (entries.length === 0) return print("The Activity Log export holds no entries.");
        // The commands that ran while these entries were written (with the slack correlate() allows).
        const times = entries.map((e) => Date.parse(e.eventTimestamp));
        const q = new URLSearchParams({ since: new Date(Math.min(...times) - FINISH_MS).toISOString(), until: new Date(Math.max(...times) + CLOCK_SKEW_MS + 1).toISOString(), limit: "10000" });
        const { items } = await client.call<{ items: CommandRow[] }>("GET", `/v1/admin/audit/commands?${q}`);
        const found = correlate(entries, items);
        print(argv.format === "text" ? attributionTable(found) : await structured(found, argv.format));
      }),
    );
}

/** How long admin audit export waits for a database transaction that holds later events back. */
const HELD_WAIT_MS = 30_000;

/** The largest export read (about 10,000 entries as az prints them). */
const MAX_EXPORT_BYTES = 64 * 1024 * 1024;

/** The export's text, from a file or stdin ("-"); larger than MAX_EXPORT_BYTES is refused before it is read whole. */
function readExport(file: string): string {
  try {
    if (file !== "-" && statSync(file).size > MAX_EXPORT_BYTES) throw new AzgateError("bad_parameter", `${file} is larger than ${MAX_EXPORT_BYTES / 1024 / 1024} MB; export a shorter time range`);
    return readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (e) {
    if (e instanceof AzgateError) throw e;
    throw new AzgateError("bad_parameter", `--activity-log ${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
}

/** An export as az prints it (an array), or as ARM answers it ({ value: [...] }); each entry checked, the bad one named. */
export function readActivityLog(text: string): ActivityEntry[] {
  if (text.length > MAX_EXPORT_BYTES) throw new AzgateError("bad_parameter", `the Activity Log export is larger than ${MAX_EXPORT_BYTES / 1024 / 1024} MB; export a shorter time range`);
  let json: unknown;
  try {
    json = JSON.parse(text.replace(/^\uFEFF/, ""));
  } catch (e) {
    throw new AzgateError("bad_parameter", `the Activity Log export is not JSON: ${(e as Error).message}`);
  }
  const list = Array.isArray(json) ? json : (json as { value?: unknown })?.value;
  if (!Array.isArray(list)) throw new AzgateError("bad_parameter", "the Activity Log export must be a JSON array of entries (az monitor activity-log list -o json) or { \"value\": [...] }");
  if (list.length > MAX_ACTIVITY_ENTRIES) throw new AzgateError("bad_parameter", `the Activity Log export holds ${list.length} entries, more than ${MAX_ACTIVITY_ENTRIES}; export a shorter time range`);
  return list.map((item, i) => {
    const parsed = activityEntrySchema.safeParse(item);
    if (!parsed.success || Number.isNaN(Date.parse(parsed.data.eventTimestamp))) {
      throw new AzgateError("bad_parameter", `Activity Log entry ${i + 1} is not an entry: ${parsed.success ? "eventTimestamp is not a time" : parsed.error.issues.map((x) => `${x.path.join(".")}: ${x.message}`).join("; ")}`);
    }
    return parsed.data;
  });
}

const shortName = (id: string) => id.split("/").pop() ?? id;

function commandTable(rows: CommandRow[]): string {
  return table(
    ["Time", "User", "Identity", "Command", "Parameters", "Requests", "Actions", "Result", "Duration", "ID"],
    rows.map((r) => [
      r.time,
      r.user,
      shortName(r.azure_identity),
      r.command ?? `${r.first_request.method} ${r.first_request.host}${r.first_request.path}`,
      r.parameters ?? "",
      String(r.requests),
      r.actions.join(", "),
      r.result,
      `${r.duration_ms} ms`,
      r.id,
    ]),
  );
}

function throughAzgate(r: Attribution): string {
  if (!r.through_azgate) return r.not_explained_because ? `NO: ${r.not_explained_because}` : "NO: not made through azgate";
  const notes = [r.same_operation ? "" : "part of its request", r.caller_checked ? "" : "caller not checked"].filter(Boolean);
  return notes.length ? `yes (${notes.join("; ")})` : "yes";
}

function attributionTable(rows: Attribution[]): string {
  const unexplained = rows.filter((r) => !r.through_azgate).length;
  const lines = table(
    ["Time", "Operation", "Resource", "Status", "Through azgate", "User", "Command"],
    rows.map((r) => [r.time, r.operation ?? "", r.resource_id ?? "", r.status ?? "", throughAzgate(r), r.user ?? "", r.command ?? (r.through_azgate ? "-" : "")]),
  );
  return `${lines}\n\n${rows.length - unexplained} of ${rows.length} entries made through azgate; ${unexplained} not${unexplained ? " (someone went around the gateway, or through another)" : ""}.`;
}

/** One readable line for the most telling fields of an event. */
/** A bot's request names its run: the repository (or project), the commit and the run. */
function botRun(e: AuditEvent): string {
  if (typeof e.bot !== "string") return "";
  const ci = (e.ci ?? {}) as Record<string, string>;
  const where = ci.repository ?? ci.project_path ?? ci.project ?? ci.namespace;
  return ` [bot ${e.bot}${where ? ` ${where}` : ""}${ci.sha ? `@${ci.sha.slice(0, 12)}` : ""}${ci.run_id ?? ci.pipeline_id ? ` run ${ci.run_id ?? ci.pipeline_id}` : ""}]`;
}

function auditSummary(e: AuditEvent): string {
  if (typeof e.method === "string") {
    const what = `${e.method} ${e.host ?? ""}${e.path ?? ""}${e.query ? `?${e.query}` : ""}`;
    const result = e.status !== undefined ? ` -> ${e.status}${e.duration_ms !== undefined ? ` in ${e.duration_ms} ms` : ""}` : "";
    return `${what}${result}${e.reason ? ` (${e.reason})` : ""}${botRun(e)}`;
  }
  const skip = new Set(["time", "event", "code", "user", "success"]);
  return Object.entries(e)
    .filter(([k, v]) => !skip.has(k) && v !== undefined && v !== null)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
}

