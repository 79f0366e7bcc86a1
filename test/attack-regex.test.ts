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
import { targetHears } from "../src/resources/notification-target.ts";
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

describe("attack, second round: what loads is what runs, and a scope's cost is bounded", () => {
  const roleWith = (spec: string) => `kind: role\nversion: v7\nmetadata: {name: r}\nspec: ${spec}\n`;

  it("a pattern is checked as it runs, with case and without: one small with case but past the bound without is refused at load", () => {
    // (?-i:x)|x is one branch with case, two without: 1,225 instructions with case, 2,325 without.
    const p = "^/s/resourcegroups(?:/(?:(?-i:abcdefghij)|abcdefghij)){0,100}(?:/.*)?$";
    expect(() => parseResources(roleWith(`{deny: {azure_api: [{hosts: [management.azure.com], paths: ['${p}']}]}}`), "test")).toThrow(/too large: 2325 instructions, at most 2000/);
    // And a deny that nonetheless meets one (made some other way) applies.
    expect(ruleGlob(p, "/s/resourcegroups", "any")).toBe(false);
  });

  it("a scope's regular expression is tried on each ancestor, as Teleport's users write them (^a|b$ is (^a)|(b$) in RE2), and an ARM path past 64 segments is refused where a rule applies", () => {
    // ^A|B$: the first branch takes any ID that starts with A, so a deny written so covers prod's children.
    expect(scopeCovers(`^${SUB}/resourceGroups/prod|${SUB}/resourceGroups/shared$`, `${SUB}/resourceGroups/prod-eu/providers/Microsoft.KeyVault/vaults/v`)).toBe(true);
    expect(scopeCovers(`^${SUB}/resourceGroups/a$|^${SUB}/resourceGroups/b$`, `${SUB}/resourceGroups/b/providers/Microsoft.KeyVault/vaults/v`)).toBe(true);
    expect(scopeCovers("^/subscriptions/x$", "/subscriptions/y")).toBe(false);
    // A path deeper than ARM's deepest IDs cannot be named: refused wherever a rule applies, so a scope is tried on 64 ancestors at most.
    const deep = `https://management.azure.com${SUB}/resourceGroups/g/providers/Microsoft.Web/sites/s` + "/x/y".repeat(30) + "?api-version=2022-09-01";
    const u = new URL(deep);
    expect(readRequest({ method: "GET", host: u.host, path: u.pathname, query: u.searchParams, headers: [] }, "Azure")).toMatchObject({ operation: null, refused: expect.stringMatching(/segments: azgate names paths of at most 64/) });
  });

  it("a pattern longer than 4,096 characters is refused at load, and not compiled at run time", () => {
    const long = "^" + "a".repeat(5_000) + "$";
    expect(() => parseResources(roleWith(`{allow: {app_labels: {env: '${long}'}}}`), "test")).toThrow(/longer than 4096 characters/);
    expect(compilePattern(long)).toBeNull();
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

  it("a stored notification filter RE2 cannot read hears everything rather than silencing its target", () => {
    const t = { kind: "notification_target", version: "v1", metadata: { name: "t" }, spec: { type: "webhook", url: "https://example.com/h", filter: { apps: ["^(?=a).*$"] } } } as never;
    expect(targetHears(t, "access_request.create", { app: "azure-cli", azure_identity: "x", user: "u" })).toBe(true);
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
    ["a JavaScript look-ahead in a scope", { actions: ["*"], scopes: [`^${S0}(?=/).*$`] }],
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
      await ctx.backend.put(KEYS.role("old-long"), role("old-long", { deny: { app_labels: { env: "^" + "a".repeat(5_000) + "$" } } }));
      // What no release wrote, and the check must survive: a kind that names Object's own properties, nothing at all.
      await ctx.backend.put(KEYS.role("odd"), { kind: "constructor", metadata: { name: "odd" } });
      await ctx.backend.put(KEYS.role("null"), null);
      await ctx.backend.put(KEYS.role("old-lookahead"), role("old-lookahead", { allow: { app_labels: { env: "^(?=p)rod$" } } }));
      await ctx.backend.put(KEYS.notificationTarget("t"), { kind: "notification_target", version: "v1", metadata: { name: "t" }, spec: { type: "webhook", url: "https://example.com/h", filter: { apps: ["^(a)\\1$"] } } });
      const lines = await storedResourcesNotLoading(ctx);
      expect(lines).toEqual([
        expect.stringMatching(/^resource "roles\/null": unknown kind/),
        expect.stringMatching(/^constructor "odd": unknown kind "constructor"/),
        expect.stringMatching(/^role "old-long": .*invalid regular expression \^a{200}\.\.\. \(5002 characters\) \(RE2 syntax, as Teleport's: longer than 4096 characters\)$/),
        expect.stringMatching(/^role "old-lookahead": .*invalid regular expression \^\(\?=p\)rod\$/),
        expect.stringMatching(/^notification_target "t": .*filter\.apps: invalid regular expression/),
      ]);
    } finally {
      await close();
    }
  });
});
