import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Deno supports only the forks pool; use it on Node too so both runs behave alike.
    pool: "forks",
    // The single binary's smoke test and the container image test run on their own (scripts/test-all.mjs).
    include: process.env.AZGATE_TEST_BINARY ? ["test/binary/**/*.test.ts"] : process.env.AZGATE_TEST_IMAGE ? ["test/image/**/*.test.ts"] : ["test/**/*.test.ts"],
    exclude: process.env.AZGATE_TEST_BINARY || process.env.AZGATE_TEST_IMAGE ? [] : ["test/binary/**", "test/image/**", "node_modules/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
