import type { Argv } from "yargs";
import { DESCRIBE } from "../catalog.ts";
import type { AppView } from "../../api/types.ts";
import { profileClient } from "../connect.ts";
import { loadProfile } from "../../client/profile.ts";
import { print, structured, table, type Format } from "../output.ts";
import { run, subcommandNeeded } from "../run.ts";
import { appLoginCommands } from "./azure.ts";

export function appsCommands(y: Argv) {
  return y.command("apps", DESCRIBE.apps, (a) =>
    appLoginCommands(a)
      .command<{ format: Format }>(
        "ls",
        "List the apps your roles allow",
        (b) => b.option("format", { choices: ["text", "json", "yaml"] as const, default: "text" as const, describe: "Output format" }),
        run(async (argv) => {
          const client = await profileClient();
          const { items } = await client.call<{ items: AppView[] }>("GET", "/v1/apps");
          if (argv.format !== "text") return print(await structured(items, argv.format));
          if (items.length === 0) return print("No apps you can use are connected right now.");
          const proxy = (await loadProfile())?.proxy ?? "";
          print(
            table(
              ["Application", "Description", "Type", "Public Address", "Labels"],
              items.map((app) => [
                app.name,
                app.description ?? "Azure CLI and API access",
                app.cloud,
                proxy,
                Object.entries(app.labels).map(([k, v]) => `${k}=${v}`).join(",") || "-",
              ]),
            ),
          );
        }),
      )
      .demandCommand(...subcommandNeeded("apps")),
  );
}
