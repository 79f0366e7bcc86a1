/**
 * A property of the per-request policy (src/rbac/azure-api.ts on
 * src/azure/operation.ts's reading): every spelling Azure treats as the same
 * request gets the same decision, or a refusal, never an allow where the
 * plain spelling is denied. A seeded generator (plain loops, no library)
 * respells requests the way a user walking around a rule would: the case of
 * host and path, percent-encodings (of unreserved characters, which are
 * refused, and of others, which decode to the same path), a trailing slash,
 * a trailing dot and port 443 on the host, ARM's regional hosts, a storage
 * account's Data Lake (dfs) host for a blob read or delete, its secondary
 * and private-link names, extra query
 * parameters in any order; against roles that deny by actions, scopes,
 * paths, hosts, methods and the preset, and roles that restrict.
 *
 * Paths compare case-insensitively where the service does (ARM, Key Vault,
 * Graph), with case on Blob and its dfs host, where another case is another
 * blob (test/azure-api-round2.test.ts, F7): so a path is respelt in another
 * case only on the former.
 */
import { describe, expect, it } from "vitest";
import { decideAzureApi, type AzureApiDecision } from "../src/rbac/azure-api.ts";
import { readRequest } from "../src/azure/operation.ts";
import type { CloudName } from "../src/azure/clouds.ts";
import type { Role } from "../src/rbac/types.ts";

const S = "/subscriptions/00000000-0000-0000-0000-000000000000";
const RG = `${S}/resourceGroups/app-1`;
const VM = `${RG}/providers/Microsoft.Compute/virtualMachines/vm-1`;
const MI = `${S}/resourceGroups/ops/providers/Microsoft.ManagedIdentity/userAssignedIdentities/prod-contributor`;
const app = { name: "azure-cli", labels: { env: "prod" } };
const BLOB = "sa1.blob.core.windows.net";
const DFS = "sa1.dfs.core.windows.net";
const KV = "kv-app-1.vault.azure.net";
const GRAPH = "graph.microsoft.com";

interface Plain {
  method: string;
  host: string;
  path: string;
  query: string;
  cloud?: CloudName;
}

const ARM_HOSTS: Record<CloudName, string> = { Azure: "management.azure.com", AzureUSGovernment: "management.usgovcloudapi.net", AzureChinaCloud: "management.chinacloudapi.cn" };
const REGIONS: Record<CloudName, string[]> = { Azure: ["westeurope", "eastus2", "japaneast"], AzureUSGovernment: ["usgovvirginia", "usgovarizona"], AzureChinaCloud: ["chinanorth3", "chinaeast2"] };

const arm = (method: string, path: string, cloud: CloudName = "Azure", query = "api-version=2022-09-01"): Plain => ({ method, host: ARM_HOSTS[cloud], path, query, cloud });
const on = (host: string, method: string, path: string, query = ""): Plain => ({ method, host, path, query });

