/**
 * `azgate admin auth rotate` (as `tctl auth rotate`) and the rotation part of
 * `azgate admin status`: each CA's phase, both pins while it rotates, and who
 * has not moved yet. The phases are pki/rotation.ts's; the runbook is
 * docs/rotation.md.
 */
import type { Argv } from "yargs";
import type { ApiClient } from "../../api/client.ts";
import { isAzgateError } from "../../errors/index.ts";
import type { Laggard, RotationStatus } from "../../proxy/rotation.ts";
import { PHASES, type Phase } from "../../pki/rotation.ts";
import { withAdmin, type AdminArgs } from "../connect.ts";
import { fields, print, structured, type Format } from "../output.ts";
import { subcommandNeeded } from "../run.ts";

type RotateArgs = AdminArgs & { type: string; manual?: boolean; phase?: string; "grace-period"?: string; format?: Format };

/** What comes after each phase, for the hint after a step. */
const NEXT: Partial<Record<Phase, string>> = {
  init: "update_clients (or rollback)",
  update_clients: "update_servers (or rollback)",
  update_servers: "standby, which retires the old CA (or rollback)",
  rollback: "standby, which retires the new CA",
};

export function authCommands(y: Argv<AdminArgs>) {
  return y
    .command<RotateArgs>(
      "rotate",
      "Rotate the host CA (proxy and agents) or the user CA (users and app sessions) in phases: init, update_clients, update_servers, standby (rollback before standby); --manual moves one phase, otherwise the phases follow each other over --grace-period",
      (b) =>
        b
          .option("type", { choices: ["host", "user"] as const, demandOption: true, describe: "Which CA: host (the proxy's TLS and agents' certificates) or user (users' and app sessions' certificates)" })
          .option("manual", { type: "boolean", describe: "Move one phase (--phase); each phase waits for you" })
          .option("phase", { choices: PHASES, describe: "With --manual: the phase to go to" })
          .option("grace-period", { type: "string", describe: "Without --manual: the time the whole rotation takes, split evenly over its phases (default 48h)" })
          .option("format", { choices: ["text", "json", "yaml"] as const, describe: "Output format" }),
      withAdmin(async ({ client }, argv) => {
        const status = await client.call<RotationStatus>("POST", "/v1/admin/rotation", { type: argv.type, manual: argv.manual === true, phase: argv.phase, grace_period: argv["grace-period"] });
        if (argv.format === "json" || argv.format === "yaml") return print(await structured(status, argv.format));
        print([`The ${status.type} CA is in phase ${status.phase}${status.mode === "auto" && status.phase !== "standby" ? " (the next phases follow on their own)" : ""}.`, rotationText(status), ...(status.mode === "manual" && NEXT[status.phase] ? [`Next: azgate admin auth rotate --type ${status.type} --manual --phase ${NEXT[status.phase]}`] : [])].join("\n"));
      }),
    )
    .demandCommand(...subcommandNeeded("admin auth"));
}

/** One CA's rotation as lines of `admin status`. */
export function rotationText(s: RotationStatus): string {
  const name = s.type === "host" ? "Host CA" : "User CA";
  if (s.phase === "standby") return fields([[name, `standby, pin ${s.pins[0]}${s.retired[0] ? ` (retired ${s.retired[0].pin} at ${s.retired[0].retired})` : ""}`]]);
  return fields([
    [name, `rotating: phase ${s.phase} (${s.mode === "auto" ? "semi-automatic" : "manual"}) since ${s.changed ?? s.started ?? "?"}`],
    ...s.pins.map((p): [string, string] => [`  pin`, `${p}${p === s.signing ? " (signs now)" : ""}`]),
    ...(s.schedule && s.mode === "auto" ? (["update_clients", "update_servers", "standby"] as const).map((p): [string, string] => [`  ${p}`, `at ${s.schedule![p]}`]) : []),
  ]);
}

/** `admin status`'s rotation lines: both CAs, and who has not moved yet; a caller without read on cert_authority sees a note instead. */
export async function rotationStatusText(client: ApiClient): Promise<string> {
  let report: { host: RotationStatus; user: RotationStatus; waiting: Laggard[] };
  try {
    report = await client.call("GET", "/v1/admin/rotation");
  } catch (e) {
    if (isAzgateError(e) && e.code === "access_denied") return "(CA rotation: your roles do not allow read on cert_authority)";
    throw e;
  }
  return [rotationText(report.host), rotationText(report.user), ...report.waiting.map((w) => fields([["Not moved yet", `${w.who}: ${w.why}`]]))].join("\n");
}
