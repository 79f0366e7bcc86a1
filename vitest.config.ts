import os from "node:os";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Deno supports only the forks pool; use it on Node too so both runs behave alike.
    pool: "forks",
    // Two files at a time even on two cores (vitest's default there is one): the end-to-end files
    // spend much of their time waiting on the processes they spawn. Measured on this 2-core machine:
    // the Node suite in 683 s with two workers against 835 s with one, same 445 tests passing.
    maxWorkers: Number(process.env.AZGATE_TEST_WORKERS) || Math.max(2, os.availableParallelism() - 1),
    // The single binary's smoke test and the container image test run on their own (scripts/test-all.mjs);
    // AZGATE_TEST_IN_PROCESS keeps to the in-process files (test/*.test.ts), for the time-travel run.
    include: process.env.AZGATE_TEST_BINARY ? ["test/binary/**/*.test.ts"] : process.env.AZGATE_TEST_IMAGE ? ["test/image/**/*.test.ts"] : process.env.AZGATE_TEST_IN_PROCESS ? ["test/*.test.ts"] : ["test/**/*.test.ts"],
    exclude: process.env.AZGATE_TEST_BINARY || process.env.AZGATE_TEST_IMAGE ? [] : ["test/binary/**", "test/image/**", "node_modules/**"],
    // A temp dir per run, removed at its end (test/global-setup.ts).
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
