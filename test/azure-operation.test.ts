/**
 * The request-to-operation mapper (src/azure/operation.ts), table-driven:
 * every ARM shape, case variants, extension resources, POST actions, polling,
 * data planes, and the paths it refuses to read.
 */
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import path from "node:path";
import { batchKind, canonicalRequest, differsFromDecided, mapRequest, readRequest, safeSegments, UnsafePath } from "../src/azure/operation.ts";
import { armHostSuffixes, CLOUDS } from "../src/azure/clouds.ts";
import { tokenMayGoTo } from "../src/azure/audiences.ts";
import { isAzureEndpoint } from "../src/azure/endpoints.ts";

const S = "/subscriptions/00000000-0000-0000-0000-000000000000";
const RG = `${S}/resourceGroups/app-1`;
const VM = `${RG}/providers/Microsoft.Compute/virtualMachines/vm1`;
const ARM = "management.azure.com";

type Row = [method: string, path: string, action: string | null, scope: string, confidence: "exact" | "derived" | "unknown"];

const CONTROL: Row[] = [
  // Microsoft.Resources' own tree: exact names.
  ["GET", "/subscriptions", "Microsoft.Resources/subscriptions/read", "/", "exact"],
  ["GET", "/tenants", "Microsoft.Resources/tenants/read", "/", "exact"],
  ["GET", S, "Microsoft.Resources/subscriptions/read", S, "exact"],
  ["GET", `${S}/resourcegroups`, "Microsoft.Resources/subscriptions/resourceGroups/read", S, "exact"],
  ["GET", `${S}/resourceGroups/app-1`, "Microsoft.Resources/subscriptions/resourceGroups/read", RG, "exact"],
  ["HEAD", `${S}/resourcegroups/app-1`, "Microsoft.Resources/subscriptions/resourceGroups/read", `${S}/resourcegroups/app-1`, "exact"],
  ["PUT", `${S}/resourcegroups/app-1`, "Microsoft.Resources/subscriptions/resourceGroups/write", `${S}/resourcegroups/app-1`, "exact"],
  ["PATCH", RG, "Microsoft.Resources/subscriptions/resourceGroups/write", RG, "exact"],
  ["DELETE", RG, "Microsoft.Resources/subscriptions/resourceGroups/delete", RG, "exact"],
  ["GET", `${S}/resources`, "Microsoft.Resources/subscriptions/resources/read", S, "exact"],
  ["GET", `${RG}/resources`, "Microsoft.Resources/subscriptions/resourceGroups/resources/read", RG, "exact"],
  ["GET", `${S}/locations`, "Microsoft.Resources/subscriptions/locations/read", S, "exact"],
  ["GET", `${S}/tagNames`, "Microsoft.Resources/subscriptions/tagNames/read", S, "exact"],
  ["GET", `${S}/providers`, "Microsoft.Resources/subscriptions/providers/read", S, "exact"],
  ["GET", `${S}/providers/Microsoft.Compute`, "Microsoft.Resources/subscriptions/providers/read", S, "exact"],
  ["POST", `${S}/providers/Microsoft.Compute/register`, "Microsoft.Compute/register/action", S, "exact"],
  ["POST", `${S}/providers/Microsoft.Compute/unregister`, "Microsoft.Compute/unregister/action", S, "exact"],
  ["POST", `${RG}/exportTemplate`, "Microsoft.Resources/subscriptions/resourceGroups/exportTemplate/action", RG, "derived"],
  // Provider resources: collections, items, children.
  ["GET", `${S}/providers/Microsoft.Compute/virtualMachines`, "Microsoft.Compute/virtualMachines/read", S, "derived"],
  ["GET", `${RG}/providers/Microsoft.Compute/virtualMachines`, "Microsoft.Compute/virtualMachines/read", RG, "derived"],
  ["GET", VM, "Microsoft.Compute/virtualMachines/read", VM, "derived"],
  ["PUT", VM, "Microsoft.Compute/virtualMachines/write", VM, "derived"],
  ["DELETE", VM, "Microsoft.Compute/virtualMachines/delete", VM, "derived"],
  ["GET", `${VM}/extensions`, "Microsoft.Compute/virtualMachines/extensions/read", VM, "derived"],
  ["PUT", `${VM}/extensions/ext1`, "Microsoft.Compute/virtualMachines/extensions/write", `${VM}/extensions/ext1`, "derived"],
  // POST actions.
  ["POST", `${VM}/restart`, "Microsoft.Compute/virtualMachines/restart/action", VM, "derived"],
  ["POST", `${VM}/runCommand`, "Microsoft.Compute/virtualMachines/runCommand/action", VM, "derived"],
  ["POST", `${RG}/providers/Microsoft.Storage/storageAccounts/sa1/listKeys`, "Microsoft.Storage/storageAccounts/listKeys/action", `${RG}/providers/Microsoft.Storage/storageAccounts/sa1`, "derived"],
  ["POST", `${RG}/providers/Microsoft.Web/sites/web1/config/appsettings/list`, "Microsoft.Web/sites/config/list/action", `${RG}/providers/Microsoft.Web/sites/web1/config/appsettings`, "derived"],
  ["POST", "/providers/Microsoft.Authorization/elevateAccess", "Microsoft.Authorization/elevateAccess/action", "/", "derived"],
  // Extension resources: the last provider wins.
  ["PUT", `${VM}/providers/Microsoft.Insights/diagnosticSettings/ds1`, "Microsoft.Insights/diagnosticSettings/write", `${VM}/providers/Microsoft.Insights/diagnosticSettings/ds1`, "derived"],
  ["PUT", `${RG}/providers/Microsoft.Authorization/roleAssignments/3fa85f64-5717-4562-b3fc-2c963f66afa6`, "Microsoft.Authorization/roleAssignments/write", `${RG}/providers/Microsoft.Authorization/roleAssignments/3fa85f64-5717-4562-b3fc-2c963f66afa6`, "derived"],
  ["GET", `${S}/providers/Microsoft.Authorization/roleDefinitions`, "Microsoft.Authorization/roleDefinitions/read", S, "derived"],
  ["PUT", `${RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mi1/federatedIdentityCredentials/fic1`, "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write", `${RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mi1/federatedIdentityCredentials/fic1`, "derived"],
  // Provider metadata and async-operation polling: reads.
  ["GET", "/providers/Microsoft.Authorization/providerOperations", "Microsoft.Authorization/providerOperations/read", "/", "derived"],
  ["GET", "/providers/Microsoft.Compute/operations", "Microsoft.Compute/operations/read", "/", "derived"],
  ["GET", `${S}/providers/Microsoft.Compute/locations/westeurope/operations/op1`, "Microsoft.Compute/locations/operations/read", `${S}/providers/Microsoft.Compute/locations/westeurope/operations/op1`, "derived"],
  ["GET", `${S}/providers/Microsoft.Resources/locations/westeurope/operationResults/op1`, "Microsoft.Resources/locations/operationResults/read", `${S}/providers/Microsoft.Resources/locations/westeurope/operationResults/op1`, "derived"],
  // Template deployments: one operation, many writes (denied by the preset).
  ["PUT", `${RG}/providers/Microsoft.Resources/deployments/d1`, "Microsoft.Resources/deployments/write", `${RG}/providers/Microsoft.Resources/deployments/d1`, "derived"],
  // What cannot be named.
  ["POST", "/batch", null, "/", "unknown"],
  ["GET", "/", null, "/", "unknown"],
  ["POST", VM, null, VM, "unknown"],
  ["PUT", `${RG}/providers/Microsoft.Compute/virtualMachines`, null, RG, "unknown"],
  ["PUT", "/subscriptions", null, "/", "unknown"],
];

