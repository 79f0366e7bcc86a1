/**
 * Azure identity IDs in one grammar and one canonical form
 * (src/azure/resource-id.ts), and the pure rules that compare them: the RBAC
 * engine's allow and deny, locks, grants, request patterns, role and user
 * files. Issue 29, defect 3: `.../teleport-contributor?api-version=...&x=` is
 * the contributor to ARM and was a stranger to every rule.
 */
import { describe, expect, it } from "vitest";
import {
  distinctIdentities,
  identityArmPath,
  identityIdProblem,
  identityKey,
  identityPatternProblem,
  parseIdentityId,
  requireIdentityId,
  sameIdentity,
} from "../src/azure/resource-id.ts";
import { allowedAzureIdentities, checkAzureIdentity, checkDenials, rolesAllowingIdentity } from "../src/rbac/engine.ts";
import { lockIdentityTarget, lockMatches } from "../src/resources/lock.ts";
import { activeGrant, type AccessGrant } from "../src/resources/access-request.ts";
import { requestTerms } from "../src/rbac/requests.ts";
import { parseResources } from "../src/resources/parse.ts";
import { compilePredicate } from "../src/rbac/predicate.ts";
import type { App, Role } from "../src/rbac/types.ts";

const SUB = "8f3a4b2c-1d2e-4f5a-9b8c-7d6e5f4a3b2c";
const id = (name: string, group = "ops", sub = SUB) => `/subscriptions/${sub}/resourceGroups/${group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name}`;
const CONTRIB = id("teleport-contributor");
const SMUGGLED = `${CONTRIB}?api-version=2023-01-31&x=`;
/** Spellings of CONTRIB that Azure reads as the same identity: the case of every part (GUID, keywords, provider and type, group, name). */
const SPELLINGS = [
  CONTRIB,
  CONTRIB.replace(SUB, SUB.toUpperCase()),
  CONTRIB.replace("/subscriptions/", "/Subscriptions/").replace("/resourceGroups/", "/resourcegroups/").replace("/providers/", "/PROVIDERS/"),
  CONTRIB.replace("Microsoft.ManagedIdentity/userAssignedIdentities", "microsoft.managedidentity/USERASSIGNEDIDENTITIES"),
  CONTRIB.replace("/ops/", "/OPS/").replace("teleport-contributor", "Teleport-Contributor"),
  CONTRIB.toUpperCase(),
];
const app: App = { name: "azure-cli", labels: { env: "prod" } };
const role = (name: string, spec: Role["spec"]): Role => ({ kind: "role", version: "v7", metadata: { name }, spec });

