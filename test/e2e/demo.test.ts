/**
 * `azgate demo` as a person uses it: start it, then in a second shell run the
 * commands it prints, with the Debian az. And `demo --check`, which runs the
 * same path with @azure/identity in a separate process and judges each step.
 */
import { describe, expect, it } from "vitest";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { cli, startCli, tempDir } from "../helpers/azgate.ts";
import { DEMO_ROLE_YAML } from "../../src/demo/seed.ts";

const SEED = path.resolve(import.meta.dirname, "../../../shared/fixtures/seed");

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
      const shell = (args: string[]) => cli(args, { home, env: { HOME: home } });
      const ls = await shell(["apps", "ls"]);
      expect(ls.stdout).toMatch(/^azure-cli\s/m);
      const login = await shell(["apps", "login", "azure-cli", "--azure-identity", "teleport-reader"]);
      expect(login.code, login.stderr).toBe(0);
      expect(login.stdout).toContain('Logged into Azure app "azure-cli".');
      const groups = await shell(["az", "group", "list", "-o", "json"]);
      expect(groups.code, groups.stderr).toBe(0);
      expect(JSON.parse(groups.stdout).map((g: { name: string }) => g.name)).toEqual(["myResourceGroup", "production"]);
      await demo.stop("SIGINT");
      expect(demo.output()).toContain("Stopping the demo.");
      expect(existsSync(dataDir)).toBe(false);
    } finally {
      await demo.stop("SIGKILL");
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
});
