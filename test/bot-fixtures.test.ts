/**
 * The CI files docs/bots.md shows (a GitHub Actions workflow, an Azure
 * DevOps pipeline, their join tokens) are fixtures, parsed here so they
 * cannot rot: the page holds each one verbatim; the join tokens load as
 * azgate loads them; every `azgate bot` line of a job (and of the page and
 * the README) takes only flags the CLI has, with the ones it demands; and
 * each job gives the bot what client/ci-token.ts needs from its CI (GitHub's
 * id-token permission, Azure DevOps' SYSTEM_ACCESSTOKEN mapped in) and
 * matches the join token it names (branch, environment, method).
 */
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import path from "node:path";
import yargs from "yargs";
import { parse } from "yaml";
import { botOptions } from "../src/cli/commands/bot.ts";
import { parseResources } from "../src/resources/parse.ts";
import type { JoinToken } from "../src/resources/join-token.ts";
import { detectJoinMethod } from "../src/client/ci-token.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const fixture = (name: string) => readFileSync(path.join(ROOT, "test/fixtures/bots", name), "utf8");
const GITHUB = fixture("github-actions.yml");
const ADO = fixture("azure-pipelines.yml");
const TOKENS = fixture("join-tokens.yaml");
const PAGE = readFileSync(path.join(ROOT, "docs/bots.md"), "utf8");
const README = readFileSync(path.join(ROOT, "README.md"), "utf8");

const joinTokens = new Map(
  parseResources(TOKENS, "join-tokens.yaml")
    .resources.filter((r): r is JoinToken => r.kind === "token")
    .map((t) => [t.metadata.name, t]),
);

/** The flags each bot command takes, from the CLI's own definitions. */
function flagsOf(extra: (y: ReturnType<typeof yargs>) => unknown): { known: Set<string>; demanded: string[] } {
  const y = yargs([]);
  botOptions(y);
  extra(y);
  const o = (y as unknown as { getOptions(): { key: Record<string, unknown>; alias: Record<string, string[]>; demandedOptions: Record<string, unknown> } }).getOptions();
  const known = new Set([...Object.keys(o.key), ...Object.values(o.alias).flat()]);
  return { known, demanded: Object.keys(o.demandedOptions) };
}
const COMMANDS: Record<string, ReturnType<typeof flagsOf>> = {
  "bot exec": flagsOf((y) => y.option("az-login", { type: "boolean" })),
  "bot proxy azure": flagsOf((y) => y.option("port", { alias: "p", type: "number" }).option("format", { alias: "f", type: "string" })),
};

interface BotLine {
  command: string;
  flags: Record<string, string | true>;
  /** What runs under azgate, after `--`. */
  tool: string[];
}