describe("the grammar", () => {
  it("parses an identity ID into its parts, Azure's spelling and one canonical form", () => {
    expect(parseIdentityId(CONTRIB.replace(SUB, SUB.toUpperCase()).replace("Microsoft.ManagedIdentity", "microsoft.managedidentity").replace("/ops/", "/Ops/"))).toEqual({
      subscription: SUB,
      resourceGroup: "Ops",
      name: "teleport-contributor",
      id: id("teleport-contributor", "Ops"),
      canonical: CONTRIB,
    });
  });

  it("reads every spelling Azure treats as one identity as one canonical form", () => {
    expect(new Set(SPELLINGS.map(identityKey))).toEqual(new Set([CONTRIB]));
    for (const s of SPELLINGS) expect(sameIdentity(s, CONTRIB)).toBe(true);
    expect(sameIdentity(id("teleport-contributor", "other"), CONTRIB)).toBe(false);
    expect(sameIdentity(id("teleport-contributor", "ops", "00000000-0000-0000-0000-000000000000"), CONTRIB)).toBe(false);
  });

  it.each([
    ["a query string (the review's case)", SMUGGLED, "has a query string ('?')"],
    ["a fragment", `${CONTRIB}#x`, "has a fragment ('#')"],
    ["percent-encoding", CONTRIB.replace("teleport-", "teleport%2D"), "has percent-encoding"],
    ["an encoded slash", CONTRIB.replace("/teleport-", "%2Fteleport-"), "has percent-encoding"],
    ["a trailing slash", `${CONTRIB}/`, "ends with '/'"],
    ["an empty segment", CONTRIB.replace("/providers/", "//providers/"), "has an empty segment"],
    ["a dot segment", CONTRIB.replace("/providers/", "/./providers/"), "has a dot segment"],
    ["a dot-dot segment", `${id("x")}/../teleport-contributor`, "has a dot segment"],
    ["white space", `${CONTRIB} `, "has white space"],
    ["a leading space", ` ${CONTRIB}`, "has white space"],
    ["a control character", `${CONTRIB}\u0000`, "has a control character"],
    ["a backslash", CONTRIB.replace("/teleport-", "\\teleport-"), "has a backslash"],
    ["a sub-resource", `${CONTRIB}/federatedIdentityCredentials/f`, "has 10 segments"],
    ["a bare name", "teleport-contributor", "does not start with /subscriptions/"],
    ["another provider", CONTRIB.replace("Microsoft.ManagedIdentity", "Microsoft.Compute"), 'has "Microsoft.Compute" where'],
    ["another type", CONTRIB.replace("userAssignedIdentities", "identities"), 'has "identities" where'],
    ["a subscription that is not a GUID", id("x", "ops", "s"), 'the subscription "s", which is not a GUID'],
    ["a group ending in a dot", id("teleport-contributor", "ops."), 'the resource group "ops."'],
    ["a group with other characters", id("teleport-contributor", "ops!"), 'the resource group "ops!"'],
    ["a group with a non-ASCII letter", id("teleport-contributor", "öps"), "the resource group"],
    ["a group of 91 characters", id("teleport-contributor", "g".repeat(91)), "the resource group"],
    ["a name of 2 characters", id("ab"), 'the identity name "ab"'],
    ["a name of 129 characters", id("a".repeat(129)), "the identity name"],
    ["a name starting with '-'", id("-contributor"), 'the identity name "-contributor"'],
    ["a name with a dot", id("teleport.contributor"), 'the identity name "teleport.contributor"'],
    ["something very long", `${CONTRIB}${"a".repeat(600)}`, "is longer than 512 characters"],
  ])("refuses %s, naming the part", (_name, value, problem) => {
    expect(identityIdProblem(value)).toContain(problem);
    expect(parseIdentityId(value)).toBeNull();
    expect(identityKey(value)).toBeNull();
    expect(() => requireIdentityId(value, "azure_identity")).toThrow(expect.objectContaining({ code: "bad_parameter", message: expect.stringContaining(problem) }));
  });

  it("takes ARM's other names: groups with '.', '(' and ')', '_' and '-'; names of 3 and 128 characters", () => {
    for (const ok of [id("abc", "rg.(prod)_x-1"), id("a".repeat(128)), id("A_b-3", "g")]) expect(identityIdProblem(ok)).toBeNull();
  });

  it("something that is no identity is the same as nothing, even to itself", () => {
    expect(sameIdentity(SMUGGLED, SMUGGLED)).toBe(false);
    expect(sameIdentity(SMUGGLED, CONTRIB)).toBe(false);
  });

  it("builds the ARM path from the parsed segments, each encoded", () => {
    expect(identityArmPath(parseIdentityId(id("teleport-contributor", "Rg(1).x"))!)).toBe(`/subscriptions/${SUB}/resourceGroups/Rg(1).x/providers/Microsoft.ManagedIdentity/userAssignedIdentities/teleport-contributor`);
    expect(identityArmPath({ ...parseIdentityId(CONTRIB)!, name: "a?b#c/d" })).toMatch(/userAssignedIdentities\/a%3Fb%23c%2Fd$/);
  });

  it("keeps one of each identity, in Azure's spelling, leaving out what is no identity", () => {
    expect(distinctIdentities([...SPELLINGS, SMUGGLED, "*", "{{internal.x}}", id("reader")])).toEqual([CONTRIB, id("reader")]);
  });

  it.each([
    ["*", null],
    ["/subscriptions/*/resourceGroups/ops/providers/Microsoft.ManagedIdentity/userAssignedIdentities/*", null],
    ["/subscriptions/*/resourcegroups/*/providers/*/userAssignedIdentities/prod-*", null],
    ["^/subscriptions/.*/prod-[a-z]+$", null],
    [CONTRIB, null],
    ["/subscriptions/*/resourceGroups/ops/providers/Microsoft.ManagedIdentity/userAssignedIdentities/*?x=", "has a query string"],
    ["/subscriptions/*/resourceGroups/ops/providers/Microsoft.ManagedIdentity/userAssignedIdentities/*/", "ends with '/'"],
    ["/subscriptions/*/resourceGroups/o%70s/providers/Microsoft.ManagedIdentity/userAssignedIdentities/*", "has percent-encoding"],
    ["/subscriptions/*/resourceGroups/ops/*", "has 5 segments"],
    ["/subscriptions/*/resourceGroups/ops/providers/Microsoft.Compute/userAssignedIdentities/*", 'has "Microsoft.Compute" where'],
    ["/subscriptions/*/resourceGroups/o!s/providers/Microsoft.ManagedIdentity/userAssignedIdentities/*", 'has the segment "o!s"'],
    [SMUGGLED, "has a query string"],
    ["/subscriptions/{{internal.sub}}/resourceGroups/ops/providers/Microsoft.ManagedIdentity/userAssignedIdentities/*", null],
    ["/subscriptions/{{internal.sub}}/resourceGroups/ops/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{{internal.n}}?x", "has a query string"],
  ])("checks a role's identity pattern as far as it can: %s", (pattern, problem) => {
    const found = identityPatternProblem(pattern);
    if (problem === null) expect(found).toBeNull();
    else expect(found).toContain(problem);
  });
});