const REQUESTS: Plain[] = [
  arm("GET", `${S}/resourcegroups`),
  arm("GET", VM),
  arm("PUT", `${RG}/providers/Microsoft.Authorization/roleAssignments/3fa85f64-5717-4562-b3fc-2c963f66afa6`),
  arm("PUT", `${RG}/providers/Microsoft.Authorization/roleAssignments/3fa85f64-5717-4562-b3fc-2c963f66afa6`, "AzureUSGovernment"),
  arm("DELETE", `${S}/resourceGroups/db-prod`),
  arm("DELETE", `${S}/resourceGroups/db-test`, "AzureChinaCloud"),
  arm("POST", `${VM}/runCommand`),
  arm("POST", `${VM}/restart`),
  arm("POST", VM),
  arm("POST", "/batch", "Azure", "api-version=2020-06-01"),
  arm("PUT", `${RG}/deployments/d-1`),
  arm("POST", `${MI}/federatedIdentityCredentials/fic-1`),
  arm("GET", `${RG}/providers/Microsoft.Web/sites/web-1/config/appsettings`),
  // Names spelt providers (issue 29, attack finding 6): refused in every spelling, never read as another provider's operation.
  arm("POST", `${RG}/providers/Microsoft.Compute/virtualMachines/providers/runCommand`),
  arm("GET", `${RG}/providers/Microsoft.Web/sites/web-1/slots/providers/functions/admin/token`),
  on(BLOB, "GET", "/reports/secret.txt"),
  on(BLOB, "GET", "/reports/other.txt"),
  on(BLOB, "DELETE", "/reports/q1 (final).txt"),
  on(BLOB, "PUT", "/c1", "restype=container"),
  on(BLOB, "GET", "/", "comp=list"),
  on(BLOB, "POST", "/", "comp=batch"),
  // ADLS Gen2 (issue 29, attack finding 7): the account's dfs host is its blob data, in every cloud.
  on(DFS, "GET", "/reports/secret.txt"),
  on(DFS, "DELETE", "/reports/q1 (final).txt"),
  on(DFS, "PATCH", "/reports/q1.csv", "action=append&position=0"),
  on(DFS, "POST", "/reports/q1.csv"),
  { method: "DELETE", host: "sa1.dfs.core.usgovcloudapi.net", path: "/reports/q1 (final).txt", query: "", cloud: "AzureUSGovernment" },
  { method: "DELETE", host: "sa1.dfs.core.chinacloudapi.cn", path: "/reports/secret.txt", query: "", cloud: "AzureChinaCloud" },
  on(KV, "GET", "/secrets/db-password"),
  on(KV, "PUT", "/secrets/db-password"),
  on(GRAPH, "GET", "/v1.0/me"),
  on(GRAPH, "POST", "/v1.0/users"),
  on(GRAPH, "PATCH", "/v1.0/users/abc"),
  on(GRAPH, "POST", "/v1.0/$batch"),
];

const role = (name: string, spec: Role["spec"]): Role => ({ kind: "role", version: "v7", metadata: { name }, spec });
const uses = { app_labels: { "*": "*" }, azure_identities: [MI] };
const plainRole = role("plain", { allow: uses });

