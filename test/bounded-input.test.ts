/**
 * Input that one caller chooses cannot stall the proxy (issue 29, defect 9):
 * globs match in linear time (src/util/glob.ts) in the audit search's action
 * filter and in azure_api rules, a scope pattern is tested against one
 * ancestor, not every one, and `roles explain` and the policy read no more
 * of a path than the tunnel carries. Linearity is checked by counting the
 * matcher's comparisons (globSteps), not by timing; the one time limit below
 * is loose, for the case the old code took seconds on.
 */
import { readRequest } from "../src/azure/operation.ts";
import { describe, expect, it } from "vitest";
import { globMatch, globSteps } from "../src/util/glob.ts";
import { matchesQuery, type AuditEvent } from "../src/audit/sink.ts";
import { decideAzureApi, globMatch as ruleGlob, scopeCovers } from "../src/rbac/azure-api.ts";
import { explainRequest } from "../src/proxy/explain.ts";
import { AppRegistry, type AgentTunnel } from "../src/proxy/registry.ts";
import { MAX_URL_CHARS } from "../src/tunnel/http.ts";
import { matchLabels } from "../src/rbac/labels.ts";
import type { Role } from "../src/rbac/types.ts";
import type { Caller } from "../src/proxy/caller.ts";
import type { ProxyContext } from "../src/proxy/context.ts";
import type { TunnelSession } from "../src/tunnel/index.ts";
import { FakeClock } from "./helpers/fake-clock.ts";

const S = "/subscriptions/00000000-0000-0000-0000-000000000000";
const CONTRIB = `${S}/resourceGroups/ops/providers/Microsoft.ManagedIdentity/userAssignedIdentities/prod-contributor`;
const app = { name: "azure-cli", labels: { env: "prod" } };
const role = (name: string, spec: Role["spec"]): Role => ({ kind: "role", version: "v7", metadata: { name }, spec });

/** Comparisons `fn` made in the glob matcher. */
function stepsOf<T>(fn: () => T): { result: T; steps: number } {
  const before = globSteps.count;
  const result = fn();
  return { result, steps: globSteps.count - before };
}

/** What a glob meant before: stars compiled to a regular expression (small inputs only: it backtracks). */
function reference(pattern: string, value: string, separator?: string): boolean {
  const wild = separator ? `[^${separator === "." ? "." : "/"}]*` : ".*";
  return new RegExp("^" + pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(wild) + "$", "i").test(value);
}

/** Twenty stars that can never match: the value has no "b" (the old regular expression never returned). */
const HOSTILE = "*a".repeat(19) + "*b";

describe("the linear glob matcher", () => {
  it("means what the regular expressions meant: any run, within a segment, within a label; whole value; any case", () => {
    // A deterministic pseudo-random walk over short patterns and values, compared with the old meaning.
    let seed = 29;
    const next = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const word = (alphabet: string, max: number) => Array.from({ length: next(max + 1) }, () => alphabet[next(alphabet.length)]).join("");
    for (let i = 0; i < 2_000; i++) {
      const pattern = word("aAb*/.", 7);
      const value = word("abB/.", 9);
      for (const separator of [undefined, "/", "."]) {
        expect(globMatch(pattern, value, { caseInsensitive: true, separator }), `${JSON.stringify(pattern)} ~ ${JSON.stringify(value)} (${separator ?? "any"})`).toBe(reference(pattern, value, separator));
      }
    }
    expect(globMatch("Microsoft.Compute/*", "microsoft.compute/virtualMachines/read", { caseInsensitive: true })).toBe(true);
    expect(globMatch("Microsoft.Compute/*", "microsoft.compute/virtualMachines/read")).toBe(false);
    expect(globMatch("*.vault.azure.net", "a.b.vault.azure.net", { separator: "." })).toBe(false);
  });

  it("twenty stars against a long value that cannot match: false, in comparisons linear in pattern plus value", () => {
    const value = "a".repeat(10_000);
    const { result, steps } = stepsOf(() => globMatch(HOSTILE, value, { caseInsensitive: true }));
    expect(result).toBe(false);
    expect(steps).toBeLessThanOrEqual(4 * (HOSTILE.length + value.length) + 100);
    // Within segments too: each segment is its own linear match.
    const path = "/a".repeat(5_000);
    const within = stepsOf(() => globMatch(`/${HOSTILE}`.repeat(2), path, { separator: "/" }));
    expect(within.result).toBe(false);
    expect(within.steps).toBeLessThanOrEqual(4 * (2 * HOSTILE.length + path.length) + 100);
  });
});