describe("ARM requests to Azure RBAC operations", () => {
  it.each(CONTROL)("%s %s", (method, p, action, scope, confidence) => {
    const op = mapRequest({ method, host: ARM, path: p });
    expect(op).toMatchObject({ plane: "control", action, scope, confidence });
  });

  it("reads paths case-insensitively, and names Microsoft.Resources' types as Azure does", () => {
    const lower = mapRequest({ method: "PUT", host: ARM, path: RG.toLowerCase() });
    const upper = mapRequest({ method: "PUT", host: "MANAGEMENT.AZURE.COM", path: RG.toUpperCase().replace("SUBSCRIPTIONS", "Subscriptions") });
    expect(lower.action).toBe("Microsoft.Resources/subscriptions/resourceGroups/write");
    expect(upper.action).toBe("Microsoft.Resources/subscriptions/resourceGroups/write");
    // The classic management host is ARM too; each cloud has its own.
    expect(mapRequest({ method: "GET", host: "management.core.windows.net", path: S }).action).toBe("Microsoft.Resources/subscriptions/read");
    expect(mapRequest({ method: "GET", host: "management.usgovcloudapi.net", path: S }, "AzureUSGovernment").action).toBe("Microsoft.Resources/subscriptions/read");
    expect(mapRequest({ method: "GET", host: "management.azure.com", path: S }, "AzureUSGovernment").plane).toBe("data");
  });

  it("gives a resource's ID for items and actions, none for lists", () => {
    expect(mapRequest({ method: "GET", host: ARM, path: VM }).resource_id).toBe(VM);
    expect(mapRequest({ method: "POST", host: ARM, path: `${VM}/start` }).resource_id).toBe(VM);
    expect(mapRequest({ method: "GET", host: ARM, path: `${RG}/providers/Microsoft.Compute/virtualMachines` }).resource_id).toBeNull();
  });
});

