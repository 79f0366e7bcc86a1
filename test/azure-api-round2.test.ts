/**
 * The second outside review's walk-arounds of the per-request policy (issue
 * 29, round 2), on the policy's own entry points (readRequest, then
 * decideAzureApi): each plays the attack and checks the refusal. The same
 * attacks through the proxy, with their audit events, are in
 * test/proxy-path.test.ts ("per-request policy fails closed").
 */
import { describe, expect, it } from "vitest";
import { decideAzureApi, globMatch, scopeCovers } from "../src/rbac/azure-api.ts";
import { readRequest } from "../src/azure/operation.ts";
import type { CloudName } from "../src/azure/clouds.ts";
import type { AzureApiRule, Role } from "../src/rbac/types.ts";

const S = "/subscriptions/00000000-0000-0000-0000-000000000000";
const MI = `${S}/resourceGroups/ops/providers/Microsoft.ManagedIdentity/userAssignedIdentities/prod-contributor`;
const app = { name: "azure-cli", labels: { env: "prod" } };
const BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers";

const role = (name: string, spec: Role["spec"]): Role => ({ kind: "role", version: "v7", metadata: { name }, spec });
const plain = role("plain", { allow: { app_labels: { "*": "*" }, azure_identities: [MI] } });
const read = (method: string, url: string, headers: [string, string][] = [], cloud: CloudName = "Azure") => {
  const u = new URL(url);
  return readRequest({ method, host: u.host, path: u.pathname, query: u.searchParams, headers }, cloud);
};
const decide = (roles: Role[], method: string, url: string, headers: [string, string][] = [], cloud: CloudName = "Azure") => decideAzureApi(roles, {}, app, MI, read(method, url, headers, cloud));

