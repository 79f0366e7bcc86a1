import type { Argv } from "yargs";
/**
 * Everything the CLI prints passes through here. Text that came from
 * elsewhere (user names, audit events, error messages from the proxy or an
 * identity provider) may hold terminal control sequences: an escape that sets
 * the window title, writes the clipboard (OSC 52) or clears the screen, or a
 * forged newline in a table. They are shown as visible escapes instead.
 */
export type Format = "text" | "json" | "yaml";

/** C0 controls but newline and tab, DEL, C1 controls, and the bidirectional overrides (text that reads backwards). */
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;
/** Inside one table cell or field value, newlines and tabs are forged layout too. */
const CONTROL_IN_CELL = /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;

const visible = (ch: string) => (ch === "\n" ? "\\n" : ch === "\t" ? "\\t" : ch === "\r" ? "\\r" : `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`);

/** Text safe for a terminal: the line structure kept, every other control character made visible (valid in JSON strings too). */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, visible);
}

/** One cell or value: no control character at all survives, newlines included. */
export function escapeCell(text: string): string {
  return text.replace(CONTROL_IN_CELL, visible);
}

/** A plain table: header row, dashes, rows, columns padded to fit. */
export function table(headers: string[], rawRows: string[][]): string {
  const rows = rawRows.map((r) => r.map((cell) => escapeCell(String(cell ?? ""))));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join(" ").trimEnd();
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** Key-value lines ("Cluster:  demo"), aligned. */
export function fields(pairs: [string, string][]): string {
  const w = Math.max(...pairs.map(([k]) => k.length)) + 1;
  return pairs.map(([k, v]) => `${(k + ":").padEnd(w)} ${escapeCell(String(v))}`).join("\n");
}

/** JSON or YAML text. Async because the YAML library is loaded only when asked for (CLI start-up time). */
/** The --format option of commands that print a table or a document. */
export const formatOption = <T>(a: Argv<T>) => a.option("format", { choices: ["text", "json", "yaml"] as const, default: "text" as const, describe: "Output format" });

export async function structured(value: unknown, format: "json" | "yaml"): Promise<string> {
  return format === "json" ? JSON.stringify(value, null, 2) : (await import("yaml")).stringify(value).trimEnd();
}

export function print(text: string): void {
  const safe = escapeControl(text);
  process.stdout.write(safe.endsWith("\n") ? safe : safe + "\n");
}

/** A line for stderr (errors, warnings, prompts' context), escaped like print. */
export function printErr(text: string): void {
  const safe = escapeControl(text);
  process.stderr.write(safe.endsWith("\n") ? safe : safe + "\n");
}
