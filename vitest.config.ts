import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Deno supports only the forks pool; use it on Node too so both runs behave alike.
    pool: "forks",
    // The single binary's smoke test runs on its own, after the build (scripts/test-all.mjs).
    include: process.env.AZGATE_TEST_BINARY ? ["test/binary/**/*.test.ts"] : ["test/**/*.test.ts"],
    exclude: process.env.AZGATE_TEST_BINARY ? [] : ["test/binary/**", "node_modules/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