const ROLE_SETS: [string, Role[]][] = [
  ["the preset, deny-only", [plainRole, role("guard", { deny: { azure_api: [{ preset: "no-privilege-escalation" }] } })]],
  ["actions and scopes, deny-only, unnamed allowed", [plainRole, role("guard", { deny: { azure_api: [{ actions: ["*/delete"], scopes: [`${S}/resourceGroups/*-prod`] }, { actions: ["Microsoft.Compute/virtualMachines/runCommand/action"] }] }, options: { azure_api_unknown: "allow" } })]],
  [
    "paths, hosts and methods, deny-only, unnamed allowed",
    [
      plainRole,
      role("guard", {
        deny: {
          azure_api: [
            { methods: ["GET"], hosts: ["*.blob.core.windows.net"], paths: ["/reports/secret.txt"] },
            { methods: ["DELETE"], hosts: [BLOB], paths: ["/reports/q1 (final).txt"] },
            { methods: ["POST", "PATCH", "PUT", "DELETE"], hosts: [GRAPH] },
            { methods: ["DELETE"], hosts: ["management.azure.com", "management.chinacloudapi.cn"], paths: ["/subscriptions/*"] },
            { data_actions: ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete"], hosts: ["*.blob.core.chinacloudapi.cn", "*.dfs.core.usgovcloudapi.net"] },
            { data_actions: ["Microsoft.KeyVault/vaults/secrets/setSecret/action"], hosts: ["kv-app-*.vault.azure.net"] },
          ],
        },
        options: { azure_api_unknown: "allow" },
      }),
    ],
  ],
  [
    "a restricting role, and the preset",
    [
      role("reader", {
        allow: {
          ...uses,
          azure_api: [
            { actions: ["*/read", "Microsoft.Compute/virtualMachines/restart/action"] },
            { data_actions: ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"], hosts: ["*.blob.core.windows.net"] },
            { methods: ["GET"], hosts: [GRAPH], paths: ["/v1.0/me"] },
          ],
        },
        deny: { azure_api: [{ preset: "no-privilege-escalation" }] },
        options: { azure_api_unknown: "allow" },
      }),
    ],
  ],
  ["a restricting role that lets unnamed operations through", [role("graph-ops", { allow: { ...uses, azure_api: [{ methods: ["GET", "POST"], hosts: [GRAPH], paths: ["/v1.0/*"] }, { actions: ["*"], scopes: [RG] }] }, options: { azure_api_unknown: "allow" } })]],
];

/** Seeded PRNG (mulberry32): the same seed, the same spellings, so a failure can be replayed. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { chance: (p: number) => next() < p, pick: <T>(xs: T[]): T => xs[Math.floor(next() * xs.length)] };
}
type Rand = ReturnType<typeof prng>;

const UNRESERVED = /[A-Za-z0-9\-_~]/;
const hex = (c: string, rand: Rand) => {
  const h = c.charCodeAt(0).toString(16).padStart(2, "0");
  return "%" + (rand.chance(0.5) ? h.toUpperCase() : h);
};
const randomCase = (s: string, rand: Rand) => [...s].map((c) => (rand.chance(0.5) ? c.toUpperCase() : c.toLowerCase())).join("");

interface Spelling {
  method: string;
  host: string;
  /** As sent: percent-encoded. */
  path: string;
  query: string;
  /** What was done to the plain request. */
  how: string[];
  /** It percent-encodes an unreserved character: refused wherever a rule applies. */
  encodesUnreserved: boolean;
}

/** The plain request as a client would send it: characters outside RFC 3986's pchar set percent-encoded. */
const sendable = (path: string) => path.split("/").map((s) => encodeURIComponent(s).replace(/%24/g, "$").replace(/%40/g, "@").replace(/%3A/gi, ":")).join("/");

function respell(p: Plain, rand: Rand): Spelling {
  const how: string[] = [];
  let host = p.host;
  let path = sendable(p.path);
  const query = new URLSearchParams(p.query);
  let encodesUnreserved = false;
  if (rand.chance(0.3) && p.host === ARM_HOSTS[p.cloud ?? "Azure"] && p.cloud !== undefined) {
    host = `${rand.pick(REGIONS[p.cloud])}.${host}`;
    how.push("regional host");
  }
  if (rand.chance(0.4) && /^[^.]+\.blob\./.test(p.host) && ["GET", "DELETE"].includes(p.method) && p.query === "" && p.path.split("/").length > 2) {
    // The account's Data Lake endpoint: a file read or deleted there is the same blob read or deleted.
    host = host.replace(".blob.", ".dfs.");
    how.push("dfs host");
  }
  if (rand.chance(0.3) && /^sa1\.(blob|dfs)\./.test(host)) {
    // The account's read-access secondary or a private-link name: the same data (issue 29, round 2, F1).
    host = host.replace(/^sa1\./, rand.pick(["sa1-secondary.", "sa1.privatelink.", "sa1-secondary.privatelink."]));
    how.push("secondary or private-link host");
  }
  if (rand.chance(0.5)) {
    host = randomCase(host, rand);
    how.push("host case");
  }
  if (rand.chance(0.3)) {
    host += ".";
    how.push("trailing dot");
  }
  if (rand.chance(0.3)) {
    host += ":443";
    how.push("port 443");
  }
  // Blob names are case-sensitive: another case is another blob, not another spelling (ARM's, Key Vault's and Graph's paths are not).
  if (rand.chance(0.5) && !/\.(blob|dfs)\./.test(p.host)) {
    path = randomCase(path, rand).replace(/%[0-9a-f]{2}/gi, (m) => (rand.chance(0.5) ? m.toUpperCase() : m.toLowerCase()));
    how.push("path case");
  }
  if (rand.chance(0.4)) {
    // Characters Azure does not read as themselves, encoded or not: the same path once decoded.
    path = [...path].map((c) => ("$()'!*,;=@: ".includes(c) && rand.chance(0.7) ? hex(c, rand) : c)).join("");
    how.push("reserved characters encoded");
  }
  if (rand.chance(0.25)) {
    const chars = [...path];
    const at = chars.map((c, i) => [c, i] as const).filter(([c, i]) => UNRESERVED.test(c) && chars[i - 1] !== "%" && chars[i - 2] !== "%");
    if (at.length > 0) {
      const [c, i] = rand.pick(at);
      chars[i] = hex(c, rand);
      path = chars.join("");
      encodesUnreserved = true;
      how.push(`${c} encoded`);
    }
  }
  if (rand.chance(0.3) && path !== "/") {
    path += "/";
    how.push("trailing slash");
  }
  if (rand.chance(0.4)) {
    for (const [k, v] of [["x-ms-client-request-id", "1"], ["timeout", "30"], ["$top", "5"], ["api-version", "2023-01-01"]]) if (rand.chance(0.5)) query.append(k, v);
    how.push("extra query");
  }
  const entries = [...query.entries()];
  if (rand.chance(0.5)) entries.reverse();
  return { method: rand.chance(0.3) ? p.method.toLowerCase() : p.method, host, path, query: new URLSearchParams(entries).toString(), how, encodesUnreserved };
}

const decide = (roles: Role[], r: { method: string; host: string; path: string; query: string }, cloud: CloudName = "Azure"): AzureApiDecision =>
  decideAzureApi(roles, {}, app, MI, readRequest({ method: r.method, host: r.host, path: r.path, query: new URLSearchParams(r.query) }, cloud));

describe("every spelling of a request gets the plain spelling's decision, or a refusal", () => {
  it("the plain requests are decided as a reader of the roles expects (so the property is not vacuous)", () => {
    const outcomes = ROLE_SETS.flatMap(([, roles]) => REQUESTS.map((p) => decide(roles, { ...p, path: sendable(p.path) }, p.cloud).outcome));
    expect(outcomes.filter((o) => o === "allow").length).toBeGreaterThan(20);
    expect(outcomes.filter((o) => o === "deny").length).toBeGreaterThan(40);
    // Denied by a named rule, not only as unreadable: the rules see the plain spelling.
    const byRule = ROLE_SETS.flatMap(([, roles]) => REQUESTS.map((p) => decide(roles, { ...p, path: sendable(p.path) }, p.cloud))).filter((d) => d.matched?.side === "deny");
    expect(byRule.length).toBeGreaterThan(10);
  });

  it("holds for 5,000 seeded respellings against roles that deny by actions, scopes, paths, hosts, methods and the preset", () => {
    const rand = prng(29);
    let refusedAsEncoded = 0;
    let respelt = 0;
    const tried = new Map<string, number>();
    for (let i = 0; i < 5_000; i++) {
      const [setName, roles] = rand.pick(ROLE_SETS);
      const plain = rand.pick(REQUESTS);
      const want = decide(roles, { ...plain, path: sendable(plain.path) }, plain.cloud);
      const s = respell(plain, rand);
      if (s.how.length === 0) continue;
      respelt++;
      for (const h of s.how) tried.set(h, (tried.get(h) ?? 0) + 1);
      const got = decide(roles, s, plain.cloud);
      const where = `#${i} ${setName}: ${plain.method} https://${plain.host}${plain.path}?${plain.query} spelt ${s.method} https://${s.host}${s.path}?${s.query} (${s.how.join(", ")})`;
      if (s.encodesUnreserved) {
        // Refused as unreadable, wherever a rule applies (every role set here has one).
        expect(got, where).toMatchObject({ outcome: "deny", matched: null });
        expect(got.reason, where).toContain("percent-encoded");
        refusedAsEncoded++;
        continue;
      }
      // Names compare case-insensitively, as ARM's do (a derived action keeps the path's spelling of its types).
      const seen = (d: AzureApiDecision) => ({ outcome: d.outcome, enforced: d.enforced, matched: d.matched, action: d.operation?.action?.toLowerCase(), scope: d.operation?.scope.toLowerCase() });
      expect(seen(got), where).toEqual(seen(want));
    }
    expect(respelt).toBeGreaterThan(4_000);
    expect(refusedAsEncoded).toBeGreaterThan(500);
    // Every kind of respelling was tried, many times.
    for (const h of ["regional host", "host case", "trailing dot", "port 443", "path case", "reserved characters encoded", "trailing slash", "extra query", "dfs host", "secondary or private-link host"]) expect(tried.get(h) ?? 0, h).toBeGreaterThan(100);
  });
});