describe("every rule compares the canonical form", () => {
  const uses = role("uses", { allow: { app_labels: { "*": "*" }, azure_identities: ["{{internal.azure_identities}}"] } });

  it.each(SPELLINGS.map((s) => [s]))("a deny written as %s refuses the identity in every spelling, and a grant cannot go around it", (denied) => {
    const roles = [uses, role("no-contrib", { deny: { azure_identities: [denied] } })];
    for (const asked of SPELLINGS) {
      const traits = { azure_identities: [asked] };
      expect(checkAzureIdentity(roles, traits, app, asked)).toMatchObject({ allowed: false, reason: expect.stringContaining('role "no-contrib" denies') });
      expect(checkDenials(roles, traits, app, asked).allowed).toBe(false);
      expect(allowedAzureIdentities(roles, traits)).toEqual([]);
    }
  });

  it("an allow in one spelling allows the others, and lists the identity once, in Azure's spelling", () => {
    const traits = { azure_identities: [SPELLINGS[5], SPELLINGS[3]] };
    for (const asked of SPELLINGS) expect(checkAzureIdentity([uses], traits, app, asked).allowed).toBe(true);
    expect(allowedAzureIdentities([uses], traits)).toEqual([id("TELEPORT-CONTRIBUTOR", "OPS")]);
  });

  it("an identity with a query string is refused whatever the roles say: no allow names it, and it is not the denied contributor's twin", () => {
    // Before the grammar: a trait or an approved request named the smuggled ID, the deny named the contributor, and they never met.
    const roles = [uses, role("no-contrib", { deny: { azure_identities: [CONTRIB] } })];
    const traits = { azure_identities: [SMUGGLED] };
    expect(checkAzureIdentity(roles, traits, app, SMUGGLED)).toMatchObject({ allowed: false, reason: expect.stringContaining("has a query string") });
    expect(checkDenials(roles, traits, app, SMUGGLED)).toMatchObject({ allowed: false, reason: expect.stringContaining("has a query string") });
    expect(rolesAllowingIdentity(roles, traits, app, SMUGGLED)).toEqual([]);
    expect(allowedAzureIdentities(roles, traits)).toEqual([]);
  });

  it("a deny that expands to something that is no identity refuses every identity (a deny azgate cannot read fails closed)", () => {
    const roles = [uses, role("no-team", { deny: { azure_identities: [`${id("x").replace("/x", "")}/{{external.team}}`] } })];
    const traits = { azure_identities: [CONTRIB], team: ["sre/../x"] };
    expect(checkAzureIdentity(roles, traits, app, CONTRIB)).toMatchObject({ allowed: false, reason: expect.stringContaining("a deny azgate cannot read as one identity refuses them all") });
    expect(allowedAzureIdentities(roles, traits)).toEqual([]);
  });

  it("locks: an ID target matches every spelling, a name target the name in any case; what azgate cannot read on either side is covered", () => {
    const subject = (azure_identity?: string) => ({ user: "alice", roles: ["uses"], session_ids: ["s"], azure_identity });
    for (const target of SPELLINGS) for (const asked of SPELLINGS) expect(lockMatches({ azure_identity: target }, subject(asked))).toBe(true);
    expect(lockMatches({ azure_identity: "TELEPORT-CONTRIBUTOR" }, subject(CONTRIB))).toBe(true);
    expect(lockMatches({ azure_identity: id("teleport-reader") }, subject(CONTRIB))).toBe(false);
    expect(lockMatches({ azure_identity: "teleport-reader" }, subject(CONTRIB))).toBe(false);
    expect(lockMatches({ azure_identity: CONTRIB }, subject())).toBe(false);
    // An app certificate from before the grammar, for the smuggled ID: the lock on the contributor holds.
    expect(lockMatches({ azure_identity: CONTRIB }, subject(SMUGGLED))).toBe(true);
    expect(lockMatches({ azure_identity: "teleport-contributor" }, subject(SMUGGLED))).toBe(true);
    // A lock stored before targets were checked (a trailing slash): it locks, rather than nothing.
    expect(lockMatches({ azure_identity: `${CONTRIB}/` }, subject(id("teleport-reader")))).toBe(true);
  });

  it("lock targets are checked when made: an ID is stored in Azure's spelling, a name as given; what could never match is refused", () => {
    expect(lockIdentityTarget(SPELLINGS[2])).toBe(CONTRIB);
    expect(lockIdentityTarget("Teleport-Contributor")).toBe("Teleport-Contributor");
    expect(() => lockIdentityTarget(`${CONTRIB}/`)).toThrow(expect.objectContaining({ code: "bad_parameter", message: expect.stringContaining("ends with '/'") }));
    expect(() => lockIdentityTarget(SMUGGLED)).toThrow(expect.objectContaining({ code: "bad_parameter", message: expect.stringContaining("has a query string") }));
    expect(() => lockIdentityTarget("teleport contributor")).toThrow(expect.objectContaining({ code: "bad_parameter", message: expect.stringContaining("is not an identity name") }));
  });

  it("a grant is the identity's in every spelling, and never the smuggled ID's", () => {
    const now = Date.now();
    const grant = (azure_identity: string): AccessGrant => ({ kind: "access_grant", version: "v1", metadata: { name: "g" }, spec: { request_id: "g", user: "alice", user_id: "id-alice", app: "azure-cli", azure_identity, roles: [], not_before: new Date(now - 1000).toISOString(), not_after: new Date(now + 60_000).toISOString() } });
    for (const held of SPELLINGS) for (const asked of SPELLINGS) expect(activeGrant([grant(held)], { user: "alice", user_id: "id-alice", app: "azure-cli", azure_identity: asked }, now)).toBeDefined();
    expect(activeGrant([grant(SMUGGLED)], { user: "alice", user_id: "id-alice", app: "azure-cli", azure_identity: SMUGGLED }, now)).toBeUndefined();
    expect(activeGrant([grant(SMUGGLED)], { user: "alice", user_id: "id-alice", app: "azure-cli", azure_identity: CONTRIB }, now)).toBeUndefined();
  });

  it("predicates (auto-review rules, review where, threshold filters) compare request.azure_identity as Azure does", () => {
    const vars = (azure_identity: string) => ({ "request.azure_identity": azure_identity, "request.azure_identities": [azure_identity], "request.reason": "INC" });
    const test = (source: string, identity: string) => compilePredicate(source, ["request"]).test(vars(identity));
    for (const asked of SPELLINGS) {
      // An auto-approve "anything but the contributor" must not approve the contributor in another spelling.
      expect(test(`request.azure_identity != "${CONTRIB}"`, asked)).toBe(false);
      expect(test(`"${SPELLINGS[5]}" == request.azure_identity`, asked)).toBe(true);
      expect(test(`equals(request.azure_identity, "${SPELLINGS[4]}")`, asked)).toBe(true);
      expect(test(`contains(request.azure_identities, "${SPELLINGS[2]}")`, asked)).toBe(true);
      expect(test(`regexp.match(request.azure_identity, "^/subscriptions/.*/resourceGroups/ops/.*/teleport-contributor$")`, asked)).toBe(true);
    }
    expect(test(`request.azure_identity != "${CONTRIB}"`, id("teleport-reader"))).toBe(true);
    // Other names keep Teleport's exact comparison.
    expect(test('request.reason == "inc"', CONTRIB)).toBe(false);
  });

  it("request patterns match the canonical form: every spelling of the group's identities, never the smuggled ID", () => {
    const requester = role("requester", { allow: { request: { azure_identities: [`/subscriptions/*/resourceGroups/ops/providers/Microsoft.ManagedIdentity/userAssignedIdentities/*`] } } });
    const noContrib = role("no-contrib-requests", { deny: { request: { azure_identities: [`/subscriptions/*/resourceGroups/OPS/providers/Microsoft.ManagedIdentity/userAssignedIdentities/teleport-contributor`] } } });
    const lookup = () => undefined;
    for (const asked of SPELLINGS) {
      expect(requestTerms([requester], {}, asked, lookup).allowed).toBe(true);
      expect(requestTerms([requester, noContrib], {}, asked, lookup)).toMatchObject({ allowed: false, reason: expect.stringContaining("denies requesting") });
    }
    expect(requestTerms([requester], {}, SMUGGLED, lookup).allowed).toBe(false);
    // A requested role's allow in another spelling: the identity comes with it.
    const target = role("contrib", { allow: { app_labels: { "*": "*" }, azure_identities: [SPELLINGS[4]] } });
    const viaRole = role("via-role", { allow: { request: { roles: ["contrib"] } } });
    expect(requestTerms([viaRole], {}, SPELLINGS[3], (n) => (n === "contrib" ? target : undefined))).toMatchObject({ allowed: true, grantRoles: ["contrib"] });
  });
});

