/**
 * Every command the web UI's My access page offers, run as a user pastes it
 * (issue 31, item 1): read from the page in headless Chromium (the text its
 * copy buttons copy), each run through `bash -c` on a fresh workstation
 * (its own HOME, `azgate` on PATH) against a running proxy, agent and the
 * emulator. Each must return by itself within a deadline (a command that
 * holds the shell, as `eval "$(azgate proxy azure ...)"` did, fails here) and
 * work: the login signs in with the pin the page gives, apps login makes the
 * session, the environment `azgate env` exports lets the Debian az's
 * `az group list` through, and `azgate exec` runs az through it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Browser } from "playwright-core";
import { useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, startClusterWithAgent, type AgentProcess, type TestCluster } from "../helpers/cluster.ts";
import { azgateCommand, tempDir } from "../helpers/azgate.ts";
import { baseEnv } from "../helpers/run.ts";
import { freshPage, launchBrowser } from "../helpers/browser.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");
/** Long enough for a busy machine's apps login (it runs az login); a command that holds the shell never gets there. */
const DEADLINE_MS = 90_000;

interface Pasted {
  code: number | null;
  /** Killed at the deadline: the command did not return by itself. */
  held: boolean;
  stdout: string;
  stderr: string;
}

/** `bash -c TEXT` in its own process group (so a held command and its children end at the deadline), with `input` on stdin. */
function paste(text: string, env: Record<string, string>, input = ""): Promise<Pasted> {
  return new Promise((resolve, reject) => {
    const child = spawn("/bin/bash", ["-c", text], { env: { ...baseEnv(), ...env }, stdio: ["pipe", "pipe", "pipe"], detached: true });
    let stdout = "";
    let stderr = "";
    let held = false;
    const timer = setTimeout(() => {
      held = true;
      process.kill(-child.pid!, "SIGKILL");
    }, DEADLINE_MS);
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, held, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

describe("the commands the web UI offers", () => {
  let cluster: TestCluster;
  let agent: AgentProcess;
  let browser: Browser;
  let commands: string[] = [];
  /** The workstation: a HOME of its own and `azgate` on PATH, as after an install. */
  const home = tempDir("azgate-workstation-");
  const bin = path.join(home, "bin");
  const env = () => ({ HOME: home, PATH: `${bin}:${process.env.PATH}` });

  beforeAll(async () => {
    ({ cluster, agent } = await startClusterWithAgent(fx));
    await cluster.user("carol", ["azure-cli-access"], [READER]);
    mkdirSync(bin, { recursive: true });
    const [cmd, argv] = azgateCommand([]);
    writeFileSync(path.join(bin, "azgate"), `#!/bin/sh\nexec ${[cmd, ...argv].map((a) => `'${a}'`).join(" ")} "$@"\n`);
    chmodSync(path.join(bin, "azgate"), 0o755);
    browser = await launchBrowser();
    const { page, context } = await freshPage(browser);
    await page.goto(`https://127.0.0.1:${cluster.proxy.port}/web/login`);
    await page.fill("input[name=user]", "carol");
    await page.fill("input[name=password]", "correct horse battery carol");
    await page.click("button[type=submit]");
    await page.waitForURL(/\/web$/);
    // What each copy button copies: the command as shown.
    commands = await page.locator("[data-copy]").evaluateAll((els) => els.map((e) => e.getAttribute("data-copy") ?? ""));
    await context.close();
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await agent?.stop();
    await cluster?.stop();
  });

  it("offers a sign-in with the cluster's pin, and per identity apps login, azgate env and azgate exec", () => {
    expect(commands).toEqual([
      `azgate apps login azure-cli --azure-identity teleport-reader`,
      `eval "$(azgate env --app azure-cli)"   # then az, or any Azure SDK, in this shell; eval "$(azgate env --unset)" ends it`,
      `azgate exec --app azure-cli -- az group list`,
      `azgate login --proxy 127.0.0.1:${cluster.proxy.port} --user carol --ca-pin ${cluster.proxy.pin}`,
    ]);
  });

  it("each returns by itself, pasted into bash in that order, and works", async () => {
    const [appsLogin, envLine, exec, login] = commands;
    // A workstation starts by signing in (the password on stdin, as typed at the prompt).
    const signedIn = await paste(login, env(), "correct horse battery carol\n");
    expect(signedIn.held, `${login} held the shell`).toBe(false);
    expect(signedIn.code, signedIn.stderr).toBe(0);

    const session = await paste(appsLogin, env());
    expect(session.held, `${appsLogin} held the shell`).toBe(false);
    expect(session.code, session.stderr).toBe(0);
    expect(session.stdout).toContain(`Your identity: ${READER}`);

    // The exports a pasted `azgate env` leaves in the shell let az through; then the shell ends the background proxy.
    const groups = path.join(home, "groups.json");
    const shell = await paste(`${envLine}\naz group list -o json --only-show-errors > '${groups}' || exit 7\neval "$(azgate env --unset)"`, env());
    expect(shell.held, `${envLine} held the shell`).toBe(false);
    expect(shell.code, shell.stderr).toBe(0);
    expect(JSON.parse(readFileSync(groups, "utf8")).map((g: { name: string }) => g.name)).toContain("myResourceGroup");

    const ran = await paste(exec, env());
    expect(ran.held, `${exec} held the shell`).toBe(false);
    expect(ran.code, ran.stderr).toBe(0);
    expect(JSON.parse(ran.stdout).map((g: { name: string }) => g.name)).toContain("myResourceGroup");
  }, 6 * DEADLINE_MS);
});
