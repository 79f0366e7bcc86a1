/**
 * `azgate roles explain` (your own access) and `azgate admin roles explain
 * --user NAME` (anyone's): what the proxy would decide for one Azure request,
 * with the operation azgate names for it and every azure_api rule.
 */
import type { Argv } from "yargs";
import { DESCRIBE } from "../catalog.ts";
import type { ApiClient } from "../../api/client.ts";
import type { ExplainResponse } from "../../proxy/explain.ts";
import { profileClient } from "../connect.ts";
import { fields, print, structured, table, type Format } from "../output.ts";
import { run, subcommandNeeded } from "../run.ts";

export interface ExplainArgs {
  user?: string;
  app?: string;
  "azure-identity": string;
  method: string;
  url: string;
  format: Format;
}

/** The options of `explain`, with --user when it explains someone else's access. */
export function explainOptions<T>(b: Argv<T>, withUser: boolean) {
  const base = b
    .option("azure-identity", { type: "string", demandOption: true, describe: "The Azure identity (name or resource ID)" })
    .option("method", { alias: "X", type: "string", default: "GET", describe: "The request's HTTP method" })
    .option("url", { type: "string", demandOption: true, describe: "The request's full URL (https://management.azure.com/subscriptions/...)" })
    .option("app", { type: "string", describe: "The app (default: the first connected)" })
    .option("format", { choices: ["text", "json", "yaml"] as const, default: "text" as const, describe: "Output format" });
  return withUser ? base.option("user", { type: "string", demandOption: true, describe: "Whose access to explain" }) : base;
}

export async function explain(client: ApiClient, argv: ExplainArgs): Promise<void> {
  const res = await client.call<ExplainResponse>("POST", "/v1/roles/explain", { user: argv.user, app: argv.app, azure_identity: argv["azure-identity"], method: argv.method, url: argv.url });
  if (argv.format !== "text") return print(await structured(res, argv.format));
  print(explanationText(res));
}

export function explanationText(res: ExplainResponse): string {
  const op = res.operation;
  const d = res.decision;
  const verdict = !res.identity.allowed ? "DENY (the roles do not allow the identity)" : d.outcome === "deny" ? (d.enforced ? "DENY" : "WOULD DENY (audit mode: forwarded and recorded)") : d.outcome === "allow" ? "ALLOW" : "ALLOW (unrestricted: no azure_api rule applies)";
  const lines = [
    fields([
      ["User", res.user],
      ["App", res.app],
      ["Azure identity", res.azure_identity],
      ["Identity", res.identity.reason],
      ["Request", `${res.request.method} ${res.request.url}`],
      ["Operation", res.unreadable ? `none: ${res.unreadable}` : op?.action ? `${op.action} (${op.plane} plane, ${op.confidence})` : `not named (${op?.plane ?? "?"} plane; only methods/paths rules can match it)`],
      ["Scope", op?.scope ?? "-"],
      ["Decision", verdict],
      ["Why", res.identity.allowed ? d.reason : res.identity.reason],
    ]),
  ];
  if (res.rules.length > 0) {
    lines.push(
      "",
      table(
        ["Role", "Side", "Rule", "Matches", "Rule as written"],
        res.rules.map((r) => [r.role, r.side, String(r.rule + 1), r.matched ? (r.counts ? "yes" : "yes (does not count: the role does not allow this identity)") : "no", r.text]),
      ),
    );
  }
  return lines.join("\n");
}

/** The top-level `roles` command: your own access. */
export function rolesCommands(y: Argv) {
  return y.command("roles", DESCRIBE.roles, (r) =>
    r
      .command<ExplainArgs>(
        "explain",
        "Explain what the proxy decides for one Azure request with your roles: the operation, every azure_api rule, the decision",
        (b) => explainOptions(b, false) as Argv<ExplainArgs>,
        run(async (argv) => explain(await profileClient(), argv)),
      )
      .demandCommand(...subcommandNeeded("roles")),
  );
}
