import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Deno supports only the forks pool; use it on Node too so both runs behave alike.
    pool: "forks",
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
