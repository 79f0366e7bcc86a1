/**
 * Workstation commands for Azure apps: `apps login|logout`, `az ...`,
 * `exec -- COMMAND ...` and `proxy azure|az`.
 */
import { systemClock } from "../../util/clock.ts";
import type { Argv } from "yargs";
import { readFileSync } from "node:fs";
import path from "node:path";
import { DESCRIBE } from "../catalog.ts";
import { AppUnavailable, AzgateError, isAzgateError } from "../../errors/index.ts";
import { listAppSessions, removeAppSession } from "../../client/app-store.ts";
import type { PreparedSession } from "../../client/local-session.ts";
import { azVersion, findAz, runAz, runChild, usesMsal } from "../../client/az.ts";
import { execEnv, SCRUBBED } from "../../client/exec-env.ts";
import type { PythonTrust } from "../../client/session-env.ts";
import { print, printErr } from "../output.ts";
import { exportLines, unsetLine, type Shell } from "../shell-exports.ts";
import { run, subcommandNeeded, untilSignalled } from "../run.ts";

export function appLoginCommands(a: Argv) {
  return a
    .command<{ app: string; "azure-identity"?: string; debug?: boolean }>(
      "login <app>",
      "Log into an app; for Azure apps, choose the Azure identity and run az login through azgate",
      (b) =>
        b
          .positional("app", { type: "string", demandOption: true })
          .option("azure-identity", { type: "string", describe: "(Azure apps) managed identity: full resource ID or its name" })
          .option("debug", { type: "boolean", describe: "Pass --debug to az login" }),
      run(async (argv) => {
        const { currentSession, loginApp, startLocalProxy } = await import("../../client/azure-session.ts");
        const session = await currentSession();
        const { app, identity } = await loginApp(session, argv.app, argv["azure-identity"]);
        const done = [`Logged into Azure app "${app}".`, `Your identity: ${identity}`];
        let az: string;
        try {
          az = findAz();
        } catch (e) {
          // The session is still good for SDKs through `proxy azure`: say so rather than fail.
          print([...done, ``, `Note: ${(e as Error).message}.`, `az login was skipped; Azure SDKs work through: azgate proxy azure`].join("\n"));
          return;
        }
        const flag = usesMsal(await azVersion(az)) ? "--resource-id" : "--username";
        // Within the minute the certificate just stored lives (per-session MFA): az login needs no second check.
        const opened = await startLocalProxy(app, 0, undefined, undefined, undefined, undefined, null);
        try {
          const result = await runAz(az, ["login", "--identity", flag, identity, ...(argv.debug ? ["--debug"] : [])], opened.env);
          if (result.code !== 0) throw new AzgateError("login_failed", `failed to automatically login with az login using identity "${identity}"; run with --debug for details`);
        } finally {
          await opened.proxy.close();
        }
        print([...done, `Example Azure CLI command: azgate az group list`].join("\n"));
      }),
    )
    .command<{ app?: string }>(
      "logout [app]",
      "Remove app credentials (all apps when none is named)",
      (b) => b.positional("app", { type: "string" }),
      run(async (argv) => {
        const { currentSession } = await import("../../client/azure-session.ts");
        const { profile } = await currentSession();
        const apps = argv.app ? [argv.app] : (await listAppSessions(profile)).map((s) => s.app);
        const removed: string[] = [];
        for (const app of apps) if (await removeAppSession(profile, app)) removed.push(app);
        print(removed.length ? `Logged out of ${removed.map((a) => `"${a}"`).join(", ")}.` : "Not logged into any app.");
      }),
    );
}

/** `azgate az ARGS...`: everything after `az` goes to az untouched (`--app NAME` first picks the app). */
export async function azPassthrough(args: string[]): Promise<void> {
  const { app, rest } = appFlag(args);
  await run(async () => {
    const az = findAz();
    await throughSession(app, "az", async (opened, signal) => {
      // Synchronous on purpose: az must be spawned before this function first
      // yields, or the heavy half of the session (keys, leaves, the dial) runs first.
      if (needsAccount(rest) && !hasAzAccount(opened.env.AZURE_CONFIG_DIR)) {
        throw new AzgateError("not_found", `az is not logged in for app "${opened.app}": the last apps login did not finish its az login; run azgate apps login ${opened.app} again`);
      }
      return runAz(az, rest, opened.env, { signal });
    });
  })(undefined);
}

/**
 * `azgate exec [--app NAME] [--] COMMAND ARGS...`: any tool through the app
 * session (terraform, a Python or Go program, an SDK script), with the
 * environment exec-env.ts builds: the user's own Azure credentials removed.
 */
