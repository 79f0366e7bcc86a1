#!/usr/bin/env node
// Runs the end-to-end files on Node, then the whole suite on Deno (less the
// end-to-end files of decisions, not of the runtime: vitest.config.ts
// NODE_ONLY_E2E), then builds the single binary and runs its smoke test
// (test/binary) against it alone, then builds and runs the container image
// with podman (test/image), then the in-process files (test/*.test.ts) on
// Node with the clock moved 400 days ahead by libfaketime (a fixed date, a
// fixture certificate or a token that the real clock will overtake fails
// now, not months later). So every in-process file runs twice: on Deno
// today and on Node 400 days on; every end-to-end file on Node, and those of
// the runtime on Deno too. Prints one line "N passed, N failed" summed over
// all five (CI reads it).
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";

const out = path.resolve(".test-results");
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const runs = [
  { name: "node", cmd: "npx", args: ["vitest", "run"], env: { AZGATE_TEST_E2E_ONLY: "1" } },
  { name: "deno", cmd: "npx", args: ["deno", "run", "-A", "npm:vitest", "run"] },
  { name: "binary", build: ["npm", ["run", "build:binary"]], cmd: "npx", args: ["vitest", "run"], env: { AZGATE_TEST_BINARY: "1" } },
  { name: "image", cmd: "npx", args: ["vitest", "run"], env: { AZGATE_TEST_IMAGE: "1" } },
  // test/clock.test.ts checks the clock really moved (past 399 days from now, read before the move).
  { name: "node+400d", cmd: "faketime", args: ["+400 days", "npx", "vitest", "run"], env: { AZGATE_TEST_IN_PROCESS: "1", AZGATE_EXPECT_CLOCK_AFTER: String(Date.now() + 399 * 86_400_000) } },
];
const only = process.argv[2];
let passed = 0;
let failed = 0;
for (const run of runs.filter((r) => !only || r.name === only)) {
  const file = path.join(out, `${run.name}.json`);
  console.log(`\n=== tests on ${run.name} ===`);
  if (run.build) {
    const built = spawnSync(run.build[0], run.build[1], { stdio: "inherit" });
    if (built.status !== 0) {
      console.log(`ERROR: ${run.build.flat().join(" ")} failed (exit ${built.status})`);
      failed += 1;
      continue;
    }
  }
  const res = spawnSync(run.cmd, [...run.args, "--reporter=default", "--reporter=json", `--outputFile.json=${file}`], { stdio: "inherit", env: { ...process.env, ...run.env } });
  let report;
  try {
    report = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    console.log(`ERROR: the ${run.name} run produced no report (exit ${res.status})`);
    failed += 1;
    continue;
  }
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  // A suite that failed to load counts as a failure even with no failed test in it.
  if (res.status !== 0 && report.numFailedTests === 0) failed += 1;
  console.log(`${run.name}: ${report.numPassedTests} passed, ${report.numFailedTests} failed`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
