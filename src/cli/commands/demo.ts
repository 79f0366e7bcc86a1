/**
 * `azgate demo [--check]`: everything in one process, offline (see
 * src/demo/start.ts), and the hidden `demo-client` that `--check` runs as a
 * separate process.
 */
import type { Argv } from "yargs";
import { DESCRIBE } from "../catalog.ts";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startDemo } from "../../demo/start.ts";
import { checkDemo, type Outcome } from "../../demo/check.ts";
import { runCheckClient } from "../../demo/check-client.ts";
import { DEMO_APP, DEMO_BOT, DEMO_IDENTITY_NAME, DEMO_PIPELINE_RUN } from "../../demo/seed.ts";
import { findAz } from "../../client/az.ts";
import { selfCommand, writeFileAtomic } from "../../runtime/index.ts";
import { fields, print } from "../output.ts";
import { run, untilSignalled } from "../run.ts";
import { exitAfterStop } from "../../runtime/index.ts";

interface DemoArgs {
  "data-dir"?: string;
  home?: string;
  port?: number;
  check?: boolean;
  verbose?: boolean;
}

/** How the user runs this same azgate in another shell. */
function azgateInvocation(): string {
  const [cmd, args] = selfCommand([]);
  return [cmd, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a}'`)).join(" ");
}

export function demoCommands(y: Argv) {
  return y
    .command<DemoArgs>(
      "demo",
      DESCRIBE.demo,
      (a) =>
        a
          .option("data-dir", { type: "string", describe: "State directory (default: a new temporary one, removed at the end)" })
          .option("home", { type: "string", describe: "azgate home to log the demo user into (default: one inside the data dir; your own profile is left alone)" })
          .option("port", { type: "number", describe: "Proxy port on 127.0.0.1 (default 3080; with --check any free port)" })
          .option("check", { type: "boolean", describe: "Run the whole client path with @azure/identity (and az when installed), report each step, and stop" })
          .option("verbose", { type: "boolean", describe: "Show the components' logs" }),
      run(async (argv) => {
        const temporary = !argv["data-dir"];
        const dataDir = path.resolve(argv["data-dir"] ?? mkdtempSync(path.join(os.tmpdir(), "azgate-demo-")));
        // The demo logs its user in under an azgate home of its own: the user's current profile is left alone.
        const home = path.resolve(argv.home ?? path.join(dataDir, "home"));
        process.env.AZGATE_HOME = home;
        const log = (line: string) => (argv.verbose || !/^agent: /.test(line) ? process.stderr.write(`[demo] ${line}\n`) : undefined);
        let demo;
        try {
          demo = await startDemo({ dataDir, port: argv.port ?? (argv.check ? 0 : 3080), log, home });
        } catch (e) {
          // Nothing is left behind when it cannot start (a port in use, say).
          if (temporary) rmSync(dataDir, { recursive: true, force: true });
          throw e;
        }
        try {
          if (argv.check) {
            const marks: Record<Outcome, string> = { PASS: "PASS", FAIL: "FAIL", SKIP: "SKIP" };
            const ok = await checkDemo(demo, (outcome, step, detail) => print(`${marks[outcome]}  ${step}${detail ? `: ${detail}` : ""}`));
            print(ok ? "\nazgate demo --check: every step passed." : "\nazgate demo --check: some steps failed (see FAIL above).");
            if (!ok) process.exitCode = 1;
            return;
          }
          // The password goes to a 0600 file, not the terminal (terminals get recorded and shared).
          const passwordFile = path.join(dataDir, `${demo.user}.password`);
          await writeFileAtomic(passwordFile, demo.password + "\n", 0o600);
          const signalled = untilSignalled(); // before the text a reader may act on at once
          print(nextSteps(demo.proxy.port, demo.user, passwordFile, demo.identity, dataDir, temporary, home));
          await signalled;
          print("Stopping the demo.");
        } finally {
          await demo.close();
          if (temporary) rmSync(dataDir, { recursive: true, force: true });
          exitAfterStop();
        }
      }),
    )
    .command<{ subscription: string }>(
      "demo-client",
      false, // hidden: the client half of demo --check
      (a) => a.option("subscription", { type: "string", demandOption: true }),
      run(async (argv) => {
        const steps = await runCheckClient(argv.subscription);
        print(JSON.stringify(steps));
      }),
    );
}

function nextSteps(port: number, user: string, passwordFile: string, identity: string, dataDir: string, temporary: boolean, home: string): string {
  let azNote = "";
  try {
    findAz();
  } catch (e) {
    azNote = `\nNote: ${(e as Error).message}.\nWithout az, azgate demo --check runs the same path with @azure/identity.\n`;
  }
  return [
    `azgate demo is running: an emulated Azure (offline), a proxy, and an agent using Workload ID.`,
    ``,
    fields([
      ["Proxy", `https://127.0.0.1:${port} (cluster "demo")`],
      ["User", `${user}, logged in under the demo's own azgate home ${home} (password in ${passwordFile})`],
      ["Azure identity", identity],
      ["Web UI", `https://127.0.0.1:${port}/web (sign in as ${user}; the demo's certificate is its own, so the browser warns once)`],
      ["Data dir", `${dataDir}${temporary ? " (removed when the demo stops)" : ""}`],
    ]),
    azNote,
    `In a second shell, try:`,
    `  alias azgate="${azgateInvocation()}"`,
    `  export AZGATE_HOME=${home}     # the demo's profile; your own stays as it was`,
    `  azgate apps ls`,
    `  azgate apps login ${DEMO_APP} --azure-identity ${DEMO_IDENTITY_NAME}`,
    `  azgate az group list`,
    `  azgate proxy azure`,
    ``,
    `A pipeline run: a GitHub Actions job of ${DEMO_PIPELINE_RUN.repository} joins as bot "${DEMO_BOT}" with its own OIDC token (docs/bots.md):`,
    `  (. "$AZGATE_HOME/pipeline.env" && azgate bot exec --proxy "$AZGATE_DEMO_PROXY" --ca-pin "$AZGATE_DEMO_CA_PIN" --ci-ca-file "$AZGATE_DEMO_CI_CA" --token ${DEMO_BOT} -- az group list)`,
    `  azgate admin audit ls --data-dir ${path.join(dataDir, "proxy")} --bot ${DEMO_BOT} --format json   # each request with the run: repository, ref, sha, run ID`,
    ``,
    `Press Ctrl-C to stop.`,
  ].join("\n");
}