describe("ARM's grammar by position: a name spelt providers is not the providers keyword (issue 29, attack finding 6)", () => {
  const SITE = `${RG}/providers/Microsoft.Web/sites/app1`;
  // Keywords sit at even positions, names at odd ones: /subscriptions/{s}/resourceGroups/{g}/providers/{ns}/{type}/{name}...
  it.each([
    ["a web app slot named providers (the Functions admin token read as functions/admin/read)", "GET", `${SITE}/slots/providers/functions/admin/token`],
    ["a VM named providers (runCommand)", "POST", `${RG}/providers/Microsoft.Compute/virtualMachines/providers/runCommand`],
    ["a resource group named providers", "PUT", `${S}/resourceGroups/providers/providers/Microsoft.Authorization/roleAssignments/x`],
    ["a deployment named providers on the provider-less path", "PUT", `${RG}/deployments/providers`],
    ["a child resource named providers below an extension resource", "PUT", `${VM}/providers/Microsoft.Insights/diagnosticSettings/providers`],
    // Other spellings of the same name: case, a trailing slash, a regional host (below).
    ["PROVIDERS in capitals", "GET", `${SITE}/slots/PROVIDERS/functions/admin/token`],
    ["Providers", "POST", `${RG}/providers/Microsoft.Compute/virtualMachines/Providers/runCommand`],
    ["a trailing slash", "POST", `${RG}/providers/Microsoft.Compute/virtualMachines/providers/runCommand/`],
  ])("%s is refused, with why", (_what, method, p) => {
    expect(() => mapRequest({ method, host: ARM, path: p })).toThrow(UnsafePath);
    expect(() => mapRequest({ method, host: ARM, path: p })).toThrow(/reads as ARM's providers keyword/);
    for (const host of [ARM, "westeurope.management.azure.com", "MANAGEMENT.AZURE.COM."]) {
      const reading = readRequest({ method, host, path: p });
      // The path is text azgate reads (its canonical form is carried), but it names no one operation.
      expect(reading, host).toMatchObject({ operation: null, refused: expect.stringMatching(/is refused: a name spelt "providers" \(segment \d+, after "[^"]+"\) reads as ARM's providers keyword/i) });
      expect(reading.canonical?.host, host).toBe(ARM);
    }
  });

  it("an encoded letter in the name (provider%73) is refused before the grammar is read", () => {
    expect(readRequest({ method: "POST", host: ARM, path: `${RG}/providers/Microsoft.Compute/virtualMachines/provider%73/runCommand` })).toMatchObject({ canonical: null, refused: expect.stringContaining('%73 is "s"') });
    expect(readRequest({ method: "POST", host: ARM, path: `${RG}/provider%73/Microsoft.Compute/virtualMachines/vm1/runCommand` })).toMatchObject({ canonical: null, refused: expect.stringContaining('%73 is "s"') });
  });

  it("providers at a keyword position still names the provider: extension resources, nested ones, the tenant and management groups", () => {
    const named = (method: string, p: string) => mapRequest({ method, host: ARM, path: p });
    expect(named("PUT", `${VM}/providers/Microsoft.Authorization/roleAssignments/x`)).toMatchObject({ action: "Microsoft.Authorization/roleAssignments/write", scope: `${VM}/providers/Microsoft.Authorization/roleAssignments/x` });
    expect(named("PUT", `${RG}/providers/Microsoft.Web/sites/app1/slots/staging/providers/Microsoft.Authorization/roleAssignments/x`).action).toBe("Microsoft.Authorization/roleAssignments/write");
    expect(named("PUT", `${RG}/providers/Microsoft.Web/sites/app1/slots/staging/PROVIDERS/Microsoft.Authorization/roleAssignments/x`).action).toBe("Microsoft.Authorization/roleAssignments/write");
    expect(named("PUT", "/providers/Microsoft.Management/managementGroups/mg1/providers/Microsoft.Authorization/roleAssignments/x").action).toBe("Microsoft.Authorization/roleAssignments/write");
    expect(named("GET", `${SITE}/slots/staging/functions/admin/token`)).toMatchObject({ action: "Microsoft.Web/sites/slots/functions/token/read" });
    expect(named("POST", `${RG}/providers/Microsoft.Compute/virtualMachines/web-01/runCommand`).action).toBe("Microsoft.Compute/virtualMachines/runCommand/action");
    // A name that only contains the word is a name like any other.
    expect(named("POST", `${RG}/providers/Microsoft.Compute/virtualMachines/providers-1/runCommand`).action).toBe("Microsoft.Compute/virtualMachines/runCommand/action");
    // The subscription's provider list, one provider and its registration: providers at position 2.
    expect(named("GET", `${S}/providers`).action).toBe("Microsoft.Resources/subscriptions/providers/read");
    expect(named("POST", `${S}/providers/Microsoft.Compute/register`).action).toBe("Microsoft.Compute/register/action");
  });
});

describe("paths the mapper refuses to read", () => {
  it.each([
    ["/subscriptions/x/resourceGroups/a%2F..%2Fb", /encoded separators/],
    ["/subscriptions/x/resourceGroups/a%5Cb", /encoded separators/],
    ["/subscriptions/x/resourceGroups/%2e%2e", /encoded separators/],
    ["/subscriptions/x//resourceGroups/a", /empty path segments/],
    ["//subscriptions/x", /empty path segments/],
    ["/subscriptions/x/resourceGroups/a.", /end in a dot or whitespace/],
    ["/subscriptions/x/resourceGroups/a%20", /end in a dot or whitespace/],
    ["/subscriptions/x/resourceGroups/a%09b", /control characters/],
    ["/subscriptions/x\\resourceGroups", /backslashes/],
    ["/subscriptions/%E0%A4%A", /malformed percent-encoding/],
    ["subscriptions", /must start with \//],
  ])("%s", (p, message) => {
    expect(() => safeSegments(p)).toThrow(UnsafePath);
    expect(() => mapRequest({ method: "GET", host: ARM, path: p })).toThrow(message);
  });

  it.each([
    ["/reports/%73ecret.txt", /%73 is "s"/],
    ["/subscriptions/x/resourceGroups/%41pp", /%41 is "A"/],
    ["/subscriptions/x/resourceGroups/app%2D1", /%2D is "-"/],
    ["/subscriptions/x/resourceGroups/app%5f1", /%5f is "_"/],
    ["/subscriptions/x/resourceGroups/app%7E1", /%7E is "~"/],
    ["/subscriptions/x/resourceGroups/app%31", /%31 is "1"/],
    ["/reports/%2573ecret.txt", /encoded twice/],
  ])("refuses an encoded unreserved character or a double encoding: %s", (p, message) => {
    expect(() => safeSegments(p)).toThrow(message);
  });

  it("accepts a trailing slash and ordinary encoded characters", () => {
    expect(safeSegments(`${RG}/`)).toEqual(["subscriptions", "00000000-0000-0000-0000-000000000000", "resourceGroups", "app-1"]);
    expect(safeSegments("/subscriptions/x/resourceGroups/caf%C3%A9")).toEqual(["subscriptions", "x", "resourceGroups", "café"]);
    expect(safeSegments("/subscriptions/x/resourceGroups/caf%c3%a9")).toEqual(["subscriptions", "x", "resourceGroups", "café"]);
    expect(safeSegments("/v1.0/%24batch")).toEqual(["v1.0", "$batch"]);
    expect(safeSegments("/reports/q1%20%28final%29.txt")).toEqual(["reports", "q1 (final).txt"]);
  });
});

describe("the canonical request: one reading for every spelling Azure treats as the same", () => {
  it("host in lower case without port or trailing dot; path decoded, without a trailing slash; method in upper case", () => {
    const c = canonicalRequest({ method: "get", host: "Graph.Microsoft.COM.:443", path: "/v1.0/users/caf%C3%A9/" });
    expect(c).toMatchObject({ method: "GET", host: "graph.microsoft.com", arm: false, segments: ["v1.0", "users", "café"], path: "/v1.0/users/café" });
    expect(canonicalRequest({ method: "GET", host: "management.azure.com", path: "/" }).path).toBe("/");
  });

  it("every host an ARM token may go to is read as ARM, as the cloud's ARM host, but the container registry", () => {
    for (const cloud of Object.values(CLOUDS)) {
      const audienceHosts = cloud.audienceHosts.filter(([r]) => cloud.armAudiences.some((a) => a.replace(/\/$/, "") === r)).flatMap(([, hs]) => hs);
      expect(armHostSuffixes(cloud)).toContain(cloud.armHost);
      expect(audienceHosts).toContain(cloud.containerRegistrySuffix);
      for (const suffix of new Set(audienceHosts)) {
        for (const host of [suffix, `westeurope.${suffix}`, `${suffix.toUpperCase()}.`]) {
          expect(tokenMayGoTo(cloud.armAudiences[0], host, cloud.name), host).toBe(true);
          const c = canonicalRequest({ method: "GET", host, path: S }, cloud.name);
          if (suffix === cloud.containerRegistrySuffix) {
            expect(c, host).toMatchObject({ arm: false, host: host.toLowerCase().replace(/\.$/, "") });
            expect(mapRequest({ method: "GET", host, path: S }, cloud.name), host).toMatchObject({ plane: "data", action: null });
          } else {
            expect(c, host).toMatchObject({ arm: true, host: cloud.armHost });
            expect(mapRequest({ method: "GET", host, path: S }, cloud.name).action, host).toBe("Microsoft.Resources/subscriptions/read");
          }
        }
      }
    }
    // A look-alike is not ARM.
    expect(canonicalRequest({ method: "GET", host: "evilmanagement.azure.com", path: S }).arm).toBe(false);
  });

  it("the query parameters the mapper reads are read once, in one spelling", () => {
    const blob = (q: string) => canonicalRequest({ method: "GET", host: "sa1.blob.core.windows.net", path: "/c1", query: new URLSearchParams(q) });
    expect(() => blob("restype=container&Comp=list")).toThrow(/Comp must be spelt comp/);
    expect(() => blob("comp=list&comp=batch")).toThrow(/comp may be given once/);
    // Other parameters are Azure's business (api-version, a SAS, paging).
    expect(blob("restype=container&comp=list&x=1&X=2&api-version=1&api-version=2").path).toBe("/c1");
  });

  it("names batch requests, whose bodies hold requests azgate does not read", () => {
    const kind = (method: string, host: string, p: string, q = "") => batchKind(canonicalRequest({ method, host, path: p, query: new URLSearchParams(q) }));
    expect(kind("POST", ARM, "/batch")).toBe("ARM's /batch");
    expect(kind("POST", "northeurope.management.azure.com", "/Batch/")).toBe("ARM's /batch");
    expect(kind("POST", "graph.microsoft.com", "/v1.0/$batch")).toMatch(/OData \$batch/);
    expect(kind("POST", "graph.microsoft.com", "/beta/%24BATCH")).toMatch(/OData \$batch/);
    expect(kind("POST", "sa1.table.core.windows.net", "/$batch")).toMatch(/OData \$batch/);
    expect(kind("POST", "sa1.blob.core.windows.net", "/", "comp=batch")).toBe("a storage comp=batch");
    expect(kind("POST", "sa1.blob.core.windows.net", "/c1", "restype=container&comp=Batch")).toBe("a storage comp=batch");
    // Not batches: a resource or a blob named batch below the root, Azure Batch's own service.
    expect(kind("GET", ARM, `${RG}/providers/Microsoft.Batch/batchAccounts/batch`)).toBeNull();
    expect(kind("GET", "sa1.blob.core.windows.net", "/c1/batch")).toBeNull();
    expect(kind("GET", "myaccount.westeurope.batch.core.windows.net", "/jobs")).toBeNull();
  });

  it("readRequest refuses what no rule may decide on, and says why", () => {
    expect(readRequest({ method: "POST", host: ARM, path: "/batch" }).refused).toMatch(/^POST https:\/\/management\.azure\.com\/batch is refused: ARM's \/batch carries requests/);
    expect(readRequest({ method: "GET", host: ARM, path: "/subscriptions/%73" })).toMatchObject({ canonical: null, operation: null, refused: expect.stringContaining("percent-encoded") });
    expect(readRequest({ method: "POST", host: ARM, path: `${VM}/restart`, headers: [["X-HTTP-Method", "DELETE"]] }).refused).toContain("X-HTTP-Method header is not allowed");
    expect(readRequest({ method: "GET", host: ARM, path: S })).toMatchObject({ refused: null, operation: { action: "Microsoft.Resources/subscriptions/read" } });
  });

  it("the agent compares the canonical request: another spelling of the decided request passes, another request does not", () => {
    const decided = { method: "PUT", host: ARM, path: RG, action: "Microsoft.Resources/subscriptions/resourceGroups/write" };
    const at = (method: string, host: string, p: string, headers: [string, string][] = []) => differsFromDecided(decided, { method, host, path: p, headers }, "Azure");
    expect(at("PUT", ARM, RG)).toBeNull();
    expect(at("put", "westeurope.management.azure.com.", `${RG}/`)).toBeNull();
    expect(at("PUT", ARM, `${S}/resourceGroups/app-2`)).toMatch(/is not the one the proxy decided/);
    expect(at("PUT", ARM, `${S}/resourceGroups/%61pp-1`)).toMatch(/percent-encoded/);
    expect(at("PUT", ARM, RG, [["x-http-method-override", "DELETE"]])).toMatch(/header is not allowed/);
    const batch = { method: "POST", host: ARM, path: "/batch", action: null };
    expect(differsFromDecided(batch, { method: "POST", host: ARM, path: "/batch", headers: [] }, "Azure")).toMatch(/ARM's \/batch/);
  });
});

describe("data planes", () => {
  const KV = "kv-app-1.vault.azure.net";
  const BLOB = "sa1.blob.core.windows.net";
  it.each([
    ["GET", KV, "/secrets", "", "Microsoft.KeyVault/vaults/secrets/readMetadata/action", `https://${KV}/secrets`],
    ["GET", KV, "/secrets/db", "", "Microsoft.KeyVault/vaults/secrets/getSecret/action", `https://${KV}/secrets/db`],
    ["GET", KV, "/secrets/db/0000000000000000000000000000000a", "", "Microsoft.KeyVault/vaults/secrets/getSecret/action", `https://${KV}/secrets/db`],
    ["GET", KV, "/secrets/db/versions", "", "Microsoft.KeyVault/vaults/secrets/readMetadata/action", `https://${KV}/secrets/db`],
    ["PUT", KV, "/secrets/db", "", "Microsoft.KeyVault/vaults/secrets/setSecret/action", `https://${KV}/secrets/db`],
    ["DELETE", KV, "/secrets/db", "", "Microsoft.KeyVault/vaults/secrets/delete", `https://${KV}/secrets/db`],
    ["DELETE", KV, "/deletedsecrets/db", "", "Microsoft.KeyVault/vaults/secrets/purge/action", `https://${KV}/deletedsecrets/db`],
    ["POST", KV, "/keys/k1/v1/sign", "", "Microsoft.KeyVault/vaults/keys/sign/action", `https://${KV}/keys/k1`],
    ["POST", KV, "/keys/k1/v1/unwrapKey", "", "Microsoft.KeyVault/vaults/keys/unwrapKey/action", `https://${KV}/keys/k1`],
    ["GET", KV, "/keys/k1", "", "Microsoft.KeyVault/vaults/keys/read", `https://${KV}/keys/k1`],
    ["GET", BLOB, "/", "comp=list", "Microsoft.Storage/storageAccounts/blobServices/containers/read", `https://${BLOB}`],
    ["GET", BLOB, "/c1", "restype=container&comp=list", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", `https://${BLOB}/c1`],
    ["PUT", BLOB, "/c1", "restype=container", "Microsoft.Storage/storageAccounts/blobServices/containers/write", `https://${BLOB}/c1`],
    ["GET", BLOB, "/c1/dir/a.txt", "", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", `https://${BLOB}/c1/dir/a.txt`],
    ["PUT", BLOB, "/c1/a.txt", "", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write", `https://${BLOB}/c1/a.txt`],
    ["PUT", BLOB, "/c1/a.txt", "comp=appendblock", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action", `https://${BLOB}/c1/a.txt`],
    ["DELETE", BLOB, "/c1/a.txt", "", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete", `https://${BLOB}/c1/a.txt`],
    ["GET", BLOB, "/c1/a.txt", "comp=tags", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/read", `https://${BLOB}/c1/a.txt`],
  ])("%s %s%s?%s", (method, host, p, query, action, scope) => {
    expect(mapRequest({ method, host, path: p, query: new URLSearchParams(query) })).toMatchObject({ plane: "data", action, scope });
  });

  it("names nothing on hosts without a mapping (method and path rules only)", () => {
    expect(mapRequest({ method: "GET", host: "graph.microsoft.com", path: "/v1.0/me" })).toEqual({ plane: "data", action: null, scope: "https://graph.microsoft.com/v1.0/me", resource_id: null, confidence: "unknown" });
    expect(mapRequest({ method: "POST", host: KV, path: "/secrets" }).action).toBeNull();
  });
});

describe("a storage account's other names (issue 29, round 2, F1): its secondary and private-link hosts are its data", () => {
  const C = "Microsoft.Storage/storageAccounts/blobServices/containers";
  type Cloud = "Azure" | "AzureUSGovernment" | "AzureChinaCloud";
  const SUFFIX: Record<Cloud, string> = { Azure: "core.windows.net", AzureUSGovernment: "core.usgovcloudapi.net", AzureChinaCloud: "core.chinacloudapi.cn" };
  const read = (host: string, cloud: Cloud = "Azure", method = "GET", p = "/reports/q1.csv", headers: [string, string][] = []) => readRequest({ method, host, path: p, query: new URLSearchParams(), headers }, cloud);

  it("every spelling of every name of the account, in every cloud, blob or dfs: one canonical blob host", () => {
    for (const cloud of Object.keys(SUFFIX) as Cloud[]) {
      const blob = `sa1.blob.${SUFFIX[cloud]}`;
      for (const service of ["blob", "dfs"]) {
        for (const name of ["sa1", "sa1-secondary", "sa1.privatelink", "sa1-secondary.privatelink"]) {
          for (const spelt of [`${name}.${service}.${SUFFIX[cloud]}`, `${name}.${service}.${SUFFIX[cloud]}`.toUpperCase(), `${name}.${service}.${SUFFIX[cloud]}.`, `${name}.${service}.${SUFFIX[cloud]}:443`]) {
            const r = read(spelt, cloud);
            expect(r, spelt).toMatchObject({ refused: null, canonical: { host: blob, dfs: service === "dfs", aliases: [`sa1.dfs.${SUFFIX[cloud]}`] }, operation: { action: `${C}/blobs/read`, scope: `https://${blob}/reports/q1.csv` } });
          }
        }
      }
    }
  });

  it("Queue, Table and Files: the secondary and private-link names read as the account's primary host for that service", () => {
    for (const service of ["queue", "table", "file"]) {
      for (const name of ["sa1-secondary", "SA1.privatelink", "sa1-secondary.privatelink"]) {
        expect(read(`${name}.${service}.core.windows.net.`).canonical, name).toMatchObject({ host: `sa1.${service}.core.windows.net`, dfs: false, aliases: [] });
      }
    }
  });

  it("a name under a storage suffix that is no account's (more labels, a name an account cannot have) is refused, not read as another host", () => {
    for (const host of ["x.sa1.blob.core.windows.net", "sa1.secondary.blob.core.windows.net", "sa1-secondary-secondary.blob.core.windows.net", "sa_1.blob.core.windows.net", "s1.blob.core.windows.net", "a234567890123456789012345.dfs.core.windows.net", "sa1.privatelink.privatelink.blob.core.windows.net", "sa1-primary.queue.core.windows.net"]) {
      expect(read(host), host).toMatchObject({ canonical: null, operation: null, refused: expect.stringContaining("is not a storage account's host") });
    }
    // As a copy's source too.
    expect(read("sa1.blob.core.windows.net", "Azure", "PUT", "/public/x.txt", [["x-ms-copy-source", "https://x.sa1.blob.core.windows.net/reports/q1.csv"]]).refused).toMatch(/the x-ms-copy-source header: x\.sa1\.blob\.core\.windows\.net is not a storage account's host/);
    // A copy whose source is the secondary reads the primary's blob.
    const copy = read("sa1.blob.core.windows.net", "Azure", "PUT", "/public/x.txt", [["x-ms-copy-source", "https://SA1-secondary.blob.core.windows.net./reports/q1.csv"]]);
    expect(copy.parts.map((p) => [p.what, p.canonical.host, p.operation.scope])).toEqual([["the copy's source, read", "sa1.blob.core.windows.net", "https://sa1.blob.core.windows.net/reports/q1.csv"]]);
    // Not storage at all: the suffix itself, another cloud's storage, a look-alike, Azure's DNS-zone endpoints (not an API host azgate forwards to).
    for (const host of ["blob.core.windows.net", "sa1.blob.core.usgovcloudapi.net", "sa1.blob.core.windows.net.evil.example", "sa1.z13.blob.storage.azure.net"]) {
      expect(read(host), host).toMatchObject({ refused: null, canonical: { host, dfs: false, aliases: [] }, operation: { action: null } });
    }
    expect(isAzureEndpoint("sa1.z13.blob.storage.azure.net")).toBe(false);
  });
});

describe("ADLS Gen2: a storage account's dfs host is its blob data, named with Blob's data actions (issue 29, attack finding 7)", () => {
  const DFS = "sa1.dfs.core.windows.net";
  const BLOB = "sa1.blob.core.windows.net";
  const C = "Microsoft.Storage/storageAccounts/blobServices/containers";
  const read = (method: string, p: string, query = "", headers: [string, string][] = [], host = DFS, cloud: "Azure" | "AzureUSGovernment" | "AzureChinaCloud" = "Azure") => readRequest({ method, host, path: p, query: new URLSearchParams(query), headers }, cloud);

  it.each([
    ["GET", "/", "resource=account", [], `${C}/read`, `https://${BLOB}`],
    ["PUT", "/reports", "resource=filesystem", [], `${C}/write`, `https://${BLOB}/reports`],
    ["PATCH", "/reports", "resource=filesystem", [], `${C}/write`, `https://${BLOB}/reports`],
    ["HEAD", "/reports", "resource=filesystem", [], `${C}/read`, `https://${BLOB}/reports`],
    ["GET", "/reports", "resource=filesystem&recursive=true&directory=2024", [], `${C}/blobs/read`, `https://${BLOB}/reports`],
    ["DELETE", "/reports", "resource=filesystem", [], `${C}/delete`, `https://${BLOB}/reports`],
    ["PUT", "/reports/2024/q1.csv", "resource=file", [], `${C}/blobs/write`, `https://${BLOB}/reports/2024/q1.csv`],
    ["PUT", "/reports/2024", "resource=directory", [], `${C}/blobs/write`, `https://${BLOB}/reports/2024`],
    ["GET", "/reports/q1.csv", "", [], `${C}/blobs/read`, `https://${BLOB}/reports/q1.csv`],
    ["HEAD", "/reports/q1.csv", "", [], `${C}/blobs/read`, `https://${BLOB}/reports/q1.csv`],
    ["HEAD", "/reports/q1.csv", "action=getAccessControl&upn=true", [], `${C}/blobs/read`, `https://${BLOB}/reports/q1.csv`],
    ["HEAD", "/reports/q1.csv", "action=getStatus", [], `${C}/blobs/read`, `https://${BLOB}/reports/q1.csv`],
    ["DELETE", "/reports/q1.csv", "", [], `${C}/blobs/delete`, `https://${BLOB}/reports/q1.csv`],
    ["DELETE", "/reports/2024", "recursive=true", [], `${C}/blobs/delete`, `https://${BLOB}/reports/2024`],
    ["PATCH", "/reports/q1.csv", "action=append&position=0", [], `${C}/blobs/write`, `https://${BLOB}/reports/q1.csv`],
    ["PATCH", "/reports/q1.csv", "action=append&position=0&flush=true", [], `${C}/blobs/write`, `https://${BLOB}/reports/q1.csv`],
    ["PATCH", "/reports/q1.csv", "action=flush&position=10", [], `${C}/blobs/write`, `https://${BLOB}/reports/q1.csv`],
    ["PATCH", "/reports/q1.csv", "action=setProperties", [], `${C}/blobs/write`, `https://${BLOB}/reports/q1.csv`],
    ["PATCH", "/reports/q1.csv", "action=setAccessControl", [["x-ms-acl", "user::rwx"]], `${C}/blobs/modifyPermissions/action`, `https://${BLOB}/reports/q1.csv`],
    ["PATCH", "/reports/q1.csv", "action=setAccessControl", [["x-ms-permissions", "0777"]], `${C}/blobs/modifyPermissions/action`, `https://${BLOB}/reports/q1.csv`],
    ["PATCH", "/reports/q1.csv", "action=setAccessControl", [["x-ms-owner", "00000000-0000-0000-0000-00000000000a"]], `${C}/blobs/manageOwnership/action`, `https://${BLOB}/reports/q1.csv`],
    ["PATCH", "/reports/2024", "action=setAccessControlRecursive&mode=modify", [["x-ms-acl", "user::rwx"]], `${C}/blobs/modifyPermissions/action`, `https://${BLOB}/reports/2024`],
  ] as [string, string, string, [string, string][], string, string][])("%s %s?%s %j is %s", (method, p, query, headers, action, scope) => {
    const r = read(method, p, query, headers);
    expect(r).toMatchObject({ refused: null, operation: { plane: "data", action, scope }, parts: [] });
    // The same data through the blob host names the same scope.
    expect(r.canonical).toMatchObject({ host: BLOB, dfs: true, aliases: [DFS] });
  });

  it.each([
    ["POST", "/reports/q1.csv", ""],
    ["PUT", "/reports/q1.csv", ""],
    ["PUT", "/reports/q1.csv", "comp=undelete"],
    ["PUT", "/reports/q1.csv", "resource=filesystem"],
    ["PATCH", "/reports/q1.csv", "action=lease"],
    ["PATCH", "/reports/q1.csv", ""],
    ["GET", "/reports", ""],
    ["GET", "/reports/q1.csv", "action=getAccessControl"],
    ["GET", "/", ""],
    ["HEAD", "/reports/q1.csv", "action=other"],
  ])("%s %s?%s names nothing (refused wherever a rule applies)", (method, p, query) => {
    expect(read(method, p, query)).toMatchObject({ refused: null, operation: { action: null, confidence: "unknown" } });
  });

  it("every cloud's dfs host, a secondary or private-link name, any case, a trailing dot or port: one canonical blob host", () => {
    const cases: [string, "Azure" | "AzureUSGovernment" | "AzureChinaCloud", string, string][] = [
      ["sa1.dfs.core.windows.net", "Azure", "sa1.blob.core.windows.net", "sa1.dfs.core.windows.net"],
      ["SA1.DFS.Core.Windows.Net.", "Azure", "sa1.blob.core.windows.net", "sa1.dfs.core.windows.net"],
      ["sa1.dfs.core.windows.net:443", "Azure", "sa1.blob.core.windows.net", "sa1.dfs.core.windows.net"],
      // The account's read-access secondary and private-link names are its data too (issue 29, round 2, F1).
      ["sa1-secondary.dfs.core.windows.net", "Azure", "sa1.blob.core.windows.net", "sa1.dfs.core.windows.net"],
      ["sa1.privatelink.dfs.core.windows.net", "Azure", "sa1.blob.core.windows.net", "sa1.dfs.core.windows.net"],
      ["sa1.dfs.core.usgovcloudapi.net", "AzureUSGovernment", "sa1.blob.core.usgovcloudapi.net", "sa1.dfs.core.usgovcloudapi.net"],
      ["sa1.dfs.core.chinacloudapi.cn", "AzureChinaCloud", "sa1.blob.core.chinacloudapi.cn", "sa1.dfs.core.chinacloudapi.cn"],
    ];
    for (const [host, cloud, blob, dfs] of cases) {
      const r = read("DELETE", "/reports/q1.csv/", "", [], host, cloud);
      expect(r, host).toMatchObject({ refused: null, canonical: { host: blob, dfs: true, aliases: [dfs], path: "/reports/q1.csv" }, operation: { action: `${C}/blobs/delete`, scope: `https://${blob}/reports/q1.csv` } });
      // The blob host answers to the same names, so a hosts rule naming either endpoint applies to both.
      expect(read("DELETE", "/reports/q1.csv", "", [], host.replace(/dfs/i, "blob"), cloud).canonical, host).toMatchObject({ host: blob, dfs: false, aliases: [dfs] });
    }
    // Another cloud's dfs host, a look-alike, and dfs without an account are not this cloud's storage.
    expect(read("DELETE", "/reports/q1.csv", "", [], "sa1.dfs.core.usgovcloudapi.net", "Azure")).toMatchObject({ canonical: { dfs: false, aliases: [] }, operation: { action: null } });
    expect(read("DELETE", "/reports/q1.csv", "", [], "sa1.dfs.core.windows.net.evil.example")).toMatchObject({ canonical: { dfs: false }, operation: { action: null } });
    expect(read("DELETE", "/reports/q1.csv", "", [], "dfs.core.windows.net")).toMatchObject({ canonical: { dfs: false }, operation: { action: null } });
  });

  it("a rename (x-ms-rename-source) is named move/action, and reads as what it does: the source read and removed, the destination written", () => {
    for (const source of ["/reports/q1.csv", "/reports/q1.csv?sv=2023-01-03&sig=abc", "/reports/q1.csv/"]) {
      const r = read("PUT", "/trash/q1.csv", "mode=legacy", [["x-ms-rename-source", source]]);
      expect(r.operation, source).toMatchObject({ action: `${C}/blobs/move/action`, scope: `https://${BLOB}/trash/q1.csv` });
      expect(r.parts.map((p) => [p.what, p.canonical.method, p.canonical.path, p.canonical.caseSensitivePath, p.operation.action, p.operation.scope]), source).toEqual([
        ["the rename's source, read", "GET", "/reports/q1.csv", true, `${C}/blobs/read`, `https://${BLOB}/reports/q1.csv`],
        ["the rename's source, removed", "DELETE", "/reports/q1.csv", true, `${C}/blobs/delete`, `https://${BLOB}/reports/q1.csv`],
        ["the rename's destination, written", "PUT", "/trash/q1.csv", true, `${C}/blobs/write`, `https://${BLOB}/trash/q1.csv`],
      ]);
    }
    // A filesystem (container) is lower case in Azure: one spelt with capitals is refused (issue 29, round 2, F7).
    expect(read("PUT", "/trash/q1.csv", "mode=legacy", [["x-ms-rename-source", "/Reports/q1.csv"]]).refused).toContain('the x-ms-rename-source header: a container\'s name is lower case in Azure, and "Reports" is not');
    // Set Access Control setting both the ACL and the owner is both operations.
    const both = read("PATCH", "/reports/q1.csv", "action=setAccessControl", [["x-ms-acl", "user::rwx"], ["X-MS-Owner", "someone"]]);
    expect([both.operation?.action, ...both.parts.map((p) => p.operation.action)]).toEqual([`${C}/blobs/modifyPermissions/action`, `${C}/blobs/manageOwnership/action`]);
    // A rename source anywhere but on a path's PUT names nothing.
    expect(read("PATCH", "/trash/q1.csv", "action=flush", [["x-ms-rename-source", "/reports/q1.csv"]]).operation?.action).toBeNull();
    expect(read("PUT", "/trash", "resource=filesystem", [["x-ms-rename-source", "/reports/q1.csv"]]).operation?.action).toBeNull();
  });

  it.each([
    ["an encoded letter in the source", [["x-ms-rename-source", "/reports/%711.csv"]], /x-ms-rename-source header: percent-encoded letters/],
    ["dot segments in the source", [["x-ms-rename-source", "/trash/../reports/q1.csv"]], /x-ms-rename-source header: dot segments/],
    ["an encoded separator in the source", [["x-ms-rename-source", "/reports%2Fq1.csv"]], /x-ms-rename-source header: encoded separators/],
    ["a source without a path in its filesystem", [["x-ms-rename-source", "/reports"]], /must name a filesystem and a path/],
    ["a source not starting with /", [["x-ms-rename-source", "reports/q1.csv"]], /x-ms-rename-source header: the path must start with \//],
    ["two sources", [["x-ms-rename-source", "/reports/a.csv"], ["X-Ms-Rename-Source", "/reports/b.csv"]], /x-ms-rename-source header may be given once/],
    ["two ACLs", [["x-ms-acl", "user::rwx"], ["x-ms-acl", "user::---"]], /x-ms-acl header may be given once/],
  ] as [string, [string, string][], RegExp][])("refuses %s wherever a rule applies", (_what, headers, message) => {
    expect(read("PUT", "/trash/q1.csv", "", headers)).toMatchObject({ canonical: null, operation: null, parts: [], refused: expect.stringMatching(message) });
  });

  it("the query parameters it names requests by are read once, in one spelling, on dfs hosts only", () => {
    expect(read("PATCH", "/reports/q1.csv", "Action=append").refused).toMatch(/Action must be spelt action/);
    expect(read("PATCH", "/reports/q1.csv", "action=append&action=setAccessControl").refused).toMatch(/action may be given once/);
    expect(read("PUT", "/reports", "resource=filesystem&RESOURCE=file").refused).toMatch(/RESOURCE must be spelt resource/);
    // Elsewhere they are Azure's business.
    expect(readRequest({ method: "GET", host: "graph.microsoft.com", path: "/v1.0/me", query: new URLSearchParams("action=a&action=b") }).refused).toBeNull();
  });

  it("mapRequest names a dfs request as readRequest does (the emulator's reading)", () => {
    expect(mapRequest({ method: "DELETE", host: DFS, path: "/reports/q1.csv" })).toMatchObject({ action: `${C}/blobs/delete`, scope: `https://${BLOB}/reports/q1.csv` });
  });
});

describe("the requests the real az sends (test/fixtures/az-requests.json, captured through azgate against the emulator)", () => {
  const golden = JSON.parse(readFileSync(path.join(import.meta.dirname, "fixtures/az-requests.json"), "utf8")) as { command: string; requests: { method: string; host: string; path: string; query: string; action: string | null }[] }[];
  it("covers at least 30 commands", () => {
    expect(golden.length).toBeGreaterThanOrEqual(30);
    expect(golden.every((c) => c.requests.length > 0)).toBe(true);
  });
  it.each(golden.map((c) => [c.command, c.requests] as const))("az %s", (_command, requests) => {
    for (const r of requests) {
      expect(mapRequest({ method: r.method, host: r.host, path: r.path, query: new URLSearchParams(r.query) }).action, `${r.method} ${r.host}${r.path}`).toBe(r.action);
    }
  });
});
