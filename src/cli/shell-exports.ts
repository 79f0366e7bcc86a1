/**
 * What `azgate proxy azure` prints for a user to paste into a shell: each
 * variable set in that shell's syntax, the value quoted so the shell reads it
 * back exactly and runs nothing. The values come partly from elsewhere (the
 * tenant an agent announced, paths under the user's home), so quoting must
 * hold for any text; what a shell cannot take literally is refused.
 *
 * - unix (sh, bash, zsh; fish reads it too): bare when only safe characters,
 *   else single-quoted runs, with ' and \ written outside the quotes as \'
 *   and \\ (fish reads \' and \\ as escapes even inside single quotes; sh
 *   and fish read them alike outside).
 * - powershell: a single-quoted (verbatim) string: nothing inside expands;
 *   a quote is written twice, and PowerShell takes the typographic single
 *   quotes (U+2018 to U+201B) for quotes too, so those are doubled as well
 *   (about_Quoting_Rules; the tokenizer's IsSingleQuote).
 * - command-prompt: `set NAME=VALUE` with < > | & ^ ( ) escaped by ^ (the
 *   set command's documentation). cmd expands %NAME% on the command line
 *   and !NAME! with delayed expansion, and " turns ^ off: no escape holds
 *   for those, so a value with %, !, " or a line break is refused.
 * - text: NAME=VALUE lines, for reading; a line break is refused.
 *
 * Control characters other than line breaks and tabs are refused in every
 * format: the CLI prints them as visible escapes, so the value pasted back
 * would not be the value.
 */
import { AzgateError } from "../errors/index.ts";

export type Shell = "unix" | "powershell" | "command-prompt" | "text";

/** What the CLI's printing would alter (cli/output.ts escapeControl): such a value cannot be pasted back as it is. */
const ALTERED_IN_PRINT = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

/** A POSIX-shell (and fish) word that reads back as `v`. */
export function unixQuote(v: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(v)) return v;
  if (v === "") return "''";
  return v
    .split(/(['\\])/)
    .filter((part) => part !== "")
    .map((part) => (part === "'" ? "\\'" : part === "\\" ? "\\\\" : `'${part}'`))
    .join("");
}

/** A PowerShell verbatim string that reads back as `v`. */
export function powershellQuote(v: string): string {
  return `'${v.replace(/['\u2018\u2019\u201a\u201b]/g, "$&$&")}'`;
}

/** The text after `set NAME=` that cmd reads back as `v`; throws for what cmd cannot take literally. */
export function commandPromptValue(name: string, v: string): string {
  const bad = /[%!"\r\n]/.exec(v);
  if (bad) throw new AzgateError("bad_parameter", `${name} holds ${JSON.stringify(bad[0])}, which the command prompt expands or cannot quote; use --format powershell`);
  return v.replace(/[<>|&^()]/g, "^$&");
}

export function exportLines(env: Record<string, string>, format: Shell): string {
  return Object.entries(env)
    .map(([k, v]) => {
      if (ALTERED_IN_PRINT.test(v)) throw new AzgateError("bad_parameter", `${k} holds a control character; it cannot be printed for a shell as it is`);
      if (format === "unix") return `export ${k}=${unixQuote(v)}`;
      if (format === "powershell") return `$Env:${k}=${powershellQuote(v)}`;
      if (format === "command-prompt") return `set ${k}=${commandPromptValue(k, v)}`;
      if (/[\r\n]/.test(v)) throw new AzgateError("bad_parameter", `${k} holds a line break; use --format unix or powershell`);
      return `${k}=${v}`;
    })
    .join("\n");
}

/** The line that removes the user's own Azure credentials from a shell (exec-env.ts SCRUBBED), in its syntax. */
export function unsetLine(names: readonly string[], format: Shell): string | null {
  return format === "unix" ? `unset ${names.join(" ")}`
    : format === "powershell" ? names.map((n) => `Remove-Item Env:${n} -ErrorAction SilentlyContinue`).join("\n")
    : format === "command-prompt" ? names.map((n) => `set ${n}=`).join("\n")
    : null;
}
