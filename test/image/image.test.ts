/**
 * The container image, built for real from the Dockerfile with podman (run by
 * `npm run test:all` with AZGATE_TEST_IMAGE=1; .ci/run installs podman,
 * debootstrap and runc). No registry is reachable here, so the base images
 * are made locally: a minimal Debian by debootstrap stands in for the
 * distroless runtime base, and the same Debian plus this machine's Node and
 * npm stands in for node:20-bookworm-slim. Everything after FROM is the
 * Dockerfile as shipped.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, cpSync, existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { tempDir } from "../helpers/azgate.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const IMAGE = "localhost/azgate:test";
const DEBIAN = "localhost/azgate-test-debian:bookworm";
const NODE_BASE = "localhost/azgate-test-node:20";
const env = { ...process.env, CONTAINERS_CONF: path.join(import.meta.dirname, "containers.conf") };
// runc with cgroupfs: what works in CI sandboxes (crun refuses hybrid cgroups there).
const GLOBAL = ["--runtime", "runc", "--cgroup-manager", "cgroupfs"];

function podman(args: string[], opts: { input?: Buffer; timeoutMs?: number } = {}) {
  const res = spawnSync("podman", [...GLOBAL, ...args], { env, input: opts.input, encoding: "utf8", timeout: opts.timeoutMs ?? 600_000, maxBuffer: 64 * 1024 * 1024 });
  return { code: res.status ?? -1, stdout: res.stdout ?? "", stderr: (res.stderr ?? "") + (res.error ? String(res.error) : "") };
}
const exists = (image: string) => podman(["image", "exists", image]).code === 0;

function buildBases(): void {
  for (const tool of ["podman", "debootstrap", "runc"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) throw new Error(`${tool} is not installed (apt-get install podman debootstrap runc)`);
  }
  if (!exists(DEBIAN)) {
    const rootfs = tempDir("azgate-rootfs-");
    execFileSync("debootstrap", ["--variant=minbase", "bookworm", rootfs, process.env.AZGATE_DEBIAN_MIRROR ?? "http://deb.debian.org/debian"], { stdio: "ignore" });
    const tar = execFileSync("tar", ["-C", rootfs, "-c", "."], { maxBuffer: 1024 * 1024 * 1024 });
    const imported = podman(["import", "-", DEBIAN], { input: tar });
    if (imported.code !== 0) throw new Error(`podman import: ${imported.stderr}`);
  }
  if (!exists(NODE_BASE)) {
    const ctx = tempDir("azgate-node-base-");
    copyFileSync(process.execPath, path.join(ctx, "node"));
    const npmRoot = execFileSync("npm", ["root", "-g"], { encoding: "utf8" }).trim();
    cpSync(path.join(npmRoot, "npm"), path.join(ctx, "npm"), { recursive: true });
    // The registry may sit behind a TLS-intercepting proxy: trust what this machine trusts.
    copyFileSync(existsSync("/etc/ssl/certs/ca-certificates.crt") ? "/etc/ssl/certs/ca-certificates.crt" : "/dev/null", path.join(ctx, "ca.crt"));
    writeFileSync(
      path.join(ctx, "Containerfile"),
      [
        `FROM ${DEBIAN}`,
        "COPY node /usr/local/bin/node",
        "COPY npm /usr/local/lib/node_modules/npm",
        "COPY ca.crt /etc/ssl/certs/ca-certificates.crt",
        "ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
        "RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm && node --version",
      ].join("\n"),
    );
    const built = podman(["build", "--isolation", "chroot", "-t", NODE_BASE, ctx]);
    if (built.code !== 0) throw new Error(`node base: ${built.stderr}`);
  }
}

/**
 * Every build leaves the image it replaced and its untagged build stage
 * behind (about 1.3 GB a run): remove them, keeping the newest build stage
 * as the next build's layer cache.
 */
function pruneOldBuilds(): void {
  const dangling = (label: string) =>
    podman(["images", "--filter", "dangling=true", "--filter", `label=${label}`, "--format", "{{.ID}} {{.CreatedAt}}"])
      .stdout.trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => ({ id: l.split(" ")[0], created: l.slice(l.indexOf(" ") + 1) }));
  const stages = dangling("org.azgate.stage=build").sort((a, b) => b.created.localeCompare(a.created));
  const old = [...dangling("org.opencontainers.image.title=azgate"), ...stages.slice(1)].map((i) => i.id);
  if (old.length) podman(["rmi", "-f", ...old]);
}

