// npm run build:deno: dist/azgate-deno with `deno compile`. It downloads the
// Deno runtime it embeds (denort) from dl.deno.land, so it works only where
// that is reachable; elsewhere this says so and points to build:binary.
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const deno = path.join(root, "node_modules/.bin/deno");
mkdirSync(path.join(root, "dist"), { recursive: true });
const res = spawnSync(deno, ["compile", "-A", "--output", path.join(root, "dist/azgate-deno"), path.join(root, "cmd/azgate.ts")], { encoding: "utf8", cwd: root, timeout: 300_000 });
process.stdout.write(res.stdout ?? "");
if (res.status === 0) {
  console.log("built dist/azgate-deno");
  process.exit(0);
}
const output = `${res.stderr ?? ""}${res.error ? res.error.message : ""}`;
process.stderr.write(output);
if (/dl\.deno\.land|denort|download|dns error|Connection refused|timed out|network/i.test(output)) {
  console.error(
    "\nERROR: deno compile could not download the Deno runtime it embeds (from https://dl.deno.land); this machine cannot reach it.\n" +
      "Run npm run build:deno where that host is reachable, or use npm run build:binary (a Node single executable, built offline).",
  );
} else {
  console.error(`\nERROR: deno compile failed (exit ${res.status}).`);
}
process.exit(1);
