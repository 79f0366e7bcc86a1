/**
 * Audit events as CSV (RFC 4180), for a spreadsheet: the web UI's export
 * and `admin audit export --format csv`. JSON lines keep every value exact;
 * CSV keeps the columns below.
 */
import type { AuditEvent } from "./sink.ts";

export const CSV_COLUMNS = ["time", "event", "code", "user", "app", "azure_identity", "session_id", "request_id", "method", "host", "path", "status", "action", "scope", "decision", "access_request_id", "azure_request_id", "success", "reason"];

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

/** The header line (CRLF-ended, as every row). */
export const CSV_HEADER = CSV_COLUMNS.join(",") + "\r\n";

/** One event as a CSV row: its CSV_COLUMNS, the policy's decision from its `policy`. */
export function csvRow(e: AuditEvent): string {
  return CSV_COLUMNS.map((c) => csvCell(c === "decision" ? (e.policy as { decision?: string } | undefined)?.decision : e[c])).join(",") + "\r\n";
}
