/**
 * The reference pages generated from the registries are the registries'
 * (`npm run docs` writes them): error codes, configuration keys, the CLI.
 * docs/audit-events.md has its own test (test/audit-events.test.ts).
 */
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import path from "node:path";
import { errorCodesMarkdown } from "../src/errors/reference.ts";
import { configurationMarkdown } from "../src/config/reference.ts";
import { cliReferenceMarkdown, subcommands } from "../src/cli/reference.ts";
import { ERROR_STATUS } from "../src/errors/index.ts";
import { ENV_FIELDS } from "../src/config/load.ts";

const page = (name: string) => readFileSync(path.resolve(import.meta.dirname, "../docs/reference", name), "utf8");

describe("the generated reference pages", () => {
  it("docs/reference/errors.md is the error registry's table, every code with its status and meaning", () => {
    const md = errorCodesMarkdown();
    for (const [code, status] of Object.entries(ERROR_STATUS)) expect(md).toMatch(new RegExp(`^\\| \`${code}\` \\| ${status} \\| .{10,} \\|$`, "m"));
    expect(page("errors.md")).toBe(md);
  });

  it("docs/reference/configuration.md is the configuration schema's table, every environment variable on its key", () => {
    const md = configurationMarkdown();
    for (const [name, keys] of Object.entries(ENV_FIELDS)) expect(md).toMatch(new RegExp(`^\\| \`${keys.join("\\.")}\` \\|.*\\| \`${name}\` \\|`, "m"));
    // Every key is described: no row ends in an empty cell.
    expect(md.split("\n").filter((l) => l.startsWith("| `") && / \|\s*\|$/.test(l))).toEqual([]);
    expect(page("configuration.md")).toBe(md);
  });

  it("docs/reference/cli.md is every command's --help, walked from the top", async () => {
    const md = await cliReferenceMarkdown();
    for (const heading of ["## azgate start", "## azgate admin users add", "## azgate request approve", "## azgate proxy azure", "## azgate exec"]) expect(md).toContain(`\n${heading}\n`);
    expect(page("cli.md")).toBe(md);
  });

  it("reads a command list as yargs prints it: arguments are not subcommands, only the next level counts", () => {
    const help = "azgate admin\n\nCommands:\n  azgate admin create [filename]  Create resources\n  azgate admin get <ref> [name]   Show\n                                  more text\n  azgate admin users              Users\n\nOptions:\n  -h, --help  Show help\n";
    expect(subcommands(help, ["admin"])).toEqual([["admin", "create"], ["admin", "get"], ["admin", "users"]]);
    expect(subcommands(help, [])).toEqual([]);
  });
});
