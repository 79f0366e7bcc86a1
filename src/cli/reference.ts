/**
 * docs/reference/cli.md, generated from the commands' own definitions: the
 * tree main.ts builds, walked through each command's `--help` (yargs keeps
 * its command list private; its help is the public view of it). `npm run docs`
 * writes the page; test/docs-reference.test.ts fails when it is stale.
 */
import { commandTree } from "./main.ts";

/** Fixed, so the page does not depend on the terminal that generated it. */
const WIDTH = 100;

/** What `azgate ...path --help` prints. */
export async function helpText(path: string[]): Promise<string> {
  const argv = [...path, "--help"];
  // English whatever the machine's locale; the output handed back instead of printed and exited on.
  const cli = (await commandTree(argv, WIDTH)).locale("en").detectLocale(false).exitProcess(false);
  return new Promise((resolve, reject) => {
    cli.parse(argv, {}, (err, _argv, output) => (err ? reject(err) : resolve(output.trimEnd())));
  });
}

/** The subcommands a help text lists, as paths ("admin users add" is ["admin", "users", "add"]). */
export function subcommands(help: string, path: string[]): string[][] {
  const section = /\nCommands:\n((?: {2}.*\n?)+)/.exec(help)?.[1] ?? "";
  return section
    .split("\n")
    .filter((line) => line.startsWith("  azgate "))
    .map((line) => line.trim().split(/\s{2,}/)[0].split(" ").slice(1))
    .map((words) => {
      const args = words.findIndex((w) => /^[<[]/.test(w)); // <name>, [filename]: arguments, not commands
      return args < 0 ? words : words.slice(0, args);
    })
    .filter((words) => words.length === path.length + 1 && path.every((w, i) => words[i] === w));
}

/** `azgate az --help` is az's own help: every argument after az is az's (main.ts). */
const PASSED_THROUGH = new Set(["az"]);

/** Every command, depth first, with its help. */
export async function walkCommands(path: string[] = []): Promise<{ path: string[]; help: string }[]> {
  const help = await helpText(path);
  const subs = subcommands(help, path).filter((sub) => !PASSED_THROUGH.has(sub.join(" ")));
  const below = await Promise.all(subs.map((sub) => walkCommands(sub)));
  return [{ path, help }, ...below.flat()];
}

export async function cliReferenceMarkdown(): Promise<string> {
  const commands = await walkCommands();
  const index = commands.slice(1).map(({ path }) => `${"  ".repeat(path.length - 1)}- [azgate ${path.join(" ")}](#${["azgate", ...path].join("-")})`);
  return [
    "# CLI reference",
    "",
    "Every `azgate` command and its options, as `--help` prints them. Generated from the commands' definitions",
    "(`src/cli/`) by `npm run docs`; `test/docs-reference.test.ts` fails when this page is stale.",
    "`azgate az ARGS...` passes every argument to az (so `azgate az --help` is az's help), and",
    "`azgate exec -- COMMAND ARGS...` every argument after `--` to the command.",
    "",
    ...index,
    "",
    ...commands.flatMap(({ path, help }) => [`## ${["azgate", ...path].join(" ")}`, "", "```text", help, "```", ""]),
  ].join("\n");
}
