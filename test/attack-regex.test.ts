/**
 * Regular expressions (`^...$`) wherever a rule reads them are RE2's, matched
 * in linear time (src/util/regex.ts), where a JavaScript RegExp backtracks:
 * `^(a+)+$` against forty `a`s and a `b` takes 2^40 steps. Each case below
 * puts such a pattern where a caller or an identity provider has a hand in
 * it (a deny rule's trait, a request's path, a ticket, a request's reason, a
 * claim) and expects an answer, not a stall: with RegExp each of them runs
 * past the test's timeout. RE2 is linear in the value but not in the
 * pattern, so a trait never writes a regular expression (rbac/template.ts):
 * inside one it is a literal; a value it makes one takes nothing in an allow
 * and makes a deny apply (fail closed). KELVIN SIGN stays apart from `k`, as
 * ARM keeps it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useEmulator } from "./helpers/emulator.ts";
import { IDENTITY } from "./helpers/cluster.ts";
import { startMemoryCluster, type MemoryCluster } from "./helpers/memory-cluster.ts";
import { compilePredicate } from "../src/rbac/predicate.ts";
import { rolesFromTeams, rolesFromTraits } from "../src/sso/mapping.ts";
import { expandAll, expandAllow, TRAIT_REGEX } from "../src/rbac/template.ts";
import { matchLabels, matchLabelValue } from "../src/rbac/labels.ts";
import { decideAzureApi, globMatch as ruleGlob, scopeCovers } from "../src/rbac/azure-api.ts";
import { readRequest } from "../src/azure/operation.ts";
import { requestTerms } from "../src/rbac/requests.ts";
import type { Role } from "../src/rbac/types.ts";
import { parseResources } from "../src/resources/parse.ts";
import { compilePattern, Re2Pattern } from "../src/util/regex.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");
const SUB = "/subscriptions/00000000-0000-0000-0000-000000000000";
const GROUPS = `https://management.azure.com${SUB}/resourcegroups?api-version=2022-09-01`;
/** Forty `a`s and a `b`: what `^(a+)+$` backtracks on exponentially. */
const HOSTILE_VALUE = "a".repeat(40) + "b";
const HOSTILE = "^(a+)+$";
/** A lookahead: a JavaScript RegExp, not an RE2 one. */
const UNREADABLE = "^(?=a).*$";

describe("attack: trait-made regular expressions on the request path", () => {
  let c: MemoryCluster;
  let n = 0;
  beforeAll(async () => {
    c = await startMemoryCluster(fx);
    c.agent({ labels: { env: HOSTILE_VALUE } });
  }, 60_000);
  afterAll(() => c?.close());

  const session = async (spec: string, traits: Record<string, string[]>) => {
    const name = `rx-${++n}`;
    await c.createRoles(`kind: role\nversion: v7\nmetadata: {name: ${name}}\nspec: ${spec}\n`);
    return { user: name, app: () => c.appSession(name, [name], READER, { traits: { azure_identities: [READER], ...traits } }) };
  };
  const allowAll = `allow: {app_labels: {'*': '*'}, azure_identities: ['${READER}']}`;
  const denials = async (event: string, user: string) => (await c.ctx.audit.search({ event })).filter((e) => e.user === user);

  it.each([
    ["one that backtracks", HOSTILE],
    ["one RE2 cannot read", UNREADABLE],
  ])("a deny rule's label value that a trait makes a regular expression (%s): not run; the deny applies (fail closed), refused and audited", async (_what, trait) => {
    const { user, app } = await session(`{${allowAll}, deny: {app_labels: {env: '{{internal.env}}'}}}`, { env: [trait] });
    // Refused at apps login, as a deny of the app always is: the user is told "not found", the log why.
    await expect(app()).rejects.toThrow(/not found/);
    expect(await denials("app.session.denied", user)).toEqual([expect.objectContaining({ success: false, error_code: "not_found", reason: `role "${user}" denies app "azure-cli"` })]);
  });

  it("a trait inside a deny rule's regular expression is a literal: a backtracking one is not run, and matches only itself", async () => {
    const { app } = await session(`{${allowAll}, deny: {app_labels: {env: '^{{internal.env}}$'}}}`, { env: ["(a+)+b"] });
    expect((await (await app()).request(GROUPS)).status).toBe(200);
  });

  it("a trait inside an azure_api deny rule's path pattern is a literal: judged at once against a long path, forwarded", async () => {
    const { app } = await session(`{${allowAll}, deny: {azure_api: [{hosts: [management.azure.com], paths: ['^${SUB}/resourcegroups/{{internal.p}}$']}]}}`, { p: ["(a+)+"] });
    // The emulator has no such group: a 404 from Azure is an answer the deny did not stop.
    const res = await (await app()).request(`https://management.azure.com${SUB}/resourcegroups/${HOSTILE_VALUE}?api-version=2022-09-01`);
    expect(res.status).toBe(404);
  });

  it("an app name that is no app's (here 100 KB) is refused before anything is judged or written to the log", async () => {
    const name = `rx-${++n}`;
    await c.createRoles(`kind: role\nversion: v7\nmetadata: {name: ${name}}\nspec: {${allowAll}}\n`);
    await expect(c.appSession(name, [name], READER, { app: "a".repeat(100_000) })).rejects.toMatchObject({ code: "bad_parameter" });
    expect((await c.ctx.audit.search({ event: "app.session.denied" })).filter((e) => e.user === name)).toEqual([]);
  });
});