describe("F1: a storage account's secondary and private-link names are its data, under its rules", () => {
  const blobGuard = [plain, role("blob-guard", { deny: { azure_api: [{ data_actions: [`${BLOBS}/blobs/read`], hosts: ["sa1.blob.core.windows.net"] }] } })];
  const pathGuard = [plain, role("path-guard", { deny: { azure_api: [{ methods: ["GET", "HEAD"], hosts: ["sa1.blob.core.windows.net"], paths: ["/reports/*"] }] }, options: { azure_api_unknown: "allow" } })];

  it.each([
    "https://sa1-secondary.blob.core.windows.net/reports/q1.txt",
    "https://SA1-Secondary.Blob.Core.Windows.Net./reports/q1.txt",
    "https://sa1-secondary.dfs.core.windows.net/reports/q1.txt",
    "https://sa1.privatelink.blob.core.windows.net/reports/q1.txt",
    "https://sa1-secondary.privatelink.dfs.core.windows.net:443/reports/q1.txt",
  ])("a host-scoped deny on reading sa1's blobs refuses %s", (url) => {
    expect(decide(blobGuard, "GET", "https://sa1.blob.core.windows.net/reports/q1.txt")).toMatchObject({ outcome: "deny", matched: { role: "blob-guard" } });
    expect(decide(blobGuard, "GET", url)).toMatchObject({ outcome: "deny", enforced: true, operation: { action: `${BLOBS}/blobs/read`, scope: "https://sa1.blob.core.windows.net/reports/q1.txt" }, matched: { role: "blob-guard", side: "deny", rule: 0 } });
    expect(decide(pathGuard, "GET", url)).toMatchObject({ outcome: "deny", matched: { role: "path-guard" } });
    // Another account's secondary is another account.
    expect(decide(blobGuard, "GET", url.replace(/sa1/i, "sa2")).outcome).toBe("allow");
  });

  it("a copy whose source names the secondary is decided as reading the primary's blob", () => {
    for (const source of ["https://sa1-secondary.blob.core.windows.net/reports/q1.txt", "https://sa1.privatelink.dfs.core.windows.net/reports/q1.txt"]) {
      const d = decide(pathGuard, "PUT", "https://sa1.blob.core.windows.net/public/q1.txt", [["x-ms-copy-source", source]]);
      expect(d, source).toMatchObject({ outcome: "deny", enforced: true, operation: { action: `${BLOBS}/blobs/read`, scope: "https://sa1.blob.core.windows.net/reports/q1.txt" }, matched: { role: "path-guard" }, reason: expect.stringMatching(/^the copy's source, read: /) });
    }
  });

  it("a rule naming the secondary (or a private-link name) names the account: it applies to the primary too", () => {
    const bySecondary = [plain, role("g", { deny: { azure_api: [{ methods: ["GET"], hosts: ["sa1-secondary.blob.core.windows.net."], paths: ["/reports/*"] }] }, options: { azure_api_unknown: "allow" } })];
    for (const host of ["sa1.blob.core.windows.net", "sa1-secondary.blob.core.windows.net", "sa1.dfs.core.windows.net"]) expect(decide(bySecondary, "GET", `https://${host}/reports/q1.txt`).outcome, host).toBe("deny");
    // Each cloud reads its own storage names.
    const gov = [plain, role("g", { deny: { azure_api: [{ methods: ["GET"], hosts: ["sa1.privatelink.blob.core.usgovcloudapi.net"] }] }, options: { azure_api_unknown: "allow" } })];
    expect(decide(gov, "GET", "https://sa1-secondary.dfs.core.usgovcloudapi.net/reports/q1.txt", [], "AzureUSGovernment").outcome).toBe("deny");
  });

  it("a storage host that names no one account is refused wherever a rule applies, whatever the options say", () => {
    for (const url of ["https://x.sa1.blob.core.windows.net/reports/q1.txt", "https://sa1.secondary.blob.core.windows.net/reports/q1.txt", "https://sa_1.dfs.core.windows.net/reports/q1.txt"]) {
      expect(decide(pathGuard, "GET", url), url).toMatchObject({ outcome: "deny", enforced: true, matched: null, reason: expect.stringContaining("is not a storage account's host") });
      expect(decide([plain], "GET", url).outcome, url).toBe("unrestricted");
    }
  });
});

describe("F7: blob names are case-sensitive, so Blob and dfs paths compare with case; other services' paths without", () => {
  const publicOnly = [role("public-only", { allow: { app_labels: { "*": "*" }, azure_identities: [MI], azure_api: [{ methods: ["GET"], hosts: ["sa3.blob.core.windows.net"], paths: ["/data/public/*"] }] } })];

  it("an allow of GET /data/public/* does not allow /data/PUBLIC/payroll.csv, another blob, on the blob or the dfs host", () => {
    expect(decide(publicOnly, "GET", "https://sa3.blob.core.windows.net/data/public/report.csv").outcome).toBe("allow");
    expect(decide(publicOnly, "GET", "https://sa3.dfs.core.windows.net/data/public/report.csv").outcome).toBe("allow");
    for (const url of ["https://sa3.blob.core.windows.net/data/PUBLIC/payroll.csv", "https://sa3.dfs.core.windows.net/data/Public/payroll.csv", "https://sa3-secondary.blob.core.windows.net/data/publiC/payroll.csv"]) {
      expect(decide(publicOnly, "GET", url), url).toMatchObject({ outcome: "deny", enforced: true, matched: null, reason: expect.stringContaining("is not allowed by any azure_api rule") });
    }
    // A regular expression compares with case there too.
    const byRegex = [role("re", { allow: { app_labels: { "*": "*" }, azure_identities: [MI], azure_api: [{ methods: ["GET"], hosts: ["sa3.blob.core.windows.net"], paths: ["^/data/public/[^/]+$"] }] } })];
    expect(decide(byRegex, "GET", "https://sa3.blob.core.windows.net/data/public/a.csv").outcome).toBe("allow");
    expect(decide(byRegex, "GET", "https://sa3.blob.core.windows.net/data/PUBLIC/a.csv").outcome).toBe("deny");
  });

  it("a deny compares with case too: /data/SECRET/x is another blob than /data/secret/x (write each name you mean)", () => {
    const secret = [plain, role("secret", { deny: { azure_api: [{ methods: ["GET"], hosts: ["sa3.blob.core.windows.net"], paths: ["/data/secret/*"] }] }, options: { azure_api_unknown: "allow" } })];
    expect(decide(secret, "GET", "https://sa3.blob.core.windows.net/data/secret/x.csv")).toMatchObject({ outcome: "deny", matched: { role: "secret" } });
    expect(decide(secret, "GET", "https://sa3.blob.core.windows.net/data/SECRET/x.csv").outcome).toBe("allow");
    // A copy's source compares as a request's own path does.
    expect(decide(secret, "PUT", "https://sa3.blob.core.windows.net/public/x.csv", [["x-ms-copy-source", "https://sa3.blob.core.windows.net/data/secret/x.csv"]]).outcome).toBe("deny");
  });

  it("a container (filesystem) is lower case in Azure: a path whose container has capitals is refused where a rule applies, so containers compare one way", () => {
    for (const url of ["https://sa3.blob.core.windows.net/DATA/public/x.csv", "https://sa3.dfs.core.windows.net/Data", "https://sa3.blob.core.windows.net/Data?restype=container"]) {
      expect(decide(publicOnly, "GET", url), url).toMatchObject({ outcome: "deny", matched: null, reason: expect.stringContaining("a container's name is lower case in Azure") });
    }
    expect(decide(publicOnly, "PUT", "https://sa3.blob.core.windows.net/data/x.csv", [["x-ms-copy-source", "https://sa3.blob.core.windows.net/DATA/public/x.csv"]]).reason).toContain("the x-ms-copy-source header: a container's name is lower case");
    // A lone segment on the blob host is a root container's blob, whose name may have capitals.
    expect(read("GET", "https://sa3.blob.core.windows.net/Photo.JPG").refused).toBeNull();
    expect(decide([plain], "GET", "https://sa3.blob.core.windows.net/DATA/public/x.csv").outcome).toBe("unrestricted");
  });

  it("ARM, Key Vault and Microsoft Graph ignore case in paths, and so do their rules", () => {
    const guard = [
      plain,
      role("g", {
        deny: {
          azure_api: [
            { methods: ["GET"], hosts: ["kv1.vault.azure.net"], paths: ["/secrets/db-password"] },
            { methods: ["PATCH"], hosts: ["graph.microsoft.com"], paths: ["/v1.0/users/*"] },
            { methods: ["DELETE"], hosts: ["management.azure.com"], paths: [`${S}/resourceGroups/db-prod`] },
          ],
        },
        options: { azure_api_unknown: "allow" },
      }),
    ];
    expect(decide(guard, "GET", "https://kv1.vault.azure.net/SECRETS/DB-Password").outcome).toBe("deny");
    expect(decide(guard, "PATCH", "https://graph.microsoft.com/V1.0/Users/abc").outcome).toBe("deny");
    expect(decide(guard, "DELETE", `https://management.azure.com${S.toUpperCase()}/RESOURCEGROUPS/DB-PROD`).outcome).toBe("deny");
    expect(read("GET", "https://kv1.vault.azure.net/secrets/x").canonical?.caseSensitivePath).toBe(false);
  });
});

describe("F2: a Key Vault backup is the object itself, exportable: decided with the object's read as a part", () => {
  const KV = "Microsoft.KeyVault/vaults";
  const VAULT = "https://kv1.vault.azure.net";
  const kvGuard = (rule: AzureApiRule) => [plain, role("kv-guard", { deny: { azure_api: [rule] }, options: { azure_api_unknown: "allow" } })];
  const noSecrets = kvGuard({ data_actions: [`${KV}/secrets/getSecret/action`], hosts: ["kv1.vault.azure.net"] });

  it("a getSecret deny refuses POST /secrets/{name}/backup (every spelling), with the part named; other secrets' backups follow the rule's scope", () => {
    expect(decide(noSecrets, "GET", `${VAULT}/secrets/db-password`)).toMatchObject({ outcome: "deny", matched: { role: "kv-guard" } });
    for (const url of [`${VAULT}/secrets/db-password/backup`, `${VAULT}/Secrets/DB-Password/BACKUP/`, "https://KV1.vault.azure.net.:443/secrets/db-password/backup"]) {
      expect(decide(noSecrets, "POST", url), url).toMatchObject({
        outcome: "deny",
        enforced: true,
        // Key Vault's names ignore case: the scope keeps the spelling sent.
        operation: { action: `${KV}/secrets/getSecret/action`, scope: expect.stringMatching(/^https:\/\/kv1\.vault\.azure\.net\/secrets\/db-password$/i) },
        matched: { role: "kv-guard", side: "deny", rule: 0 },
        reason: expect.stringMatching(/^the backed-up secret, read: /),
      });
    }
    // A paths deny on one secret refuses its backup, not another's.
    const one = kvGuard({ methods: ["GET"], hosts: ["kv1.vault.azure.net"], paths: ["/secrets/db-password"] });
    expect(decide(one, "POST", `${VAULT}/secrets/db-password/backup`).outcome).toBe("deny");
    expect(decide(one, "POST", `${VAULT}/secrets/other/backup`)).toMatchObject({ outcome: "allow", operation: { action: `${KV}/secrets/backup/action` } });
    // An allow-only role must allow the read as well as the backup.
    const backupOnly = [role("backup-only", { allow: { app_labels: { "*": "*" }, azure_identities: [MI], azure_api: [{ data_actions: [`${KV}/secrets/backup/action`] }] } })];
    expect(decide(backupOnly, "POST", `${VAULT}/secrets/db-password/backup`)).toMatchObject({ outcome: "deny", reason: expect.stringMatching(/^the backed-up secret, read: .* is not allowed by any azure_api rule/) });
  });

  it("a key's backup is the key read; a certificate's is the certificate and its private key (the secret of the same name)", () => {
    const noKeys = kvGuard({ data_actions: [`${KV}/keys/read`] });
    expect(decide(noKeys, "POST", `${VAULT}/keys/k1/backup`)).toMatchObject({ outcome: "deny", operation: { action: `${KV}/keys/read`, scope: `${VAULT}/keys/k1` }, reason: expect.stringMatching(/^the backed-up key, read: /) });
    const certBackup = read("POST", `${VAULT}/certificates/c1/backup`);
    expect(certBackup.operation).toMatchObject({ action: `${KV}/certificates/backup/action`, scope: `${VAULT}/certificates/c1` });
    expect(certBackup.parts.map((p) => [p.what, p.canonical.method, p.canonical.path, p.operation.action])).toEqual([
      ["the backed-up certificate, read", "GET", "/certificates/c1", `${KV}/certificates/read`],
      ["the backed-up certificate's private key (its secret), read", "GET", "/secrets/c1", `${KV}/secrets/getSecret/action`],
    ]);
    expect(decide(noSecrets, "POST", `${VAULT}/certificates/c1/backup`)).toMatchObject({ outcome: "deny", operation: { action: `${KV}/secrets/getSecret/action`, scope: `${VAULT}/secrets/c1` } });
    // Restores are named too (they were unnamed, so let through by azure_api_unknown: allow).
    for (const kind of ["secrets", "keys", "certificates"]) expect(read("POST", `${VAULT}/${kind}/restore`).operation?.action).toBe(`${KV}/${kind}/restore/action`);
    // Reads go on: the guard refuses nothing but what it names.
    expect(decide(noSecrets, "GET", `${VAULT}/secrets`).outcome).toBe("allow");
    expect(decide(noSecrets, "POST", `${VAULT}/keys/k1/backup`).outcome).toBe("allow");
  });

  it("a secure key release is named (it was unnamed, so let through by azure_api_unknown: allow), with or without a version, and a deny of it holds", () => {
    for (const url of [`${VAULT}/keys/k1/0123456789abcdef0123456789abcdef/release`, `${VAULT}/Keys/K1/RELEASE`, `${VAULT}/keys/k1/release/`]) {
      expect(read("POST", url).operation, url).toMatchObject({ action: `${KV}/keys/release/action`, scope: expect.stringMatching(/^https:\/\/kv1\.vault\.azure\.net\/keys\/k1$/i) });
    }
    expect(read("GET", `${VAULT}/keys/k1/release`).operation?.action).toBeNull();
    const noRelease = kvGuard({ data_actions: [`${KV}/keys/release/action`] });
    expect(decide(noRelease, "POST", `${VAULT}/keys/k1/0123456789abcdef0123456789abcdef/release`)).toMatchObject({ outcome: "deny", operation: { action: `${KV}/keys/release/action` } });
  });
});

describe("F3: credentials handed out on data hosts are named (a user delegation key) or refused (Key Vault's managed storage SAS)", () => {
  const UDK = "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action";
  // The preset with azure_api_unknown: allow: what it names it denies, what it cannot name goes through.
  const lenient = [plain, role("lenient-guard", { deny: { azure_api: [{ preset: "no-privilege-escalation" }] }, options: { azure_api_unknown: "allow" } })];

  it.each([
    ["https://sa1.blob.core.windows.net/?restype=service&comp=userdelegationkey", "Azure"],
    ["https://sa1.blob.core.windows.net?comp=userdelegationkey&restype=service", "Azure"],
    ["https://sa1.dfs.core.windows.net/?restype=service&comp=userdelegationkey", "Azure"],
    ["https://SA1-Secondary.Blob.Core.Windows.Net.:443/?restype=service&comp=UserDelegationKey", "Azure"],
    ["https://sa1.blob.core.usgovcloudapi.net/?restype=service&comp=userdelegationkey", "AzureUSGovernment"],
  ] as const)("Get User Delegation Key (%s) is named as Azure names it, and the preset denies it", (url, cloud) => {
    const d = decide(lenient, "POST", url, [], cloud);
    expect(d).toMatchObject({ outcome: "deny", enforced: true, operation: { plane: "control", action: UDK, scope: expect.stringMatching(/^https:\/\/sa1\.blob\.core\./) }, matched: { role: "lenient-guard", preset: "no-privilege-escalation" } });
  });

  it("a rule naming the action (an Action in Azure RBAC, not a DataAction) matches it; other account-level requests stay unnamed", () => {
    const byAction = [plain, role("g", { deny: { azure_api: [{ actions: [UDK] }] }, options: { azure_api_unknown: "allow" } })];
    expect(decide(byAction, "POST", "https://sa1.blob.core.windows.net/?restype=service&comp=userdelegationkey").outcome).toBe("deny");
    expect(read("GET", "https://sa1.blob.core.windows.net/?restype=service&comp=properties").operation?.action).toBeNull();
    expect(read("GET", "https://sa1.blob.core.windows.net/?restype=service&comp=userdelegationkey").operation?.action).toBeNull();
    expect(decide(lenient, "GET", "https://sa1.blob.core.windows.net/?restype=service&comp=properties").outcome).toBe("allow");
  });

  it("Key Vault's managed storage accounts (a SAS by GET /storage/{account}/sas/{definition}) are refused wherever a rule applies, whatever the options say", () => {
    for (const path of ["/storage/sa1/sas/readonly", "/Storage/sa1/sas/readonly/", "/storage/sa1", "/storage/sa1/regeneratekey", "/deletedstorage/sa1/sas/readonly"]) {
      const d = decide(lenient, path.endsWith("regeneratekey") ? "POST" : "GET", `https://kv1.vault.azure.net${path}`);
      expect(d, path).toMatchObject({ outcome: "deny", enforced: true, matched: null, reason: expect.stringContaining("Key Vault's managed storage accounts hand out the account's SAS tokens and keys") });
    }
    expect(decide([plain], "GET", "https://kv1.vault.azure.net/storage/sa1/sas/readonly").outcome).toBe("unrestricted");
  });
});

describe("F6: Microsoft Graph's other spellings of one call are refused, and any name under a Graph host is that host", () => {
  const APP = "5b1d9f0e-0000-4000-8000-000000000001";
  const graphGuard = [plain, role("graph-guard", { deny: { azure_api: [{ methods: ["POST"], hosts: ["graph.microsoft.com"], paths: ["/v1.0/applications/*/addPassword", "/v1.0/servicePrincipals/*/addPassword"] }] }, options: { azure_api_unknown: "allow" } })];

  it("the plain spelling is denied by the rule; OData's key in parentheses, alternate keys and namespace-qualified actions are refused before any rule", () => {
    expect(decide(graphGuard, "POST", `https://graph.microsoft.com/v1.0/applications/${APP}/addPassword`)).toMatchObject({ outcome: "deny", matched: { role: "graph-guard", rule: 0 } });
    for (const url of [
      "https://graph.microsoft.com/v1.0/applications(appId='00000000-0000-4000-8000-000000000010')/addPassword",
      `https://graph.microsoft.com/v1.0/applications('${APP}')/addPassword`,
      `https://graph.microsoft.com/v1.0/applications/${APP}/microsoft.graph.addPassword`,
      `https://graph.microsoft.com/v1.0/applications/${APP}/Microsoft.Graph.AddPassword`,
      `https://graph.microsoft.com/v1.0/applications/${APP}/graph.addPassword`,
      `https://graph.microsoft.com/v1.0/applications%28appId='x'%29/addPassword`,
      "https://graph.microsoft.com/v1.0/servicePrincipals(appId='00000000-0000-4000-8000-000000000010')/addPassword",
      "https://graph.microsoft.com/v1.0/me/drive/root:/secret.txt:/content",
      "https://graph.windows.net/contoso.onmicrosoft.com/applications/x/Microsoft.DirectoryServices.addPassword",
    ]) {
      expect(decide(graphGuard, "POST", url), url).toMatchObject({ outcome: "deny", enforced: true, matched: null, reason: expect.stringMatching(/another spelling of a Graph call/) });
    }
    // Where no rule applies, Graph is Graph's business; other Graph calls go on.
    expect(decide([plain], "POST", `https://graph.microsoft.com/v1.0/applications('${APP}')/addPassword`).outcome).toBe("unrestricted");
    expect(decide(graphGuard, "GET", "https://graph.microsoft.com/v1.0/users/alice@contoso.com").outcome).toBe("allow");
  });

  it.each([
    ["https://canary.graph.microsoft.com/v1.0/applications/A/addPassword", "Azure"],
    ["https://Canary.Graph.Microsoft.Com.:443/v1.0/Applications/A/AddPassword", "Azure"],
    ["https://x.y.graph.microsoft.com/v1.0/servicePrincipals/A/addPassword", "Azure"],
  ] as const)("a name under a Graph host (%s) is that host to a hosts rule", (url, cloud) => {
    expect(read("POST", url, [], cloud).canonical?.host).toBe("graph.microsoft.com");
    expect(decide(graphGuard, "POST", url, [], cloud)).toMatchObject({ outcome: "deny", matched: { role: "graph-guard" } });
  });

  it("each cloud's Graph hosts, and a rule naming a name under one names the host", () => {
    expect(read("GET", "https://canary.graph.microsoft.us/v1.0/me", [], "AzureUSGovernment").canonical?.host).toBe("graph.microsoft.us");
    expect(read("GET", "https://x.microsoftgraph.chinacloudapi.cn/v1.0/me", [], "AzureChinaCloud").canonical?.host).toBe("microsoftgraph.chinacloudapi.cn");
    expect(read("GET", "https://graph.chinacloudapi.cn/t/users", [], "AzureChinaCloud").canonical?.host).toBe("graph.chinacloudapi.cn");
    const byCanary = [plain, role("g", { deny: { azure_api: [{ methods: ["POST"], hosts: ["canary.graph.microsoft.com"], paths: ["/v1.0/applications/*/addPassword"] }] }, options: { azure_api_unknown: "allow" } })];
    expect(decide(byCanary, "POST", "https://graph.microsoft.com/v1.0/applications/A/addPassword").outcome).toBe("deny");
    // Not a Graph host: a look-alike is another host.
    expect(read("GET", "https://graph.microsoft.com.evil.example/v1.0/me").canonical?.host).toBe("graph.microsoft.com.evil.example");
  });
});

describe("F10: names compare without case in ASCII only; a name outside ASCII is refused where Azure's own folding would decide", () => {
  const M = `https://management.azure.com${S}/resourcegroups`;
  const kelvin = encodeURIComponent("\u212Aube-dev");
  const kubeDevOnly = [role("kube-dev-only", { allow: { app_labels: { "*": "*" }, azure_identities: [MI], azure_api: [{ actions: ["*"], scopes: [`${S}/resourceGroups/kube-dev`] }] } })];

  it("an allow scoped to kube-dev does not cover \\u212Aube-dev (U+212A KELVIN SIGN), nor anything in it; kube-dev in any ASCII case still is kube-dev", () => {
    expect(decide(kubeDevOnly, "PUT", `${M}/kube-dev`).outcome).toBe("allow");
    expect(decide(kubeDevOnly, "PUT", `${M.toUpperCase().replace("HTTPS://MANAGEMENT.AZURE.COM", "https://management.azure.com")}/KUBE-DEV`).outcome).toBe("allow");
    expect(decide(kubeDevOnly, "PUT", `${M}/other-dev`).outcome).toBe("deny");
    for (const url of [`${M}/${kelvin}`, `${M}/${kelvin}/providers/Microsoft.Compute/virtualMachines/miner`, `${M}/kube-dev/providers/Microsoft.Compute/virtualMachines/${encodeURIComponent("min\u212Aer")}`]) {
      expect(decide(kubeDevOnly, "PUT", url), url).toMatchObject({ outcome: "deny", enforced: true, matched: null, reason: expect.stringContaining("a character outside ASCII (U+212A)") });
    }
  });

  it("the matchers fold ASCII letters only: globs, scopes and regular expressions", () => {
    expect(globMatch("kube-dev", "\u212Aube-dev", "any")).toBe(false);
    expect(globMatch("KUBE-*", "kube-dev", "any")).toBe(true);
    expect(globMatch("^kube-dev$", "\u212Aube-dev", "any")).toBe(false);
    expect(globMatch("*.windows.net", "x.\u212A.windows.net", "label")).toBe(false);
    expect(scopeCovers(`${S}/resourceGroups/kube-dev`, `${S}/resourceGroups/\u212Aube-dev/providers/Microsoft.Compute/virtualMachines/miner`)).toBe(false);
    expect(scopeCovers(`${S}/resourceGroups/kube-dev`, `${S.toUpperCase()}/RESOURCEGROUPS/KUBE-DEV/providers/x/y/z`)).toBe(true);
  });

  it("a deny's group spelt with other non-ASCII case (CAFÉ for café: one group to Azure) is refused, not let through; a host outside ASCII is refused", () => {
    const guard = [plain, role("g", { deny: { azure_api: [{ actions: ["*/delete"], scopes: [`${S}/resourceGroups/café`] }] }, options: { azure_api_unknown: "allow" } })];
    expect(decide(guard, "DELETE", `${M}/${encodeURIComponent("CAFÉ")}`)).toMatchObject({ outcome: "deny", matched: null, reason: expect.stringContaining("outside ASCII (U+00C9)") });
    const raw = readRequest({ method: "GET", host: "\u212Av1.vault.azure.net", path: "/secrets/x" });
    expect(raw.refused).toContain("the host has a character outside ASCII (U+212A)");
    // Where no rule applies nothing changes; Blob names (compared exactly) may have any character.
    expect(decide([plain], "PUT", `${M}/${kelvin}`).outcome).toBe("unrestricted");
    const publicOnly = [role("p", { allow: { app_labels: { "*": "*" }, azure_identities: [MI], azure_api: [{ methods: ["GET"], hosts: ["sa3.blob.core.windows.net"], paths: ["/data/public/*"] }] } })];
    expect(decide(publicOnly, "GET", `https://sa3.blob.core.windows.net/data/public/${encodeURIComponent("café.csv")}`).outcome).toBe("allow");
  });
});
