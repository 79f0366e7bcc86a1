/**
 * dist/azgate, built again (npm run build:binary) when any file it is made
 * from is newer than it: the sources, the entry point, the build script and
 * the lock file. A run of the tests always spawns this checkout's code.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "../..");
const BINARY = path.join(ROOT, "dist/azgate");
const INPUTS = ["src", "cmd", "scripts/binary", "scripts/binary-entry.ts", "scripts/build-binary.mjs", "package-lock.json"];

export function freshBinary(): string {
  const built = mtimeOrZero(BINARY);
  if (INPUTS.some((p) => newestUnder(path.join(ROOT, p)) > built)) execFileSync(process.execPath, [path.join(ROOT, "scripts/build-binary.mjs")], { stdio: ["ignore", "ignore", "inherit"] });
  return BINARY;
}

function newestUnder(p: string): number {
  const st = statSync(p, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(st.mtimeMs, ...readdirSync(p).map((name) => newestUnder(path.join(p, name))));
}

function mtimeOrZero(p: string): number {
  return statSync(p, { throwIfNoEntry: false })?.mtimeMs ?? 0;
}