describe("attack: regular expressions a caller's value meets elsewhere", () => {
  it("an access rule's regexp.match against the requester's reason: an answer, false", () => {
    const p = compilePredicate(`regexp.match(request.reason, "${HOSTILE}")`);
    expect(p.test({ "request.reason": HOSTILE_VALUE })).toBe(false);
    expect(p.test({ "request.reason": "aaaa" })).toBe(true);
  });

  it("a connector's claims_to_roles value against an identity provider's claim: an answer, no role", () => {
    const rules = [{ name: "groups", value: HOSTILE, roles: ["admin"] }];
    expect(rolesFromTraits(rules, { groups: [HOSTILE_VALUE] })).toEqual([]);
    expect(rolesFromTraits(rules, { groups: ["aaaa"] })).toEqual(["admin"]);
  });

  it("a trait never writes a regular expression: escaped inside one (- too), and a value it makes one takes nothing in an allow and applies in a deny", () => {
    expect(matchLabels({ env: "^{{internal.env}}$" }, { env: "(?=a)" }, { env: ["(?=a)"] }, "allow")).toBe(true);
    // `-` from a trait is not a range in an administrator's class.
    expect(matchLabels({ env: "^[{{internal.env}}]$" }, { env: "m" }, { env: ["a-z"] }, "allow")).toBe(false);
    expect(matchLabels({ env: "^[{{internal.env}}]$" }, { env: "-" }, { env: ["a-z"] }, "allow")).toBe(true);
    for (const trait of [UNREADABLE, "^.*$"]) {
      expect(matchLabels({ env: "{{internal.env}}" }, { env: "a" }, { env: [trait] }, "allow")).toBe(false);
      expect(matchLabels({ env: "{{internal.env}}" }, { env: "a" }, { env: [trait] }, "deny")).toBe(true);
    }
    // A `^` the trait brings to a value the administrator ended with `$`: an allow took `^.+-dev$` as a regular expression.
    expect(expandAllow(["{{internal.team}}-dev$"], { team: ["^.+"] })).toEqual([]);
    expect(matchLabels({ team: "{{internal.team}}-dev$" }, { team: "payroll-dev" }, { team: ["^.+"] }, "allow")).toBe(false);
    expect(expandAll(["{{internal.team}}-dev$"], { team: ["^.+"] })).toEqual([TRAIT_REGEX]);
    expect(matchLabels({ team: "{{internal.team}}-dev$" }, { team: "payroll-dev" }, { team: ["^.+"] }, "deny")).toBe(true);
  });

  it("GitHub teams_to_roles: the team pattern is matched without case, not lowered (a lowered \\D is \\d), and RE2's syntax works", () => {
    const rules = (team: string) => [{ organization: "Acme", team, roles: ["r"] }];
    expect(rolesFromTeams(rules("^eng-\\D+$"), [{ organization: "acme", team: "eng-123" }])).toEqual([]);
    expect(rolesFromTeams(rules("^eng-\\D+$"), [{ organization: "ACME", team: "ENG-abc" }])).toEqual(["r"]);
    expect(rolesFromTeams(rules("^\\pL+$"), [{ organization: "acme", team: "Ops" }])).toEqual(["r"]);
    expect(rolesFromTeams(rules("ops"), [{ organization: "acme", team: "OPS" }])).toEqual(["r"]);
    // KELVIN SIGN is not k here either.
    expect(rolesFromTeams(rules("kube"), [{ organization: "acme", team: "\u212Aube" }])).toEqual([]);
  });
});

