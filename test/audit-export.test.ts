/**
 * The web UI's audit export as CSV (issue 29, lower items): every cell is
 * quoted, and no piece of a cell that a spreadsheet may split off starts a
 * formula, whatever the caller put in a field the log records (a path, a
 * reason, a query). Read back by the CSV rules (RFC 4180) and by a reader
 * that splits on ; regardless of quotes, as a spreadsheet set to ; or a
 * "text to columns" does.
 */
import { audit } from "../src/audit/events.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openState, settingsFrom } from "../src/proxy/state.ts";
import { configSchema } from "../src/config/schema.ts";
import { resolveCaller, type Caller } from "../src/proxy/caller.ts";
import type { ProxyContext } from "../src/proxy/context.ts";
import { auditExport } from "../src/proxy/web/pages/audit.ts";
import { csvCell } from "../src/audit/csv.ts";
import { exportPage, PAGE } from "../src/proxy/audit-export/pages.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { tempDir } from "./helpers/azgate.ts";

const FORMULAS = ["=2+3", "+2+3", "-2+3", "@SUM(1)", "\t=1", "\r=1"];
const HOSTILE_PATH = `/reports/a;=2+3,=HYPERLINK("https://evil.example","x")|=1;  -3+3\ttab\n@line;\t=HYPERLINK("https://evil.example","tab")\r\n \t+1`;

let ctx: ProxyContext;
let close: () => Promise<void>;
let admin: Caller;
beforeAll(async () => {
  ({ ctx, close } = await openState(tempDir("azgate-csv-"), { clusterName: "t", settings: settingsFrom(configSchema.parse({})), purpose: "audit export tests", clock: new FakeClock() }));
  admin = await resolveCaller(ctx, { kind: "local-admin", name: "@local-admin", roles: [], traits: {}, azure_identities: [], login_method: "local", session_id: ctx.localAdminSession });
  await ctx.audit.emit(audit("APP_REQUEST", { user: "mallory", app: "azure-cli", azure_identity: "/x", method: "GET", host: "management.azure.com", path: HOSTILE_PATH, status: 200, success: true, reason: "=cmd|' /C calc'!A0", request_id: "r-1" }));
});
afterAll(() => close?.());

/** RFC 4180: quoted cells, "" for a quote, separators and line breaks inside quotes are data. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let i = 0;
  while (i < text.length) {
    expect(text[i], `cell at ${i} is quoted`).toBe('"');
    let cell = "";
    for (i++; ; i++) {
      if (text[i] === '"' && text[i + 1] === '"') (cell += '"'), i++;
      else if (text[i] === '"') break;
      else cell += text[i];
    }
    row.push(cell);
    i++;
    if (text[i] === ",") i++;
    else {
      expect(text.slice(i, i + 2)).toBe("\r\n");
      rows.push(row);
      row = [];
      i += 2;
    }
  }
  return rows;
}

describe("audit export as CSV", () => {
  it("quotes every cell; a formula starter anywhere a spreadsheet splits gets a ' before it", () => {
    // The ' goes right before the starter, after any blanks: however a reader splits or trims, the piece is text.
    const inert = (f: string) => f.replace(/[=+\-@]/, "'$&");
    for (const f of FORMULAS) {
      expect(csvCell(f)).toBe(`"${inert(f)}"`);
      expect(csvCell(`a;${f}`)).toBe(`"a;${inert(f)}"`);
      expect(csvCell(`a,${f}`)).toBe(`"a,${inert(f)}"`);
    }
    expect(csvCell("a;  =1")).toBe(`"a;  '=1"`);
    // The attack: a separator, then a tab, then a formula (split on the tab, the bare formula was its own piece).
    expect(csvCell("a;\t=1+1")).toBe(`"a;\t'=1+1"`);
    expect(csvCell("a;\r\n\t @x")).toBe(`"a;\r\n\t '@x"`);
    expect(csvCell("1-2=3")).toBe(`"1-2=3"`);
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell(200)).toBe('"200"');
    expect(csvCell(undefined)).toBe('""');
    expect(csvCell("Microsoft.Compute/virtualMachines/read")).toBe('"Microsoft.Compute/virtualMachines/read"');
  });

  it("an event whose path and reason the caller wrote: read by CSV rules or split on ; regardless of quotes, no piece starts a formula", async () => {
    const { body, type } = await auditExport(ctx, admin, { request_id: "r-1" }, "csv");
    expect(type).toBe("text/csv; charset=utf-8");
    const [header, ...rows] = body.split("\r\n").filter(Boolean);
    expect(header).toMatch(/^time,event,code,user/);
    const cells = parseCsv(rows.join("\r\n") + "\r\n")[0];
    const columns = header.split(",");
    expect(cells[columns.indexOf("path")].replace(/'(?=[=+\-@])/g, "")).toBe(HOSTILE_PATH);
    // A reader that splits every line on ; , tab or | and ignores quotes: no piece is a formula.
    const pieces = rows.join("\n").split(/[;,\t|\r\n]/).map((p) => p.replace(/^"+/, "").trimStart());
    expect(pieces.filter((p) => /^[=+\-@]/.test(p))).toEqual([]);
  });
});

describe("admin audit export's pages (GET /v1/admin/audit/export)", () => {
  it("pages through the whole log by cursor with ls's filters; a caller without list on event is refused", async () => {
    for (let i = 0; i < PAGE + 5; i++) await ctx.audit.emit(audit("USER_LOGIN", { user: i % 2 ? "odd" : "even", method: "local", session_id: `s-${i}`, success: true }));
    const pages: number[] = [];
    const users: string[] = [];
    for (let after: string | undefined; ; ) {
      const page = await exportPage(ctx, admin, { user: "odd", ...(after ? { after } : {}) });
      pages.push(page.items.length);
      users.push(...page.items.map((e) => String(e.user)));
      if (page.done) break;
      after = page.cursor!;
    }
    expect(pages.length).toBe(2);
    expect(users).toHaveLength(Math.floor((PAGE + 5) / 2));
    expect(new Set(users)).toEqual(new Set(["odd"]));
    await expect(exportPage(ctx, admin, { after: "file:1:2:nonsense" })).rejects.toMatchObject({ code: "bad_parameter" });
    await expect(exportPage(ctx, admin, { since: "yesterday" })).rejects.toMatchObject({ code: "bad_parameter" });
    // A signed-in caller whose roles grant nothing (the API audits the refusal: proxy/api.ts auditRefusal).
    const nobody: Caller = { ...admin, name: "nobody", roles: [] };
    await expect(exportPage(ctx, nobody, {})).rejects.toMatchObject({ code: "access_denied" });
  });
});
