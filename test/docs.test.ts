/**
 * The documentation a newcomer reads is true where a machine can tell: every
 * relative link and #anchor in README.md and docs/ resolves, every page in
 * docs/ is in its index, the README's set-up commands are the ones CI runs,
 * and every command block marked runnable (```sh runnable, docs/README.md
 * says how) runs against the demo and exits 0.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { anchors, links, markdownFiles, splitFences } from "./helpers/markdown.ts";
import { azgateCommand, tempDir } from "./helpers/azgate.ts";
import { runCommand } from "./helpers/run.ts";
import { startDemo, type RunningDemo } from "../src/demo/start.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
// The README first, then docs/ by path: the order the runnable blocks run in.
const FILES = [path.join(ROOT, "README.md"), ...markdownFiles(path.join(ROOT, "docs"))];
const read = (file: string) => splitFences(readFileSync(file, "utf8"));
const rel = (file: string) => path.relative(ROOT, file);

describe("links and anchors", () => {
  it.each(FILES.map(rel))("%s: every relative link names a file that exists, every #anchor a heading in it", (name) => {
    const file = path.join(ROOT, name);
    const broken: string[] = [];
    for (const { target, line } of links(read(file).prose)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: ...: not ours to check offline
      const [pathPart, anchor] = target.split("#", 2);
      const to = pathPart ? path.resolve(path.dirname(file), decodeURI(pathPart)) : file;
      if (!existsSync(to)) broken.push(`${name}:${line}: ${target}: no such file`);
      else if (anchor !== undefined && !(to.endsWith(".md") && statSync(to).isFile() && anchors(read(to).prose).has(anchor))) broken.push(`${name}:${line}: ${target}: no heading with that anchor in ${rel(to)}`);
    }
    expect(broken).toEqual([]);
  });

  it("reads anchors as GitHub makes them", () => {
    const prose = "# azgate: architecture\n## 7. Time\n## What it costs: `npm run bench`\n### `azgate roles explain`\n## Where each rule lives (once)\n## Audit\n## Audit\n";
    expect([...anchors(prose)]).toEqual(["azgate-architecture", "7-time", "what-it-costs-npm-run-bench", "azgate-roles-explain", "where-each-rule-lives-once", "audit", "audit-1"]);
    const fenced = splitFences("## Real\n```yaml\n# not a heading\n```\n[a](b.md#x) `[c](d.md)`\n");
    expect([...anchors(fenced.prose)]).toEqual(["real"]);
    expect(links(fenced.prose)).toEqual([{ target: "b.md#x", line: 5 }]);
  });

  it("docs/README.md links every page in docs/", () => {
    const index = path.join(ROOT, "docs/README.md");
    const linked = new Set(links(read(index).prose).map(({ target }) => path.resolve(ROOT, "docs", target.split("#")[0])));
    expect(FILES.filter((f) => f.startsWith(path.join(ROOT, "docs")) && f !== index && !linked.has(f)).map(rel)).toEqual([]);
  });

  it("the README gives the two set-up commands, and .ci/run runs the test one", () => {
    const commands = read(path.join(ROOT, "README.md")).fences.filter((f) => f.info === "sh").map((f) => f.body.trim());
    expect(commands).toEqual(expect.arrayContaining(["npm ci && npm run demo", "npm ci && npm run test:all"]));
    const ci = readFileSync(path.join(ROOT, ".ci/run"), "utf8");
    expect(ci).toMatch(/^npm ci\b/m);
    expect(ci).toMatch(/^npm run test:all$/m);
  });
});

const RUNNABLE = FILES.flatMap((file) => read(file).fences.filter((f) => f.info === "sh runnable").map((f) => ({ where: `${rel(file)}:${f.line}`, body: f.body })));

// The time-travel run takes the in-process files (test/*.test.ts); this part spawns the CLI and az, as the
// end-to-end files do, which that run leaves out.
describe.skipIf(!!process.env.AZGATE_TEST_IN_PROCESS)("runnable command blocks, against the demo", () => {
  let demo: RunningDemo;
  const dir = tempDir("azgate-docs-");
  // As `azgate demo` lays it out: the home inside the data dir, so a block reaches the proxy's as $AZGATE_HOME/../proxy.
  const dataDir = path.join(dir, "demo");
  const home = path.join(dataDir, "home");
  const bin = path.join(dir, "bin");

  beforeAll(async () => {
    demo = await startDemo({ dataDir, port: 0, home, log: () => undefined });
    // `azgate` on PATH runs this checkout, on the runtime running the tests (what the demo's `alias azgate=` does).
    const [cmd, args] = azgateCommand([]);
    mkdirSync(bin, { recursive: true });
    writeFileSync(path.join(bin, "azgate"), `#!/bin/sh\nexec ${[cmd, ...args].map((a) => `'${a}'`).join(" ")} "$@"\n`, { mode: 0o755 });
  }, 120_000);

  afterAll(() => demo?.close());

  it("the docs mark some blocks runnable", () => {
    expect(RUNNABLE.length).toBeGreaterThanOrEqual(3);
  });

  it.each(RUNNABLE.map((b) => [b.where, b.body]))("%s exits 0", async (_where, body) => {
    // A block that fails before `eval "$(azgate env --unset)"` would leave its background proxy running.
    const script = `set -e\ntrap '[ -n "$AZGATE_ENV_PID" ] && kill "$AZGATE_ENV_PID" 2>/dev/null || true' EXIT\n${body}\n`;
    const res = await runCommand("/bin/sh", ["-c", script], { PATH: `${bin}:${process.env.PATH}`, HOME: home, AZGATE_HOME: home, TMPDIR: process.env.TMPDIR ?? "/tmp", NO_COLOR: "1" });
    expect(res.code, `${res.stdout}\n${res.stderr}`).toBe(0);
  }, 180_000);
});
