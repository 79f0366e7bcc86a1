/**
 * The single binary alone (run by `npm run test:all` after
 * `npm run build:binary`, with AZGATE_TEST_BINARY=1): copied to an empty
 * directory and run with a PATH that holds only `az`, so neither Node.js nor
 * node_modules can be reached. `demo --check` must pass every step.
 */
import { describe, expect, it } from "vitest";
import { copyFileSync, mkdirSync, symlinkSync } from "node:fs";
import path from "node:path";
import { tempDir } from "../helpers/azgate.ts";
import { runCommand } from "../helpers/run.ts";

const BUILT = path.resolve(import.meta.dirname, "../../dist/azgate");

describe("dist/azgate on its own", () => {
  const dir = tempDir("azgate-binary-");
  const binary = path.join(dir, "azgate");
  copyFileSync(BUILT, binary);
  const bin = path.join(dir, "bin");
  mkdirSync(bin);
  symlinkSync("/usr/bin/az", path.join(bin, "az"));
  // runCommand adds only PATH to env; this PATH has az and nothing else.
  const run = (args: string[]) => runCommand(binary, args, { PATH: bin, HOME: dir, AZGATE_HOME: path.join(dir, "home") });

  it("prints its version and help with no Node.js on PATH", async () => {
    const version = await run(["--version"]);
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+ \(node \d+/);
    const help = await run(["--help"]);
    expect(help.code).toBe(0);
    for (const cmd of ["start", "login", "apps", "proxy", "az", "admin", "emulator", "demo"]) expect(help.stdout).toMatch(new RegExp(`azgate ${cmd}\\b`));
    expect(help.stderr).toBe("");
  });

  it("demo --check passes every step, az included", { timeout: 120_000 }, async () => {
    const res = await run(["demo", "--check"]);
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).not.toMatch(/^(FAIL|SKIP)/m);
    expect(res.stdout).toMatch(/^PASS +az group list through azgate: myResourceGroup, production$/m);
    expect(res.stdout).toContain("every step passed");
    expect(res.stderr).not.toMatch(/Warning/);
  });
});
