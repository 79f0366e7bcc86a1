/**
 * Builds a Go client from test/clients with Debian's Go and its packaged
 * go-autorest, offline (GOPATH mode, as Debian's -dev packages are laid out).
 */
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "../..");

export function buildGoClient(name: string): string {
  const out = path.join(ROOT, ".test-results/go-bin", name);
  const cache = path.join(ROOT, ".test-results/gocache");
  mkdirSync(cache, { recursive: true });
  const res = spawnSync("go", ["build", "-o", out, `./test/clients/${name}`], {
    cwd: ROOT,
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: cache, GO111MODULE: "off", GOPATH: "/usr/share/gocode", GOCACHE: cache, GOFLAGS: "" },
    timeout: 300_000,
  });
  if (res.status !== 0) throw new Error(`go build ${name} failed (install golang-go and golang-github-azure-go-autorest-dev):\n${res.stderr}${res.error?.message ?? ""}`);
  return out;
}