/** The `azgate bot ...` lines of a shell script (continuations joined), read as the CLI would. */
function botLines(script: string): BotLine[] {
  return script
    .replace(/\\\n\s*/g, " ")
    .split("\n")
    .map((l) => l.replace(/#.*$/, "").trim().replace(/^-?\s*(script|run):\s*/, ""))
    .filter((l) => /^(\(.*&& )?azgate bot /.test(l))
    .map((l) => {
      const words = l.replace(/^\(.*&& /, "").replace(/\)$/, "").split(/\s+/).slice(1);
      const end = words.indexOf("--");
      const head = end < 0 ? words : words.slice(0, end);
      const command = head[1] === "proxy" ? head.slice(0, 3).join(" ") : head.slice(0, 2).join(" ");
      const rest = head.slice(command.split(" ").length);
      const flags: Record<string, string | true> = {};
      for (let i = 0; i < rest.length; i++) {
        const w = rest[i];
        if (!w.startsWith("--")) throw new Error(`${l}: ${w} is no flag`);
        const name = w.slice(2).replace(/^no-/, "");
        flags[name] = w.startsWith("--no-") || rest[i + 1]?.startsWith("--") || i + 1 === rest.length ? true : rest[++i];
      }
      return { command, flags, tool: end < 0 ? [] : words.slice(end + 1) };
    });
}

function expectCliAccepts(line: BotLine, where: string): void {
  const spec = COMMANDS[line.command];
  expect(spec, `${where}: azgate ${line.command} is no command`).toBeDefined();
  for (const f of Object.keys(line.flags)) expect(spec.known.has(f), `${where}: azgate ${line.command} has no --${f}`).toBe(true);
  for (const f of spec.demanded) expect(line.flags[f], `${where}: azgate ${line.command} needs --${f}`).toBeDefined();
  if (line.command === "bot exec") expect(line.tool.length, `${where}: bot exec needs a command after --`).toBeGreaterThan(0);
}

describe("docs/bots.md's CI fixtures", () => {
  it("the page holds the workflow, the pipeline and the join tokens verbatim", () => {
    for (const [name, text] of [["github-actions.yml", GITHUB], ["azure-pipelines.yml", ADO], ["join-tokens.yaml", TOKENS]]) {
      expect(PAGE.includes("```yaml\n" + text + "```"), `docs/bots.md holds test/fixtures/bots/${name} in a yaml block`).toBe(true);
    }
  });

  it("the join tokens load as azgate loads them, and name the bots the jobs join as", () => {
    // parseResources throws on any problem; a warning would be a field azgate ignores.
    expect(parseResources(TOKENS, "join-tokens.yaml").warnings).toEqual([]);
    expect([...joinTokens.keys()].sort()).toEqual(["deploy-ado", "deploy-prod"]);
  });

  it("every azgate bot line of the page, the README and the jobs takes only the CLI's flags", () => {
    const lines = [
      ...botLines(GITHUB).map((l) => [l, "github-actions.yml"] as const),
      ...botLines(ADO).map((l) => [l, "azure-pipelines.yml"] as const),
      ...botLines(PAGE).map((l) => [l, "docs/bots.md"] as const),
      ...botLines(README).map((l) => [l, "README.md"] as const),
    ];
    expect(lines.length).toBeGreaterThan(6);
    for (const [line, where] of lines) expectCliAccepts(line, where);
  });

  it("the GitHub workflow: id-token write, and its runs match the join token it names", () => {
    const wf = parse(GITHUB) as { on: { push: { branches: string[] } }; permissions?: Record<string, string>; jobs: Record<string, { permissions?: Record<string, string>; environment?: string; steps: { run?: string }[] }> };
    let checked = 0;
    for (const [name, job] of Object.entries(wf.jobs)) {
      for (const line of job.steps.flatMap((s) => botLines(s.run ?? ""))) {
        checked++;
        // Without it, GitHub sets no ACTIONS_ID_TOKEN_REQUEST_URL and the bot cannot ask for its token.
        expect((job.permissions ?? wf.permissions)?.["id-token"], `job ${name}: permissions: id-token: write`).toBe("write");
        const token = joinTokens.get(String(line.flags.token));
        expect(token?.spec.join_method, `--token ${line.flags.token} is a github join token`).toBe("github");
        expect(line.flags["join-method"] ?? detectJoinMethod({ GITHUB_ACTIONS: "true" })).toBe("github");
        const rule = token!.spec.github!.allow[0];
        expect(wf.on.push.branches.map((b) => `refs/heads/${b}`)).toContain(rule.ref);
        expect(job.environment).toBe(rule.environment);
      }
    }
    expect(checked).toBe(3);
  });

  it("the Azure DevOps pipeline: SYSTEM_ACCESSTOKEN mapped into each bot step, and the join token it names", () => {
    const pipeline = parse(ADO) as { trigger: { branches: { include: string[] } }; steps: { script?: string; env?: Record<string, string> }[] };
    let checked = 0;
    for (const step of pipeline.steps) {
      for (const line of botLines(step.script ?? "")) {
        checked++;
        // The token service answers only the job's access token, which a script sees only when mapped in.
        expect(step.env?.SYSTEM_ACCESSTOKEN).toBe("$(System.AccessToken)");
        const token = joinTokens.get(String(line.flags.token));
        expect(token?.spec.join_method).toBe("azure_devops");
        expect(line.flags["join-method"] ?? detectJoinMethod({ TF_BUILD: "True" })).toBe("azure_devops");
        expect(pipeline.trigger.branches.include.map((b) => `refs/heads/${b}`)).toContain(token!.spec.azure_devops!.allow[0].repository_ref);
      }
    }
    expect(checked).toBe(1);
  });

  it("the reader catches a flag the CLI does not have", () => {
    const [line] = botLines("azgate bot exec --proxy p:443 --token t --identity x -- az group list");
    expect(() => expectCliAccepts(line, "a typo")).toThrow(/has no --identity/);
  });
});