describe("files where identities enter", () => {
  const load = (text: string) => () => parseResources(text, "x.yaml");

  it.each([
    ["allow.azure_identities with a query string", `spec:\n  allow:\n    azure_identities: ['${SMUGGLED}']\n`, "has a query string"],
    ["deny.azure_identities with a trailing slash", `spec:\n  deny:\n    azure_identities: ['${CONTRIB}/']\n`, "ends with '/'"],
    ["allow.azure_identities that is a bare name", `spec:\n  allow:\n    azure_identities: [teleport-contributor]\n`, "does not start with /subscriptions/"],
    ["a template whose literal part has a '?'", `spec:\n  allow:\n    azure_identities: ['{{internal.azure_identities}}?x']\n`, "has a query string"],
    ["request.azure_identities with percent-encoding", `spec:\n  allow:\n    request:\n      azure_identities: ['${CONTRIB.replace("ops", "o%70s")}']\n`, "has percent-encoding"],
  ])("a role with %s is refused, naming the part", (_name, spec, problem) => {
    expect(load(`kind: role\nversion: v7\nmetadata: {name: r}\n${spec}`)).toThrow(problem);
  });

  it("a role with identities in any valid spelling, templates and patterns loads", () => {
    const text = `kind: role\nversion: v7\nmetadata: {name: r}\nspec:\n  allow:\n    azure_identities: ['${SPELLINGS[5]}', '{{internal.azure_identities}}', '/subscriptions/{{internal.sub}}/resourceGroups/ops/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x']\n    request:\n      azure_identities: ['/subscriptions/*/resourceGroups/ops/providers/Microsoft.ManagedIdentity/userAssignedIdentities/*']\n  deny:\n    azure_identities: ['*']\n`;
    expect(parseResources(text, "x.yaml").resources).toHaveLength(1);
  });

  it("a user file whose azure_identities trait has an ID that is no identity is refused, naming it", () => {
    expect(load(`kind: user\nversion: v2\nmetadata: {name: alice}\nspec:\n  roles: [access]\n  traits:\n    azure_identities: ['${CONTRIB}', '${SMUGGLED}']\n`)).toThrow(/azure_identities\[1\].*has a query string/);
  });
});
