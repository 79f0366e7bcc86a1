/**
 * `eval "$(azgate env [--app NAME])"`: as `eval "$(ssh-agent)"` does, starts
 * the local proxy in the background (a detached `azgate proxy azure`) and
 * prints what `azgate exec` sets, plus AZGATE_ENV_PID, for the shell to take
 * in; `eval "$(azgate env --unset)"` stops that proxy and unsets it all.
 */
import type { Argv } from "yargs";
import { spawn } from "node:child_process";
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync } from "node:fs";
import path from "node:path";
import { azgateHome } from "../../client/profile.ts";
import { DESCRIBE } from "../catalog.ts";
import { AzgateError } from "../../errors/index.ts";
import { isProcessAlive, selfCommand } from "../../runtime/index.ts";
import { EXEC_VARIABLES } from "../../client/exec-env.ts";
import { print } from "../output.ts";
import { run } from "../run.ts";

const READY = /^export NODE_EXTRA_CA_CERTS=.*$/m;
const START_TIMEOUT_MS = 30_000;

export function envCommand(y: Argv) {
  return y.command<{ app?: string; unset?: boolean; "ca-bundle"?: string }>(
    "env",
    DESCRIBE.env,
    (a) =>
      a
        .option("app", { type: "string", describe: "App, when logged into several" })
        .option("unset", { type: "boolean", describe: "Stop the background proxy this shell started and print the unset line" })
        .option("ca-bundle", { choices: ["local", "system"] as const, describe: "as for azgate proxy azure (default: local)" }),
    run(async (argv) => {
      const running = Number(process.env.AZGATE_ENV_PID);
      if (argv.unset) {
        if (isOurProxy(running)) process.kill(running, "SIGTERM");
        return print(`unset AZGATE_ENV_PID ${EXEC_VARIABLES.join(" ")}`);
      }
      if (isOurProxy(running)) {
        throw new AzgateError("bad_parameter", `this shell already has an azgate env (its proxy is pid ${running}); run eval "$(azgate env --unset)" first`);
      }
      print(await startInBackground(argv.app, argv["ca-bundle"]));
    }),
  );
}

/**
 * True when `pid` is alive and, where /proc says what it runs, is an `azgate
 * proxy azure`: a pid the shell kept after the proxy ended may since have
 * gone to an unrelated process, which --unset must not signal.
 */
function isOurProxy(pid: number): boolean {
  if (!(pid > 0) || !isProcessAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("proxy\0azure\0");
  } catch {
    return true; // no /proc here: the pid is all there is to go by
  }
}

/**
 * The shell lines of `proxy azure --format unix`'s printout: from its first
 * unset or export line to the end, whole. (Picking lines by their start would
 * cut a quoted value that spans lines, and the shell would read the rest of
 * the block inside that quote.)
 */
export function exportsIn(printout: string): string {
  const start = printout.search(/^(unset|export) /m);
  return start < 0 ? "" : printout.slice(start).trimEnd();
}

/** Starts `azgate proxy azure` detached, waits for its exports, and returns them with its pid. */
function startInBackground(app: string | undefined, caBundle: string | undefined): Promise<string> {
  const [cmd, args] = selfCommand(["proxy", "azure", "--format", "unix", ...(app ? ["--app", app] : []), ...(caBundle ? ["--ca-bundle", caBundle] : [])]);
  // Its later words (the session's expiry, say) go to a log file: no terminal waits on it.
  mkdirSync(azgateHome(), { recursive: true, mode: 0o700 });
  const logFile = path.join(azgateHome(), "env-proxy.log");
  const log = openSync(logFile, "a", 0o600);
  const from = fstatSync(log).size;
  const child = spawn(cmd, args, { detached: true, stdio: ["ignore", "pipe", log] });
  closeSync(log);
  let out = "";
  // What this run wrote, not an earlier one.
  const err = () => readFileSync(logFile).subarray(from).toString("utf8");
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new AzgateError("internal", `the background proxy did not start within ${START_TIMEOUT_MS / 1000}s; see ${logFile}`)), START_TIMEOUT_MS);
    const fail = (e: Error) => {
      clearTimeout(timer);
      child.kill("SIGTERM");
      reject(e);
    };
    child.stdout!.on("data", (d) => {
      out += d;
      if (!READY.test(out)) return;
      clearTimeout(timer);
      // The proxy lives on without this process: nothing more is read from it.
      child.stdout!.destroy();
      child.unref();
      resolve([`# azgate env: the local proxy runs in the background (pid ${child.pid}); eval "$(azgate env --unset)" stops it`, exportsIn(out), `export AZGATE_ENV_PID=${child.pid}`].join("\n"));
    });
    child.once("exit", (code) => fail(new AzgateError("internal", /ERROR: (.*)/.exec(err())?.[1] ?? `the background proxy exited (${code}); see ${logFile}`)));
    child.once("error", (e) => fail(e));
  });
}
