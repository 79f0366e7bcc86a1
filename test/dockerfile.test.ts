/**
 * The Dockerfile's structure: what the built-image test (test/image, which
 * must substitute locally made base images since no registry is reachable)
 * cannot see: the distroless runtime base, no shell step in the final stage,
 * only the binary copied in, and every file the build copies existing. The
 * health check command itself is tested in test/e2e/probes.test.ts.
 */
import { describe, expect, it } from "vitest";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { tempDir } from "./helpers/azgate.ts";

const ROOT = path.resolve(import.meta.dirname, "..");

interface Stage {
  from: string;
  name?: string;
  lines: string[];
}

function stages(text: string): Stage[] {
  const out: Stage[] = [];
  const logical = text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  for (const line of logical) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) out.push({ from: from[1], name: from[2], lines: [] });
    else out.at(-1)?.lines.push(line);
  }
  return out;
}

describe("Dockerfile", () => {
  const text = readFileSync(path.join(ROOT, "Dockerfile"), "utf8");
  const all = stages(text);
  const [build, final] = [all[0], all.at(-1)!];

  it("builds the single binary in a build stage", () => {
    expect(all.length).toBeGreaterThanOrEqual(2);
    expect(build.name).toBe("build");
    expect(build.lines).toContain("RUN npm ci --no-audit --no-fund");
    expect(build.lines.some((l) => l.startsWith("RUN npm run build:binary"))).toBe(true);
  });

  it("copies only files that exist in the repository", () => {
    for (const line of build.lines.filter((l) => /^COPY\s/.test(l) && !l.includes("--from"))) {
      const sources = line.split(/\s+/).slice(1, -1);
      for (const s of sources) expect(existsSync(path.join(ROOT, s)), s).toBe(true);
    }
  });

  it("runs as non-root in a minimal final stage with only the binary: no RUN, no npm, no node_modules", () => {
    expect(final.from).toBe("${RUNTIME_IMAGE}");
    expect(text).toMatch(/ARG RUNTIME_IMAGE=gcr\.io\/distroless\/cc-debian12:nonroot/);
    expect(final.lines.filter((l) => /^RUN\s/i.test(l))).toEqual([]);
    expect(final.lines.join("\n")).not.toMatch(/npm|node_modules|\/src\/(?!dist\/azgate)/);
    const copies = final.lines.filter((l) => /^COPY\s/i.test(l));
    expect(copies.every((l) => l.includes("--from=build"))).toBe(true);
    const user = final.lines.find((l) => /^USER\s/i.test(l));
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^USER\s+(root|0)(:|$)/i);
  });

  it("declares the data volume, a health check with azgate itself, and the binary as entrypoint", () => {
    expect(final.lines).toContain('VOLUME ["/var/lib/azgate"]');
    // No --url: healthcheck asks what the mode running on /var/lib/azgate recorded (proxy or agent; test/e2e/probes.test.ts).
    expect(final.lines.find((l) => l.startsWith("HEALTHCHECK"))).toMatch(/CMD \["\/usr\/local\/bin\/azgate", "healthcheck"\]$/);
    expect(final.lines).toContain("ENV AZGATE_DATA_DIR=/var/lib/azgate");
    expect(final.lines).toContain('ENTRYPOINT ["/usr/local/bin/azgate"]');
    expect(readFileSync(path.join(ROOT, ".dockerignore"), "utf8")).toMatch(/^node_modules$/m);
  });

  it("base images are build arguments, so a mirror or a digest (NAME:TAG@sha256:...) can stand in; the defaults are tags, said why", () => {
    expect(text).toMatch(/^ARG BUILD_IMAGE=node:20-bookworm-slim$/m);
    expect(build.from).toBe("${BUILD_IMAGE}");
    expect(text).toContain("Pin\n# them by digest where your build can resolve one (NAME:TAG@sha256:...)");
  });
});

describe("scripts/build-image.sh", () => {
  /** The script with an engine that only records what it is asked (no image is built). */
  function run(env: Record<string, string> = {}) {
    const dir = tempDir("azgate-engine-");
    const log = path.join(dir, "calls");
    writeFileSync(path.join(dir, "engine"), `#!/bin/sh\necho "$*" >> '${log}'\n`, { mode: 0o755 });
    const res = spawnSync("bash", [path.join(ROOT, "scripts/build-image.sh"), "registry.example.com", "1.2.3"], { cwd: ROOT, encoding: "utf8", env: { PATH: process.env.PATH ?? "/usr/bin:/bin", CONTAINER_ENGINE: path.join(dir, "engine"), BUILD_IMAGE: "node:20-bookworm-slim@sha256:" + "a".repeat(64), ...env } });
    expect(res.status, res.stderr).toBe(0);
    return readFileSync(log, "utf8").trim().split("\n");
  }

  it("leaves no untagged image behind: after the build it prunes this project's build stage and the image the tag replaced", () => {
    const calls = run();
    expect(calls[0]).toBe(`build --build-arg BUILD_IMAGE=node:20-bookworm-slim@sha256:${"a".repeat(64)} -t registry.example.com/azgate:1.2.3 .`);
    expect(calls.slice(1)).toEqual(["image prune -f --filter label=org.opencontainers.image.title=azgate", "image prune -f --filter label=org.azgate.stage=build"]);
    // Both labels are the Dockerfile's own: nothing else is pruned.
    const dockerfile = readFileSync(path.join(ROOT, "Dockerfile"), "utf8");
    expect(dockerfile).toContain("LABEL org.azgate.stage=build");
    expect(dockerfile).toContain("LABEL org.opencontainers.image.title=azgate");
  });

  it("KEEP_BUILD_STAGE=1 keeps the build stage as the next build's layer cache", () => {
    expect(run({ KEEP_BUILD_STAGE: "1" }).slice(1)).toEqual(["image prune -f --filter label=org.opencontainers.image.title=azgate"]);
  });
});