describe("the audit search's action filter (CLI admin audit ls --action, /v1/admin/audit, the web UI's audit page)", () => {
  const event = (action: string): AuditEvent => ({ event: "app.request", code: "T2009I", time: new Date(0).toISOString(), action });

  it("still means: * is any run, any case", () => {
    expect(matchesQuery(event("Microsoft.Compute/virtualMachines/restart/action"), { action: "microsoft.compute/*/action" })).toBe(true);
    expect(matchesQuery(event("Microsoft.Compute/virtualMachines/read"), { action: "microsoft.compute/*/action" })).toBe(false);
  });

  it("seven stars that took the old filter seconds answer at once", () => {
    const pattern = "*a".repeat(6) + "*b";
    const started = performance.now();
    const { result, steps } = stepsOf(() => matchesQuery(event("a".repeat(60)), { action: pattern }));
    expect(result).toBe(false);
    expect(steps).toBeGreaterThan(0);
    // Loose on purpose (the old filter took about 6 s here): a single run, not a benchmark.
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it("twenty stars against a long action: no match, in linear comparisons", () => {
    const action = `Microsoft.${"a".repeat(5_000)}/read`;
    const { result, steps } = stepsOf(() => matchesQuery(event(action), { action: HOSTILE }));
    expect(result).toBe(false);
    expect(steps).toBeGreaterThan(0);
    expect(steps).toBeLessThanOrEqual(4 * (HOSTILE.length + action.length) + 100);
  });
});

describe("azure_api rules", () => {
  const uses = (more: Partial<NonNullable<Role["spec"]["allow"]>> = {}) => ({ app_labels: { "*": "*" }, azure_identities: [CONTRIB], ...more });
  const get = (path: string) => ({ method: "GET", host: "management.azure.com", path, query: new URLSearchParams(), headers: [] as [string, string][] });

  it("a deny pattern that a trait fills with stars, against an action the caller spells: decided in linear comparisons", () => {
    // Deny rules take traits as they are (wider is safer there): an identity provider's attribute becomes the pattern.
    const roles = [role("base", { allow: uses(), deny: { azure_api: [{ actions: ["{{external.blocked}}"] }] } })];
    const path = `${S}/resourceGroups/rg/providers/Microsoft.${"a".repeat(3_000)}/things/x`;
    const { result, steps } = stepsOf(() => decideAzureApi(roles, { blocked: [HOSTILE] }, app, CONTRIB, readRequest(get(path))));
    expect(result.outcome).toBe("allow");
    expect(steps).toBeGreaterThan(0);
    expect(steps).toBeLessThanOrEqual(8 * (HOSTILE.length + path.length) + 1_000);
    expect(ruleGlob("microsoft.compute/*", "Microsoft.Compute/virtualMachines/read", "any")).toBe(true);
  });

  it("a scope pattern is tested against the one ancestor as deep as it is, not every ancestor of a path of thousands of segments", () => {
    const scope = `${S}/resourceGroups/app-1` + "/providers/Microsoft.X/y/z".repeat(700);
    const { result, steps } = stepsOf(() => scopeCovers(`/subscriptions/*/resourceGroups/app-*`, scope));
    expect(result).toBe(true);
    // The old loop matched each of the 2,800 ancestors: millions of comparisons. One ancestor is a split of the scope.
    expect(steps).toBeGreaterThan(0);
    expect(steps).toBeLessThanOrEqual(4 * scope.length);
    expect(scopeCovers(`/subscriptions/*/resourceGroups/app-2`, scope)).toBe(false);
    expect(scopeCovers(`^/subscriptions/[^/]+/resourcegroups/app-1$`, scope)).toBe(true);
  });

  it("a path longer than the tunnel carries is not read at all: refused where a policy applies", () => {
    const roles = [role("readonly", { allow: uses({ azure_api: [{ actions: ["*/read"], scopes: [`${S}/resourceGroups/app-*`] }] }) })];
    const d = decideAzureApi(roles, {}, app, CONTRIB, readRequest(get(`${S}/resourceGroups/app-1` + "/a".repeat(MAX_URL_CHARS))));
    expect(d).toMatchObject({ outcome: "deny", enforced: true });
    expect(d.reason).toContain(`the path is longer than ${MAX_URL_CHARS} characters`);
  });
});

describe("app_labels", () => {
  it("a label glob that a trait fills with stars, against an agent's long label value: no match, in linear comparisons", () => {
    const value = "a".repeat(8_000);
    const { result, steps } = stepsOf(() => matchLabels({ team: "{{external.team}}" }, { team: value }, { team: [HOSTILE] }, "deny"));
    expect(result).toBe(false);
    expect(steps).toBeGreaterThan(0);
    expect(steps).toBeLessThanOrEqual(4 * (HOSTILE.length + value.length) + 100);
    expect(matchLabels({ env: "prod-*" }, { env: "prod-eu" }, {}, "allow")).toBe(true);
    expect(matchLabels({ env: "prod-*" }, { env: "Prod-eu" }, {}, "allow")).toBe(false);
  });
});

describe("roles explain (admin roles explain --url)", () => {
  const registry = new AppRegistry(new FakeClock());
  const session = { isClosed: false, isDraining: false, openStreams: 0 } as unknown as TunnelSession;
  registry.heartbeat({ id: "t", hostId: "t", hostName: "agent", session, connectedAt: 0 } satisfies AgentTunnel, [{ name: "azure-cli", cloud: "Azure", uri: "cloud://Azure", labels: { env: "prod" } }]);
  const roles = [role("ops", { allow: { app_labels: { "*": "*" }, azure_identities: [CONTRIB], azure_api: [{ actions: ["*/read"], scopes: [`${S}/resourceGroups/app-*`, `/subscriptions/*/resourceGroups/*/providers/*`] }] } })];
  const alice = { identity: { kind: "user" }, name: "alice", roles, traits: {} } as unknown as Caller;
  const ctx = {} as ProxyContext;

  it("a URL of 10,000 segments is refused before any work, saying why", async () => {
    const url = `https://management.azure.com${S}/resourceGroups/app-1` + "/a".repeat(10_000);
    const started = performance.now();
    await expect(explainRequest(ctx, registry, alice, { method: "GET", url, azure_identity: CONTRIB })).rejects.toMatchObject({
      code: "bad_parameter",
      message: `the URL is ${url.length} characters long; a request through azgate has at most ${MAX_URL_CHARS}, so there is nothing to explain`,
    });
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it("a URL within the tunnel's limit is explained as before", async () => {
    const url = `https://management.azure.com${S}/resourceGroups/app-1/providers/Microsoft.Compute/virtualMachines/vm1`;
    const explained = await explainRequest(ctx, registry, alice, { method: "GET", url, azure_identity: CONTRIB });
    expect(explained.decision).toMatchObject({ outcome: "allow" });
  });
});
