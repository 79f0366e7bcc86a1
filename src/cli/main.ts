import { VERSION } from "../version.ts";
import { runtimeVersion } from "../runtime/version.ts";
import { DESCRIBE, MODULES } from "./catalog.ts";
import { print, printErr } from "./output.ts";
import type { Argv } from "yargs";

/** Runs the command `argv` names (`argv` excludes the executable and script). */
export async function main(argv: string[]): Promise<void> {
  // `azgate az ...`: every argument belongs to az, so yargs never sees them.
  if (argv[0] === "az") return (await import("./commands/azure.ts")).azPassthrough(argv.slice(1));
  if (argv[0] === "exec" && !["--help", "-h"].includes(argv[1] ?? "")) return (await import("./commands/azure.ts")).execPassthrough(argv.slice(1));
  const cli = await commandTree(argv, Math.min(110, process.stdout.columns || 100));
  try {
    await cli.parseAsync();
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    printErr(`ERROR: ${e.message}\n\nRun "azgate --help" (or the command with --help) for usage.`);
    process.exitCode = 2;
  }
}

/**
 * The command tree for `argv`, help lines wrapped at `width`. Only the module
 * of the command being run is loaded; the others are listed by name and
 * description. The CLI reference (cli/reference.ts) walks the same tree.
 */
export async function commandTree(argv: string[], width: number): Promise<Argv> {
  // Loaded here, not at the top: az and exec start their command without it.
  const { default: yargs } = await import("yargs");
  let cli = yargs(argv)
    .scriptName("azgate")
    .usage("azgate: access to the Azure CLI and Azure APIs through a gateway\n\nUsage: $0 <command> [options]")
    .version(`${VERSION} (${runtimeVersion()})`)
    .strict()
    .wrap(width)
    // Throwing is what stops yargs: a fail handler that returns lets the command run anyway.
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    });
  // Only the module of the command being run is loaded; the others are listed by name and description.
  const known = new Set(MODULES.flatMap((m) => [...m.commands, ...(m.hidden ?? [])]));
  const asked = argv.find((a) => known.has(a));
  for (const m of MODULES) {
    if (asked && (m.commands.includes(asked) || m.hidden?.includes(asked))) cli = (await m.load())(cli);
    else for (const name of m.commands) cli = cli.command(name, DESCRIBE[name as keyof typeof DESCRIBE]);
    // Listed for --help only: both run before yargs (above). exec's help names its one option of its own.
    if (m.commands.includes("proxy")) cli = cli.command("az", DESCRIBE.az, (a) => a).command("exec", DESCRIBE.exec, (a) => a.usage(`azgate exec [--app NAME] [--] COMMAND [ARGS...]\n\n${DESCRIBE.exec}`).option("app", { type: "string", describe: "The app session to use, when logged into several (apps login APP)" }));
  }
  cli = cli.command("version", DESCRIBE.version, (a) => a, () => print(`azgate ${VERSION} (${runtimeVersion()})`));
  return cli.demandCommand(1, "name a command").help().alias("h", "help");
}

/** Arguments yargs refused (unknown option, missing value, bad choice): exit code 2, as for any CLI. */
class UsageError extends Error {}
