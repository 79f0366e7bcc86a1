
export type Format = "text" | "json" | "yaml";

/** A plain table: header row, dashes, rows, columns padded to fit. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join(" ").trimEnd();
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** Key-value lines ("Cluster:  demo"), aligned. */
export function fields(pairs: [string, string][]): string {
  const w = Math.max(...pairs.map(([k]) => k.length)) + 1;
  return pairs.map(([k, v]) => `${(k + ":").padEnd(w)} ${v}`).join("\n");
}

/** JSON or YAML text. Async because the YAML library is loaded only when asked for (CLI start-up time). */
export async function structured(value: unknown, format: "json" | "yaml"): Promise<string> {
  return format === "json" ? JSON.stringify(value, null, 2) : (await import("yaml")).stringify(value).trimEnd();
}

export function print(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : text + "\n");
}
