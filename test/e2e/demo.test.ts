/**
 * `azgate demo` as a person uses it: start it, then in a second shell run the
 * commands it prints, with the Debian az. And `demo --check`, which runs the
 * same path with @azure/identity in a separate process and judges each step.
 */
import { describe, expect, it } from "vitest";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import net from "node:net";
import { cli, startCli, tempDir } from "../helpers/azgate.ts";
import { runCommand } from "../helpers/run.ts";
import { DEMO_ROLE_YAML } from "../../src/demo/seed.ts";

const SEED = path.resolve(import.meta.dirname, "../fixtures/seed");

describe("azgate demo", () => {
  it("embeds the seed guide's role file unchanged", () => {
    expect(DEMO_ROLE_YAML).toBe(readFileSync(path.join(SEED, "azure-cli-access-internal.yaml"), "utf8"));
  });

  it("starts everything, prints the next steps, and those steps work from a second shell", { timeout: 120_000 }, async () => {
    const home = tempDir("azgate-demo-home-");
    const demo = await startCli(["demo", "--port", "0"], { home, env: { HOME: home }, ready: /Press Ctrl-C to stop\./, timeoutMs: 60_000 });
    try {
      const out = demo.output();
      expect(out).toMatch(/azgate demo is running/);
      for (const line of ["azgate apps ls", "azgate apps login azure-cli --azure-identity teleport-reader", "azgate az group list", "azgate proxy azure"]) expect(out).toContain(`  ${line}\n`);
      const dataDir = /Data dir:\s+(\S+)/.exec(out)![1];
      // The password is in a 0600 file, never on the terminal.
      const passwordFile = /password in (\S+)\)/.exec(out)![1];
      expect(statSync(passwordFile).mode & 0o777).toBe(0o600);
      expect(out).not.toContain(readFileSync(passwordFile, "utf8").trim());
      // The second shell: the printed lines, verbatim, up to the long-running `proxy azure`.
      const lines = out.slice(out.indexOf("In a second shell, try:\n")).split("\n").slice(1).map((l) => l.trim());
      const script = lines.slice(0, lines.indexOf("azgate proxy azure"));
      expect(script[0]).toMatch(/^alias azgate=/);
      const second = await runCommand("/bin/sh", ["-c", script.join("\n")], { HOME: home, AZGATE_HOME: home });
      expect(second.code, second.stderr).toBe(0);
      expect(second.stdout).toMatch(/^azure-cli\s/m);
      expect(second.stdout).toContain('Logged into Azure app "azure-cli".');
      // az group list's answer comes after apps login's closing lines.
      const groups = second.stdout.slice(second.stdout.indexOf("Example Azure CLI command: azgate az group list"));
      expect(groups).toContain('"name": "myResourceGroup"');
      expect(groups).toContain('"name": "production"');
      // The demo logged its user in under its own home: the user's own profile is untouched.
      expect(existsSync(path.join(home, "current-profile"))).toBe(false);
      await demo.stop("SIGINT");
      expect(demo.output()).toContain("Stopping the demo.");
      expect(existsSync(dataDir)).toBe(false);
    } finally {
      await demo.stop("SIGKILL");
    }
  });

  it("leaves nothing behind when it cannot start (its port is taken)", async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
    const tmp = tempDir("azgate-demo-tmp-");
    try {
      const res = await cli(["demo", "--port", String((taken.address() as net.AddressInfo).port)], { home: tempDir("azgate-demo-home-"), env: { TMPDIR: tmp } });
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/ERROR: port \d+ is in use; pick another with --port/);
      // (tsx, which runs the sources on Node, keeps its compile cache there: not the demo's.)
      expect(readdirSync(tmp).filter((n) => !n.startsWith("tsx-"))).toEqual([]);
    } finally {
      taken.close();
    }
  });

  it("--check runs the client path and reports every step as passed", { timeout: 120_000 }, async () => {
    const res = await cli(["demo", "--check"], { home: tempDir("azgate-demo-home-") });
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).not.toContain("FAIL");
    for (const step of ["apps login azure-cli", "ManagedIdentityCredential gets a token", "lists resource groups through the local proxy: myResourceGroup, production", "no token the emulator issued reached the client", "the proxy audited", "az group list through azgate"]) {
      expect(res.stdout).toMatch(new RegExp(`^PASS +.*${step.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`, "m"));
    }
    expect(res.stdout).toContain("every step passed");
  });

  it("--check without az: every other step passes and the az step is skipped with how to install it", { timeout: 120_000 }, async () => {
    const res = await cli(["demo", "--check"], { home: tempDir("azgate-demo-home-"), env: { PATH: "/nonexistent" } });
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^SKIP +az group list through azgate: the Azure CLI \(az\) is not installed or not on PATH; install it \(Debian\/Ubuntu: apt-get install azure-cli/m);
    expect(res.stdout).toMatch(/^PASS +.*lists resource groups through the local proxy/m);
  });
});
