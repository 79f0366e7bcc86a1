import yargs from "yargs";
import { VERSION } from "../version.ts";
import { runtimeVersion } from "../runtime/index.ts";
import { startCommand } from "./commands/start.ts";
import { sessionCommands } from "./commands/session.ts";
import { adminCommands } from "./commands/admin.ts";
import { emulatorCommand } from "./commands/emulator.ts";
import { demoCommands } from "./commands/demo.ts";
import { healthcheckCommand } from "./commands/healthcheck.ts";
import { appsCommands } from "./commands/apps.ts";
import { azPassthrough, proxyCommands } from "./commands/azure.ts";
import { print } from "./output.ts";

/** Builds the whole command tree; `argv` excludes the executable and script. */
export async function main(argv: string[]): Promise<void> {
  // `azgate az ...`: every argument belongs to az, so yargs never sees them.
  if (argv[0] === "az") return azPassthrough(argv.slice(1));
  let cli = yargs(argv)
    .scriptName("azgate")
    .usage("azgate: access to the Azure CLI and Azure APIs through a gateway\n\nUsage: $0 <command> [options]")
    .version(`${VERSION} (${runtimeVersion()})`)
    .strict()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err, y) => {
      if (err) throw err;
      process.stderr.write(`ERROR: ${msg}\n\nRun "azgate --help" (or the command with --help) for usage.\n`);
      process.exitCode = 2;
      void y;
    });
  cli = startCommand(cli);
  cli = sessionCommands(cli);
  cli = appsCommands(cli);
  cli = proxyCommands(cli);
  cli = cli.command("az", "Run the Azure CLI through azgate: azgate az ARGS... (after apps login)", (a) => a);
  cli = adminCommands(cli);
  cli = emulatorCommand(cli);
  cli = demoCommands(cli);
  cli = healthcheckCommand(cli);
  cli = cli.command("version", "Print the version", (a) => a, () => print(`azgate ${VERSION} (${runtimeVersion()})`));
  await cli.demandCommand(1, "name a command").help().alias("h", "help").parseAsync();
}