describe("container image, built with podman", () => {
  let build: { code: number; stdout: string; stderr: string };
  const containers: string[] = [];

  beforeAll(() => {
    buildBases();
    // Built by the script docs/deploying.md gives (scripts/build-image.sh REGISTRY TAG), with this sandbox's podman flags.
    const res = spawnSync("bash", [path.join(ROOT, "scripts/build-image.sh"), "localhost", "test"], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 900_000,
      maxBuffer: 64 * 1024 * 1024,
      // KEEP_BUILD_STAGE: the newest build stage stays as the next run's layer cache (pruneOldBuilds keeps only it).
      env: { ...env, CONTAINER_ENGINE: ["podman", ...GLOBAL].join(" "), CONTAINER_BUILD_FLAGS: "--isolation chroot --format docker", BUILD_IMAGE: NODE_BASE, RUNTIME_IMAGE: DEBIAN, KEEP_BUILD_STAGE: "1" },
    });
    build = { code: res.status ?? -1, stdout: res.stdout, stderr: res.stderr };
  }, 900_000);
  afterAll(() => {
    for (const c of containers) podman(["rm", "-f", c]);
    pruneOldBuilds();
  });

  it("builds from the Dockerfile, tagged for the registry given to scripts/build-image.sh", () => {
    expect(build.code, build.stdout.slice(-3000) + build.stderr.slice(-3000)).toBe(0);
    expect(build.stdout).toContain("Built localhost/azgate:test. Charts: --set image.repository=localhost/azgate --set image.tag=test");
  });

  it("runs as non-root with the data volume, the health check and the binary as entrypoint", () => {
    const inspect = podman(["image", "inspect", IMAGE, "--format", "{{json .Config}}"]);
    const config = JSON.parse(inspect.stdout) as { User: string; Volumes: Record<string, unknown>; Entrypoint: string[] };
    // podman keeps a Docker-format HEALTHCHECK beside the config.
    const health = JSON.parse(podman(["image", "inspect", IMAGE, "--format", "{{json .HealthCheck}}"]).stdout) as { Test: string[] } | null;
    expect(config.User).toBe("65532:65532");
    expect(Object.keys(config.Volumes)).toEqual(["/var/lib/azgate"]);
    expect(config.Entrypoint).toEqual(["/usr/local/bin/azgate"]);
    expect(health?.Test).toEqual(["CMD", "/usr/local/bin/azgate", "healthcheck"]);
    const files = podman(["run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", IMAGE, "-c", "ls /usr/local/bin; id -u; test -e /src && echo has-src || echo no-src; command -v npm || echo no-npm"]);
    expect(files.stdout.split("\n")).toEqual(expect.arrayContaining(["azgate", "65532", "no-src", "no-npm"]));
  });

  it("demo --check passes inside the container with no network", () => {
    const res = podman(["run", "--rm", "--network", "none", IMAGE, "demo", "--check"], { timeoutMs: 120_000 });
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toContain("every step passed");
  });

  it("starts the proxy by default, reports healthy through azgate healthcheck, and stops cleanly", async () => {
    const name = `azgate-test-${process.pid}`;
    containers.push(name);
    const started = podman(["run", "-d", "--name", name, "--network", "none", IMAGE]);
    expect(started.code, started.stderr).toBe(0);
    let health = podman(["exec", name, "/usr/local/bin/azgate", "healthcheck"]);
    for (let i = 0; i < 40 && health.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 500));
      health = podman(["exec", name, "/usr/local/bin/azgate", "healthcheck"]);
    }
    expect(health.code, health.stderr + podman(["logs", name]).stdout).toBe(0);
    expect(health.stdout).toContain("https://127.0.0.1:3080/readyz: ok");
    expect(podman(["stop", "-t", "20", name]).code).toBe(0);
    const logs = podman(["logs", name]);
    expect(logs.stdout).toContain("azgate proxy stopped.");
    expect(podman(["inspect", name, "--format", "{{.State.ExitCode}}"]).stdout.trim()).toBe("0");
  });
});