export async function execPassthrough(args: string[]): Promise<void> {
  const { app, rest } = appFlag(args);
  const argv = rest[0] === "--" ? rest.slice(1) : rest;
  await run(async () => {
    if (argv.length === 0) throw new AzgateError("bad_parameter", "azgate exec needs a command: azgate exec [--app NAME] -- COMMAND [ARGS...]");
    // Any tool: Python's requests keeps the system's roots, for the non-Azure hosts it may also call.
    const trust = "system";
    await throughSession(app, argv[0], async (opened, signal) => {
      const env = execEnv(process.env, { sessionEnv: opened.env, identity: opened.identity, tenant: opened.tenant, clientId: opened.clientId, cloud: opened.cloud });
      return runChild(argv[0], argv.slice(1), env, { signal });
    }, trust);
  })(undefined);
}

function appFlag(args: string[]): { app?: string; rest: string[] } {
  return args[0] === "--app" && args[1] ? { app: args[1], rest: args.slice(2) } : { rest: args };
}

/**
 * Runs `child` with the app session's local proxy up for its lifetime, and
 * its exit code as azgate's. The child starts first, with what needs no key
 * (local-session.ts); the keys, the local CA's leaves and the tunnel to the
 * proxy are loaded while it boots (its first connection waits on the port).
 * A proxy that cannot be reached stops it at once (az would retry for seconds).
 */
async function throughSession(app: string | undefined, name: string, child: (session: PreparedSession, signal: AbortSignal) => Promise<{ code: number }>, pythonTrust: PythonTrust = "local"): Promise<void> {
  // Loaded here, not at the top: apps ls and apps logout share this module and need none of it.
  const { prepareLocalSession } = await import("../../client/local-session.ts");
  // One ID for this run, on each of its requests (the audit's command view); the program's file name, never its arguments.
  const prep = await prepareLocalSession(app, 0, pythonTrust, undefined, { id: crypto.randomUUID(), program: path.basename(name) });
  const stop = new AbortController();
  const running = child(prep, stop.signal);
  running.catch(() => undefined);
  // No agent serves the app: az and the SDKs would retry the 503 for seconds. Before anything got through,
  // the command is stopped and that is said; later (an agent restarting mid-run) it is said once, and retried.
  let unavailable: AppUnavailable | null = null;
  const appUnavailable = (first: boolean) => {
    if (unavailable) return;
    unavailable = new AppUnavailable(`no agent serves app "${prep.app}" right now; ${first ? `${name} was stopped rather than left to retry` : `${name} retries`}. azgate apps ls shows the apps that are up`);
    if (first) stop.abort();
    else printErr(`azgate: ${unavailable.message}`);
  };
  let opened;
  try {
    const { openLocalProxy } = await import("../../client/azure-session.ts");
    opened = await openLocalProxy(prep, undefined, appUnavailable);
  } catch (e) {
    // No proxy for the command to use (damaged keys, say): stop it, and say why.
    stop.abort();
    await running.catch(() => undefined);
    throw e;
  }
  // Asked at once, while the command boots: an app no agent serves is then said within a round trip,
  // not at the command's first request (az needs most of a second to get that far).
  const proxy = opened.proxy;
  const probe = new AbortController();
  void servedNow(prep.app, prep.identity, probe.signal).then((served) => served || proxy.gotThrough || appUnavailable(true), () => undefined);
  const unreachable = opened.proxy.connected.then(
    () => null,
    (e: Error) => {
      stop.abort();
      return e;
    },
  );
  try {
    const { code } = await running;
    if (stop.signal.aborted && unavailable) throw unavailable;
    process.exitCode = code;
  } catch (e) {
    if (stop.signal.aborted && unavailable) throw unavailable;
    const cause = await Promise.race([unreachable, new Promise<null>((r) => setTimeout(() => r(null), 100))]);
    // The proxy answered and refused the session (a deleted, reset or locked user): its words, as it said them.
    if (isAzgateError(cause) && cause.code !== "connection_failed") throw cause;
    if (cause) throw new AzgateError("connection_failed", `${cause.message}; ${name} was not run to the end. Is the azgate proxy up? (azgate status shows which one this session uses)`);
    throw e;
  } finally {
    // A question still out (a proxy that takes connections and never answers) does not keep azgate up.
    probe.abort();
    await opened.proxy.close();
  }
}

/**
 * Whether an agent serves `app` now, asked as roles explain asks it: its not_found is "no agent serves
 * the app" (it tells any signed-in user whether an app name is served; nothing new is disclosed). Any
 * other answer, a refusal or a failure to ask included, leaves the command to its own requests, so a
 * user whose roles changed gets the proxy's own refusal, not "no agent".
 */