describe("RE2 syntax, as Teleport's role files are written", () => {
  it("loads Teleport's inline flags and refuses what RE2 has not (look-around, back-references), saying so", () => {
    const role = (v: string) => `kind: role\nversion: v7\nmetadata: {name: r}\nspec: {allow: {app_labels: {env: '${v}'}}}\n`;
    expect(() => parseResources(role("^(?i)prod$"), "test")).not.toThrow();
    expect(matchLabelValue("^(?i)prod$", "PROD")).toBe(true);
    expect(() => parseResources(role("^(?=p)rod$"), "test")).toThrow(/invalid regular expression \^\(\?=p\)rod\$ \(RE2 syntax, as Teleport's: .*Perl syntax/);
    expect(() => parseResources(role("^(a)\\1$"), "test")).toThrow(/invalid regular expression.*RE2 syntax.*escape/);
    // A counted repeat multiplies what it repeats: 6,000 instructions is past the bound.
    expect(() => parseResources(role("^a{1000}b{1000}c{1000}d{1000}e{1000}f{1000}$"), "test")).toThrow(/too large: \d+ instructions, at most 2000/);
    expect(() => parseResources(role("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"), "test")).not.toThrow();
  });

  it("KELVIN SIGN and LONG S stay apart from k and s, with case or without (ARM compares ordinally)", () => {
    expect(ruleGlob("^/subscriptions/.*/resourcegroups/k.*$", `${SUB}/resourcegroups/\u212Aube-prod`, "any")).toBe(false);
    expect(ruleGlob("^/subscriptions/.*/resourcegroups/k.*$", `${SUB}/resourcegroups/Kube-prod`, "any")).toBe(true);
    expect(matchLabelValue("^(?i)s$", "\u017F")).toBe(false);
    expect(matchLabelValue("^(?i)s$", "S")).toBe(true);
    // A KELVIN SIGN in the pattern (a trait escaped into an allow, say) matches a KELVIN SIGN, not k: "\u212Aate" is not kate.
    expect(matchLabels({ owner: "^(?i){{internal.name}}$" }, { owner: "kate" }, { name: ["\u212Aate"] }, "allow")).toBe(false);
    expect(matchLabels({ owner: "^(?i){{internal.name}}$" }, { owner: "\u212Aate" }, { name: ["\u212Aate"] }, "allow")).toBe(true);
    // Still a character: `.` takes it.
    expect(compilePattern("^.ube$")!.test("\u212Aube")).toBe(true);
  });
});

describe("what a compiled pattern keeps", () => {
  it("no DFA state cache grows with the values it meets (RE2's is up to 8 MB a pattern): matching leaves the pattern as compiled", () => {
    const dfaOf = (p: Re2Pattern) => (p.re.re2() as unknown as { lazyDFA: unknown }).lazyDFA;
    // A pattern whose DFA has 2^16 states, and values that visit many of them.
    const p = compilePattern("^(a|b)*a(a|b){15}$") as Re2Pattern;
    for (let i = 0; i < 20; i++) p.test(Array.from({ length: 2_000 }, (_, j) => ((i * 7919 + j * 31) % 3 ? "a" : "b")).join(""));
    // The 16th letter from the end is an a, or not.
    expect(p.test("a" + "b".repeat(15))).toBe(true);
    expect(p.test("b".repeat(16))).toBe(false);
    expect(dfaOf(p)).toBeNull();
    // The engine's test() would have built one: the reason Re2Pattern does not use it.
    p.re.test("ab".repeat(1_000));
    expect(dfaOf(p)).not.toBeNull();
  });
});

describe("attack, second round: what loads is what runs, and a scope is matched once", () => {
  const roleWith = (spec: string) => `kind: role\nversion: v7\nmetadata: {name: r}\nspec: ${spec}\n`;

  it("a pattern is checked as it runs, with case and without: one small with case but past the bound without is refused at load", () => {
    // (?-i:x)|x is one branch with case, two without: 1,225 instructions with case, 2,325 without.
    const p = "^/s/resourcegroups(?:/(?:(?-i:abcdefghij)|abcdefghij)){0,100}(?:/.*)?$";
    expect(() => parseResources(roleWith(`{deny: {azure_api: [{hosts: [management.azure.com], paths: ['${p}']}]}}`), "test")).toThrow(/too large: 2325 instructions, at most 2000/);
    // And a deny that nonetheless meets one (made some other way) applies.
    expect(ruleGlob(p, "/s/resourcegroups", "any")).toBe(false);
  });

  it("a scope's regular expression is matched once over the ID, as trying each ancestor meant, and linear in a long one", () => {
    // The old meaning: the pattern matches the ID or one of its ancestors (on segment boundaries).
    const byAncestors = (p: string, scope: string) => {
      const segments = scope.split("/").filter(Boolean);
      const id = "/" + segments.join("/");
      for (let end = segments.length ? id.length : 0; end > 0; end = id.lastIndexOf("/", end - 1)) if (ruleGlob(p, id.slice(0, end), "segment")) return true;
      return false;
    };
    const patterns = ["^/subscriptions/[^/]+/resourceGroups/prod-.*$", "^/subscriptions/(a|b)/resourcegroups/x$", "^/[ab]+(/c)*$", "^/a/.*/d$", "^/(?i)A/B$", "^/.*$"];
    const scopes = ["/subscriptions/a/resourceGroups/x", "/subscriptions/a/resourcegroups/x/providers/p/t/n", "/subscriptions/s/resourceGroups/prod-1/providers/x", "/ab/c/c/d", "/a/b/c/d/e", "/a/b", "/A/b/c", "/c"];
    for (const p of patterns) for (const s of scopes) expect(scopeCovers(p, s), `${p} over ${s}`).toBe(byAncestors(p, s));
    // 4,000 one-letter segments (8 KB): the ancestors tried one by one were 4,000 matches of up to 8 KB each.
    const deep = "/a".repeat(4_000);
    expect(scopeCovers("^/subscriptions/[^/]+/resourceGroups/.*$", deep)).toBe(false);
    expect(scopeCovers("^/a/a$", deep)).toBe(true);
  });

  it("a scope regular expression with anchors inside, or one that takes an empty scope, is refused at load (and matches nothing)", () => {
    const scopeRole = (p: string) => roleWith(`{allow: {azure_api: [{actions: ['*/read'], scopes: ['${p}']}]}}`);
    expect(() => parseResources(scopeRole("^/subscriptions/a$|^/subscriptions/b$"), "test")).toThrow(/no anchors inside \(\^\(a\|b\)\$, not \^a\$\|\^b\$\)/);
    expect(() => parseResources(scopeRole("^.*$"), "test")).toThrow(/must not match an empty scope/);
    expect(() => parseResources(scopeRole("^/subscriptions/[^/]+/resourceGroups/(a|b)$"), "test")).not.toThrow();
    expect(scopeCovers("^/subscriptions/a$|^/subscriptions/b$", "/subscriptions/b/resourceGroups/x")).toBe(false);
  });

  it("a {{...}} template right after \\ or { in a regular expression is refused at load: the trait's text would be read with it", () => {
    expect(() => parseResources(roleWith(`{allow: {app_labels: {n: '^x{{{internal.n}}}$'}}}`), "test")).toThrow(/template right after/);
    expect(() => parseResources(roleWith(`{allow: {app_labels: {n: '^x\\\\{{internal.c}}$'}}}`), "test")).toThrow(/template right after/);
    expect(() => parseResources(roleWith(`{allow: {app_labels: {n: '^x-{{internal.c}}$'}}}`), "test")).not.toThrow();
  });

  it("a requested role's allowed identities read the requester's traits as an allow does: a trait does not pick the identity to request", () => {
    const PROD = `${SUB}/resourceGroups/prod/providers/Microsoft.ManagedIdentity/userAssignedIdentities/deployer`;
    const deployer = parseResources(roleWith(`{allow: {azure_identities: ['{{external.scope}}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/deployer']}}`).replace("name: r", "name: deployer"), "test").resources[0] as Role;
    const requester = parseResources(roleWith(`{allow: {request: {roles: [deployer]}}}`).replace("name: r", "name: requester"), "test").resources[0] as Role;
    const lookup = (n: string) => (n === "deployer" ? deployer : undefined);
    const terms = requestTerms([requester], { scope: [`${SUB}/resourceGroups/prod`] }, PROD, lookup);
    expect(terms.allowed).toBe(false);
  });

  it("notification filters and GitHub team patterns are checked as they load, as every other pattern is", () => {
    const target = `kind: notification_target\nversion: v1\nmetadata: {name: t}\nspec: {type: webhook, url: 'https://example.com/h', events: [access_request.created], filter: {apps: ['^(?=a).*$']}}\n`;
    expect(() => parseResources(target, "test")).toThrow(/filter\.apps: invalid regular expression/);
    const github = `kind: github\nversion: v3\nmetadata: {name: gh}\nspec: {client_id: x, client_secret: y, teams_to_roles: [{organization: acme, team: '^(?=a)admins$', roles: [access]}]}\n`;
    expect(() => parseResources(github, "test")).toThrow(/invalid regular expression/);
  });
});

describe("roles stored before this release (read from the backend as they were, not loaded again)", () => {
  const S0 = "/subscriptions/00000000-0000-0000-0000-000000000000";
  const MI = `${S0}/resourceGroups/ops/providers/Microsoft.ManagedIdentity/userAssignedIdentities/prod-contributor`;
  const app = { name: "azure-cli", labels: { env: "prod" } };
  const allow: Role = { kind: "role", version: "v7", metadata: { name: "allow" }, spec: { allow: { app_labels: { "*": "*" }, azure_identities: [MI] } } };
  const denyWith = (field: Record<string, unknown>): Role => ({ kind: "role", version: "v7", metadata: { name: "old-deny" }, spec: { deny: { azure_api: [field as never] } } });
  const decide = (roles: Role[]) => {
    const u = new URL(`https://management.azure.com${S0}/resourceGroups/ops?api-version=2022-09-01`);
    return decideAzureApi(roles, {}, app, MI, readRequest({ method: "GET", host: u.host, path: u.pathname, query: u.searchParams, headers: [] }, "Azure"));
  };

  it.each([
    ["a scope regex with anchors inside", { actions: ["*"], scopes: [`^${S0}/resourceGroups/x$|^${S0}/resourceGroups/ops$`] }],
    ["a scope regex that takes an empty scope", { actions: ["*"], scopes: ["^.*$"] }],
    ["a JavaScript look-ahead", { actions: ["*"], scopes: [`^${S0}(?=/).*$`] }],
    ["a pattern past the bound", { actions: ["^(?:Microsoft\\.Resources/subscriptions/resourceGroups/read|" + "x".repeat(2_100) + ")$"] }],
  ])("a deny with %s, which loading now refuses, still applies (fail closed)", (_what, rule) => {
    expect(decide([allow])).toMatchObject({ outcome: "unrestricted" });
    expect(decide([allow, denyWith(rule)])).toMatchObject({ outcome: "deny" });
  });
});

describe("the proxy's start: what an earlier release stored that this one would not load is named", () => {
  it("each such role, connector and notification target is listed with its problems; what loads is not", async () => {
    const { openState, settingsFrom } = await import("../src/proxy/state.ts");
    const { configSchema } = await import("../src/config/schema.ts");
    const { KEYS } = await import("../src/proxy/keys.ts");
    const { storedResourcesNotLoading } = await import("../src/proxy/stored-check.ts");
    const { tempDir } = await import("./helpers/azgate.ts");
    const { ctx, close } = await openState(tempDir("azgate-stored-"), { clusterName: "t", settings: settingsFrom(configSchema.parse({})), purpose: "stored check", clock: new (await import("./helpers/fake-clock.ts")).FakeClock() });
    try {
      const role = (name: string, spec: unknown) => ({ kind: "role", version: "v7", metadata: { name }, spec });
      await ctx.backend.put(KEYS.role("fine"), role("fine", { allow: { app_labels: { env: "^(?i)prod$" } } }));
      await ctx.backend.put(KEYS.role("old-scope"), role("old-scope", { deny: { azure_api: [{ actions: ["*"], scopes: ["^.*$"] }] } }));
      await ctx.backend.put(KEYS.role("old-lookahead"), role("old-lookahead", { allow: { app_labels: { env: "^(?=p)rod$" } } }));
      await ctx.backend.put(KEYS.notificationTarget("t"), { kind: "notification_target", version: "v1", metadata: { name: "t" }, spec: { type: "webhook", url: "https://example.com/h", filter: { apps: ["^(a)\\1$"] } } });
      const lines = await storedResourcesNotLoading(ctx);
      expect(lines).toEqual([
        expect.stringMatching(/^role "old-lookahead": .*invalid regular expression \^\(\?=p\)rod\$/),
        expect.stringMatching(/^role "old-scope": .*must not match an empty scope/),
        expect.stringMatching(/^notification_target "t": .*filter\.apps: invalid regular expression/),
      ]);
    } finally {
      await close();
    }
  });
});