async function servedNow(app: string, azureIdentity: string, signal: AbortSignal): Promise<boolean> {
  const { profileClient } = await import("../connect.ts");
  const client = await profileClient();
  const asked = await client.call("POST", "/v1/roles/explain", { app, azure_identity: azureIdentity, method: "GET", url: "https://management.azure.com/" }, { timeoutMs: 2_000, signal }).then(
    () => null,
    (e: unknown) => e,
  );
  return !(isAzgateError(asked) && asked.code === "not_found");
}

/** az commands that work without a logged-in account (the rest would print "Please run 'az login'"). */
const ACCOUNT_FREE = new Set(["login", "logout", "version", "--version", "-h", "--help", "help", "config", "extension", "cache", "find", "upgrade", "init", "interactive", "feedback", "survey"]);
const needsAccount = (args: string[]) => args.length > 0 && !ACCOUNT_FREE.has(args[0]) && !args.includes("--help") && !args.includes("-h");

/** True when az has an account in this config dir (apps login's az login got that far). */
function hasAzAccount(configDir: string): boolean {
  try {
    const text = readFileSync(path.join(configDir, "azureProfile.json"), "utf8").replace(/^\uFEFF/, "");
    return ((JSON.parse(text) as { subscriptions?: unknown[] }).subscriptions ?? []).length > 0;
  } catch {
    return false;
  }
}

export function proxyCommands(y: Argv) {
  return y.command("proxy", DESCRIBE.proxy, (p) =>
    p
      .command<{ app?: string; port?: number; format?: Shell; debug?: boolean; "ca-bundle"?: PythonTrust }>(
        ["azure", "az"],
        "Start the local Azure proxy and print the environment for another shell",
        (b) =>
          b
            .option("app", { type: "string", describe: "App, when logged into several" })
            .option("port", { alias: "p", type: "number", describe: "Port of the forward proxy (random when omitted)" })
            .option("format", { alias: "f", choices: ["unix", "powershell", "command-prompt", "text"] as const, describe: "Export syntax (default: powershell on Windows, unix elsewhere)" })
            .option("debug", { type: "boolean", describe: "Log each token issued (with the client's dialect) and each refusal to stderr" })
            .option("ca-bundle", {
              choices: ["local", "system"] as const,
              default: "local" as const,
              describe: "REQUESTS_CA_BUNDLE for Python (az, SDKs): local = azgate's local CA alone (fast; Python then cannot verify non-Azure hosts it reaches through the proxy), system = plus the system's roots",
            }),
        run(async (argv) => {
          if (argv.port !== undefined && !(Number.isInteger(argv.port) && argv.port >= 0 && argv.port <= 65535)) {
            throw new AzgateError("bad_parameter", `--port ${argv.port} is not a port: use a whole number from 1 to 65535 (or leave it out for a free one)`);
          }
          const { startLocalProxy } = await import("../../client/azure-session.ts");
          const appDown = () => process.stderr.write(`[azgate] no agent serves app "${opened.app}" right now: requests get a 503 (which clients retry) until one does. azgate apps ls shows the apps that are up\n`);
          const opened = await startLocalProxy(argv.app, argv.port ?? 0, argv.debug ? (line) => process.stderr.write(`[azgate] ${line}\n`) : undefined, argv["ca-bundle"], undefined, appDown);
          const format = argv.format ?? (process.platform === "win32" ? "powershell" : "unix");
          const sessionExports = execEnv({}, { sessionEnv: opened.env, identity: opened.identity, tenant: opened.tenant, clientId: opened.clientId, cloud: opened.cloud });
          // Listening for Ctrl-C before printing: whoever reads the exports may stop us at once.
          const signalled = untilSignalled();
          print(
            [
              `Started Azure proxy on http://127.0.0.1:${opened.proxy.port}.`,
              ...(argv.port ? [] : [`To avoid port randomization, you can choose the listening port using the --port flag.`]),
              ``,
              `Use the following environment variables with Azure CLI or Azure SDKs (app "${opened.app}", identity ${opened.identity}):`,
              // What azgate exec gives a command: the user's own Azure credentials removed, then the session's.
              ...[unsetLine(SCRUBBED.filter((n) => !(n in sessionExports)), format) ?? []].flat(),
              exportLines(sessionExports, format),
            ].join("\n"),
          );
          const expiry = opened.clock.after(opened.expires.getTime() - opened.clock.now(), () =>
            process.stderr.write(`The app session for "${opened.app}" expired at ${opened.expires.toISOString()}; requests are refused. Run azgate apps login ${opened.app}, then start azgate proxy azure again.\n`),
          );
          await signalled;
          expiry.cancel();
          await opened.proxy.close();
        }),
      )
      .demandCommand(...subcommandNeeded("proxy")),
  );
}
