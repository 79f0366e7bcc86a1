/**
 * The no-privilege-escalation preset (src/rbac/azure-api.ts PRESETS), built
 * by pattern from Azure's published operations
 * (test/fixtures/azure-operations.txt): every operation of the fixture it
 * catches is listed in test/fixtures/preset-catches.txt (regenerate with
 * `npx vitest run test/azure-api-preset.test.ts -u` and read the diff), what
 * it must leave alone is checked here, and requests as az and the SDKs send
 * them are decided through the mapper.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { decideAzureApi, globMatch, PRESETS } from "../src/rbac/azure-api.ts";
import { readRequest } from "../src/azure/operation.ts";
import type { Role } from "../src/rbac/types.ts";

const published = readFileSync(path.join(import.meta.dirname, "fixtures/azure-operations.txt"), "utf8")
  .split("\n")
  .filter((l) => l && !l.startsWith("#"));
const patterns = PRESETS["no-privilege-escalation"].flatMap((r) => r.actions ?? []);
const caught = (op: string) => patterns.some((p) => globMatch(p, op, "any"));
const catches = [...new Set(published.filter(caught))].sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase()));

describe("the no-privilege-escalation preset, by pattern from Azure's published operations", () => {
  it("is actions only: every rule a list of ARM actions", () => {
    for (const rule of PRESETS["no-privilege-escalation"]) expect(Object.keys(rule)).toEqual(["actions"]);
  });

  it("every literal name is one Azure publishes, and every wildcard catches at least one", () => {
    for (const p of patterns) {
      const covered = published.filter((op) => globMatch(p, op, "any"));
      expect(covered.length, `${p} names no published operation`).toBeGreaterThan(0);
      if (!p.includes("*")) expect(new Set(covered.map((op) => op.toLowerCase())), p).toEqual(new Set([p.toLowerCase()]));
    }
  });

  it("catches exactly the operations listed in test/fixtures/preset-catches.txt", async () => {
    await expect(catches.join("\n") + "\n").toMatchFileSnapshot("fixtures/preset-catches.txt");
  });

  it("docs/policy.md states the figures this test computes: the operations it is built from, and how many it denies", () => {
    const doc = readFileSync(path.join(import.meta.dirname, "../docs/policy.md"), "utf8");
    const section = doc.slice(doc.indexOf("### `no-privilege-escalation`"));
    const figure = (re: RegExp) => Number(section.match(re)?.[1]?.replaceAll(",", ""));
    const stated = { operations: figure(/azure-operations\.txt`, ([\d,]+) control-plane/), denied: figure(/lists every one of them it\s+denies \(([\d,]+)\)/) };
    expect(stated, "update the figures in docs/policy.md's no-privilege-escalation section").toEqual({ operations: new Set(published).size, denied: catches.length });
  });

  it.each([
    ["role assignments and definitions, locks, policy", ["Microsoft.Authorization/roleAssignments/write", "Microsoft.Authorization/roleDefinitions/write", "Microsoft.Authorization/locks/delete", "Microsoft.Authorization/policyAssignments/write", "Microsoft.Authorization/elevateAccess/action"]],
    ["delegation and data-plane role grants", ["Microsoft.ManagedServices/registrationAssignments/write", "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments/write", "Microsoft.KeyVault/vaults/accessPolicies/write"]],
    ["another way in to the identity", ["Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write", "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"]],
    ["deployments, stacks, scripts, the provider-less path", ["Microsoft.Resources/deployments/write", "Microsoft.Resources/subscriptions/resourcegroups/deployments/write", "Microsoft.Resources/deploymentStacks/write", "Microsoft.Resources/deploymentScripts/write"]],
    [
      "keys and connection strings",
      [
        "Microsoft.Storage/storageAccounts/listkeys/action",
        "Microsoft.Storage/storageAccounts/regeneratekey/action",
        "Microsoft.DocumentDB/databaseAccounts/regenerateKey/action",
        "Microsoft.DocumentDB/databaseAccounts/listConnectionStrings/action",
        "Microsoft.DocumentDB/databaseAccounts/readonlykeys/action",
        "Microsoft.Search/searchServices/listAdminKeys/action",
        "Microsoft.Search/searchServices/regenerateAdminKey/action",
        "Microsoft.OperationalInsights/workspaces/sharedKeys/action",
        "Microsoft.Automation/automationAccounts/listKeys/action",
        "Microsoft.Storage/storageAccounts/localusers/regeneratePassword/action",
      ],
    ],
    ["SAS and delegation keys, disk and snapshot access", ["Microsoft.Storage/storageAccounts/listAccountSas/action", "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action", "Microsoft.Compute/disks/beginGetAccess/action", "Microsoft.Compute/snapshots/beginGetAccess/action", "Microsoft.Compute/restorePointCollections/restorePoints/retrieveSasUris/action"]],
    [
      "cluster and registry credentials",
      [
        "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action",
        "Microsoft.ContainerService/managedClusters/accessProfiles/listCredential/action",
        "Microsoft.ContainerService/fleets/listCredentials/action",
        "Microsoft.RedHatOpenShift/openShiftClusters/listAdminCredentials/action",
        "Microsoft.HybridContainerService/provisionedClusterInstances/listAdminKubeconfig/action",
        "Microsoft.ContainerRegistry/registries/listCredentials/action",
        "Microsoft.ContainerRegistry/registries/generateCredentials/action",
        "Microsoft.ContainerRegistry/registries/regenerateCredential/action",
      ],
    ],
    [
      "web app and function secrets, slots included",
      [
        "Microsoft.Web/sites/config/list/Action",
        "Microsoft.Web/sites/slots/config/list/Action",
        "Microsoft.Web/sites/publishxml/Action",
        "Microsoft.Web/sites/slots/publishxml/Action",
        "microsoft.web/sites/functions/listsecrets/action",
        "microsoft.web/sites/host/listkeys/action",
        "microsoft.web/sites/functions/masterkey/read",
        "Microsoft.Web/sites/hostruntime/host/_master/read",
        "microsoft.app/containerapps/listsecrets/action",
        "microsoft.app/containerapps/getauthtoken/action",
      ],
    ],
    [
      "run command and extensions beyond virtual machines",
      [
        "Microsoft.Compute/virtualMachines/runCommand/action",
        "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands/write",
        "Microsoft.Compute/virtualMachineScaleSets/extensions/write",
        "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/extensions/write",
        "Microsoft.HybridCompute/machines/runcommands/write",
        "Microsoft.HybridCompute/machines/extensions/write",
        "Microsoft.ContainerService/managedClusters/runCommand/action",
        "Microsoft.ContainerInstance/containerGroups/containers/exec/action",
      ],
    ],
    ["Automation jobs and runbooks", ["Microsoft.Automation/automationAccounts/jobs/write", "Microsoft.Automation/automationAccounts/runbooks/write", "Microsoft.Automation/automationAccounts/runbooks/draft/content/write", "Microsoft.Automation/automationAccounts/webhooks/write"]],
    ["source control and package deployments", ["Microsoft.Web/sites/sourcecontrols/Write", "Microsoft.Web/sites/slots/sourcecontrols/Write", "Microsoft.Web/sites/publish/Action", "Microsoft.Web/staticSites/zipdeploy/action"]],
    // Attack finding 8 on issue 29: code set under the resource's own identity, and callback URLs.
    [
      "code that runs under the resource's own identity: web app config, sites and slots, function files, container apps and jobs, Logic Apps workflows",
      [
        "Microsoft.Web/sites/config/Write",
        "Microsoft.Web/sites/slots/config/Write",
        "microsoft.web/sites/config/web/appsettings/write",
        "microsoft.web/sites/slots/config/appsettings/write",
        "microsoft.web/sites/slots/config/web/connectionstrings/write",
        "Microsoft.Web/sites/Write",
        "Microsoft.Web/sites/slots/Write",
        "microsoft.web/sites/functions/write",
        "microsoft.app/containerapps/write",
        "microsoft.app/jobs/write",
        "microsoft.app/jobs/start/action",
        "microsoft.app/logicApps/deployWorkflowArtifacts/action",
        "Microsoft.Logic/workflows/write",
      ],
    ],
    [
      "callback URLs and the keys that sign them (bearer credentials to a workflow)",
      [
        "Microsoft.Logic/workflows/listCallbackUrl/action",
        "Microsoft.Logic/workflows/triggers/listCallbackUrl/action",
        "Microsoft.Logic/workflows/versions/triggers/listCallbackUrl/action",
        "microsoft.web/sites/hostruntime/webhooks/api/workflows/triggers/listCallbackUrl/action",
        "Microsoft.Logic/workflows/accessKeys/list/action",
        "Microsoft.Logic/workflows/accessKeys/regenerate/action",
        "Microsoft.Logic/workflows/regenerateAccessKey/action",
      ],
    ],
    // Issue 29, round 2 (F8): the families' gaps the second review found.
    [
      "code under a resource's identity, round 2: Logic Apps Standard artifacts, sidecars, restores from what the user names, container groups, Spring jobs, pipelines, API Management policies",
      [
        "microsoft.web/sites/deployWorkflowArtifacts/action",
        "microsoft.web/sites/slots/deployWorkflowArtifacts/action",
        "microsoft.web/sites/sitecontainers/write",
        "microsoft.web/sites/slots/sitecontainers/write",
        "microsoft.web/sites/restorefrombackupblob/action",
        "microsoft.web/sites/backups/restore/action",
        "microsoft.web/sites/restorefromdeletedapp/action",
        "microsoft.web/sites/restoresnapshot/action",
        "microsoft.web/sites/recover/action",
        "microsoft.web/sites/slots/recover/action",
        "microsoft.web/sites/restore/write",
        "Microsoft.ContainerInstance/containerGroups/write",
        "Microsoft.AppPlatform/Spring/jobs/write",
        "Microsoft.AppPlatform/Spring/jobs/start/action",
        "Microsoft.DataFactory/factories/pipelines/write",
        "Microsoft.ApiManagement/service/policies/write",
        "Microsoft.ApiManagement/service/apis/policies/write",
        "Microsoft.ApiManagement/service/apis/operations/policy/write",
        "Microsoft.ApiManagement/service/products/policies/write",
        "Microsoft.ApiManagement/service/policyFragments/write",
        "Microsoft.ApiManagement/service/restore/action",
      ],
    ],
    ["credentials, round 2: Cosmos DB's read-only keys by GET, API Management's named values", ["Microsoft.DocumentDB/databaseAccounts/readonlykeys/read", "Microsoft.ApiManagement/service/namedValues/listValue/action"]],
    ["running code on machines, round 2: Guest Configuration", ["Microsoft.GuestConfiguration/guestConfigurationAssignments/write"]],
    ["deploying, round 2: managed applications", ["Microsoft.Solutions/applicationDefinitions/write", "Microsoft.Solutions/applications/write"]],
    ["moving resources out of the group a rule is scoped to", ["Microsoft.Resources/subscriptions/resourceGroups/moveResources/action"]],
  ])("catches %s", (_family, ops) => {
    for (const op of ops) {
      expect(published, `${op} is not in the fixture`).toContain(op);
      expect(caught(op), op).toBe(true);
    }
  });

  it("leaves plain reads alone: the only reads it catches hand out a credential", () => {
    const reads = catches.filter((op) => op.toLowerCase().endsWith("/read"));
    expect(reads.map((op) => op.toLowerCase())).toEqual([
      "microsoft.documentdb/databaseaccounts/readonlykeys/read",
      "microsoft.web/sites/functions/masterkey/read",
      "microsoft.web/sites/functions/token/read",
      "microsoft.web/sites/hostruntime/functions/keys/read",
      "microsoft.web/sites/hostruntime/host/_master/read",
      "microsoft.web/sites/publishxml/read",
    ]);
    // Thousands of reads in the fixture, all others left through.
    expect(published.filter((op) => op.toLowerCase().endsWith("/read")).length).toBeGreaterThan(500);
  });

  it.each([
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Resources/subscriptions/resourceGroups/write",
    "Microsoft.Resources/deployments/read",
    "Microsoft.Resources/deployments/validate/action",
    "Microsoft.Resources/deployments/whatIf/action",
    "Microsoft.Authorization/roleAssignments/read",
    "Microsoft.Compute/virtualMachines/write",
    "Microsoft.Compute/virtualMachines/start/action",
    "Microsoft.Compute/virtualMachines/restart/action",
    "Microsoft.Compute/virtualMachines/extensions/read",
    "Microsoft.Compute/virtualMachines/runCommands/read",
    "Microsoft.Compute/disks/endGetAccess/action",
    "Microsoft.Storage/storageAccounts/read",
    "Microsoft.Storage/storageAccounts/write",
    "Microsoft.Storage/storageAccounts/revokeUserDelegationKeys/action",
    "Microsoft.KeyVault/vaults/read",
    "Microsoft.KeyVault/vaults/secrets/read",
    "Microsoft.ContainerService/managedClusters/read",
    "Microsoft.ContainerService/managedClusters/accessProfiles/read",
    "Microsoft.ContainerService/managedClusters/agentPools/write",
    "Microsoft.ContainerRegistry/registries/read",
    "Microsoft.ContainerInstance/containerGroups/containers/logs/read",
    "Microsoft.Web/sites/Read",
    "Microsoft.Web/sites/config/Read",
    "Microsoft.Web/sites/restart/Action",
    "microsoft.web/sites/slots/deployments/read",
    "Microsoft.Automation/automationAccounts/runbooks/read",
    "Microsoft.Automation/automationAccounts/jobs/read",
    "Microsoft.ManagedIdentity/userAssignedIdentities/read",
    "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/read",
    // Beside the families of attack finding 8: network settings, stopping and running what is already deployed.
    "microsoft.web/sites/networkConfig/write",
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies/Write",
    "microsoft.app/jobs/stop/action",
    "microsoft.app/containerapps/revisions/activate/action",
    "Microsoft.Logic/workflows/read",
    "Microsoft.Logic/workflows/run/action",
    "Microsoft.Logic/workflows/triggers/run/action",
    "Microsoft.Logic/workflows/disable/action",
    // Beside round 2's families: backing up, running what is deployed, validating a move, the plain writes.
    "Microsoft.ApiManagement/service/write",
    "Microsoft.ApiManagement/service/apis/write",
    "Microsoft.ApiManagement/service/backup/action",
    "Microsoft.ApiManagement/service/namedValues/read",
    "Microsoft.ApiManagement/service/namedValues/write",
    "Microsoft.DataFactory/factories/write",
    "Microsoft.DataFactory/factories/pipelines/createrun/action",
    "Microsoft.GuestConfiguration/guestConfigurationAssignments/delete",
    "Microsoft.ContainerInstance/containerGroups/restart/action",
    "Microsoft.Resources/subscriptions/resourceGroups/validateMoveResources/action",
    "microsoft.web/sites/restore/read",
    "Microsoft.Solutions/applications/read",
  ])("does not catch %s", (op) => {
    expect(published, `${op} is not in the fixture`).toContain(op);
    expect(caught(op)).toBe(false);
  });
});

describe("the preset on requests as clients send them (through the mapper)", () => {
  const S = "/subscriptions/00000000-0000-0000-0000-000000000000";
  const RG = `${S}/resourceGroups/app-1`;
  const MI = `${S}/resourceGroups/ops/providers/Microsoft.ManagedIdentity/userAssignedIdentities/prod-contributor`;
  const roles: Role[] = [
    { kind: "role", version: "v7", metadata: { name: "plain" }, spec: { allow: { app_labels: { "*": "*" }, azure_identities: [MI] } } },
    { kind: "role", version: "v7", metadata: { name: "guard" }, spec: { deny: { azure_api: [{ preset: "no-privilege-escalation" }] } } },
  ];
  const decide = (method: string, p: string) => decideAzureApi(roles, {}, { name: "azure-cli", labels: {} }, MI, readRequest({ method, host: "management.azure.com", path: p, query: new URLSearchParams("api-version=2024-01-01") }));

  it.each([
    ["PUT", `${RG}/deployments/d1`, "Microsoft.Resources/subscriptions/resourceGroups/deployments/write"],
    ["PUT", `${S}/providers/Microsoft.Resources/deploymentStacks/s1`, "Microsoft.Resources/deploymentStacks/write"],
    ["POST", `${RG}/providers/Microsoft.Storage/storageAccounts/sa/regenerateKey`, "Microsoft.Storage/storageAccounts/regenerateKey/action"],
    ["POST", `${RG}/providers/Microsoft.DocumentDB/databaseAccounts/db/listConnectionStrings`, "Microsoft.DocumentDB/databaseAccounts/listConnectionStrings/action"],
    ["POST", `${RG}/providers/Microsoft.Search/searchServices/s/listAdminKeys`, "Microsoft.Search/searchServices/listAdminKeys/action"],
    ["POST", `${RG}/providers/Microsoft.OperationalInsights/workspaces/w/sharedKeys`, "Microsoft.OperationalInsights/workspaces/sharedKeys/action"],
    ["POST", `${RG}/providers/Microsoft.ContainerService/managedClusters/k/accessProfiles/clusterAdmin/listCredential`, "Microsoft.ContainerService/managedClusters/accessProfiles/listCredential/action"],
    ["POST", `${RG}/providers/Microsoft.ContainerRegistry/registries/r/generateCredentials`, "Microsoft.ContainerRegistry/registries/generateCredentials/action"],
    ["POST", `${RG}/providers/Microsoft.Compute/disks/d/beginGetAccess`, "Microsoft.Compute/disks/beginGetAccess/action"],
    ["PUT", `${RG}/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/0/runCommands/rc`, "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands/write"],
    ["PUT", `${RG}/providers/Microsoft.Compute/virtualMachineScaleSets/ss/extensions/e`, "Microsoft.Compute/virtualMachineScaleSets/extensions/write"],
    ["PUT", `${RG}/providers/Microsoft.HybridCompute/machines/m/runCommands/rc`, "Microsoft.HybridCompute/machines/runCommands/write"],
    ["POST", `${RG}/providers/Microsoft.ContainerInstance/containerGroups/g/containers/c/exec`, "Microsoft.ContainerInstance/containerGroups/containers/exec/action"],
    ["PUT", `${RG}/providers/Microsoft.Automation/automationAccounts/a/jobs/j`, "Microsoft.Automation/automationAccounts/jobs/write"],
    ["POST", `${RG}/providers/Microsoft.Web/sites/w/slots/staging/config/appsettings/list`, "Microsoft.Web/sites/slots/config/list/action"],
    ["POST", `${RG}/providers/Microsoft.Web/sites/w/slots/staging/publishxml`, "Microsoft.Web/sites/slots/publishxml/action"],
    ["PUT", `${RG}/providers/Microsoft.Web/sites/w/sourcecontrols/web`, "Microsoft.Web/sites/sourcecontrols/write"],
    ["POST", `${RG}/providers/Microsoft.Web/sites/w/functions/f/listsecrets`, "Microsoft.Web/sites/functions/listsecrets/action"],
    // Attack finding 8 on issue 29 (the attack's requests, now refused), and their siblings.
    ["PUT", `${RG}/providers/Microsoft.Web/sites/w/config/appsettings`, "Microsoft.Web/sites/config/write"],
    ["PUT", `${RG}/providers/Microsoft.Web/sites/w/config/web`, "Microsoft.Web/sites/config/write"],
    ["PATCH", `${RG}/providers/Microsoft.Web/sites/w/slots/staging/config/appsettings`, "Microsoft.Web/sites/slots/config/write"],
    ["PATCH", `${RG}/providers/Microsoft.Web/sites/w`, "Microsoft.Web/sites/write"],
    ["PUT", `${RG}/providers/Microsoft.Web/sites/w/slots/staging`, "Microsoft.Web/sites/slots/write"],
    ["PUT", `${RG}/providers/Microsoft.Web/sites/w/functions/f`, "Microsoft.Web/sites/functions/write"],
    ["PUT", `${RG}/providers/Microsoft.App/jobs/job1`, "Microsoft.App/jobs/write"],
    ["POST", `${RG}/providers/Microsoft.App/jobs/job1/start`, "Microsoft.App/jobs/start/action"],
    ["PATCH", `${RG}/providers/Microsoft.App/containerApps/app1`, "Microsoft.App/containerApps/write"],
    ["PUT", `${RG}/providers/Microsoft.Logic/workflows/wf1`, "Microsoft.Logic/workflows/write"],
    ["POST", `${RG}/providers/Microsoft.Logic/workflows/wf1/triggers/manual/listCallbackUrl`, "Microsoft.Logic/workflows/triggers/listCallbackUrl/action"],
    ["POST", `${RG}/providers/Microsoft.Logic/workflows/wf1/listCallbackUrl`, "Microsoft.Logic/workflows/listCallbackUrl/action"],
    ["POST", `${RG}/providers/Microsoft.Logic/workflows/wf1/versions/v1/triggers/manual/listCallbackUrl`, "Microsoft.Logic/workflows/versions/triggers/listCallbackUrl/action"],
    ["POST", `${RG}/providers/Microsoft.Logic/workflows/wf1/accessKeys/default/list`, "Microsoft.Logic/workflows/accessKeys/list/action"],
    // Issue 29, round 2 (F8): the attack's requests, each let through before, now refused.
    ["POST", `${RG}/providers/Microsoft.Web/sites/app1/deployWorkflowArtifacts`, "Microsoft.Web/sites/deployWorkflowArtifacts/action"],
    ["POST", `${RG}/providers/Microsoft.Web/sites/app1/slots/s1/deployWorkflowArtifacts`, "Microsoft.Web/sites/slots/deployWorkflowArtifacts/action"],
    ["POST", `${RG}/providers/Microsoft.Web/sites/app1/restoreFromBackupBlob`, "Microsoft.Web/sites/restoreFromBackupBlob/action"],
    ["POST", `${RG}/providers/Microsoft.Web/sites/app1/slots/s1/restoreFromBackupBlob`, "Microsoft.Web/sites/slots/restoreFromBackupBlob/action"],
    ["POST", `${RG}/providers/Microsoft.Web/sites/app1/backups/b1/restore`, "Microsoft.Web/sites/backups/restore/action"],
    ["POST", `${RG}/providers/Microsoft.Web/sites/app1/restoreFromDeletedApp`, "Microsoft.Web/sites/restoreFromDeletedApp/action"],
    ["POST", `${RG}/providers/Microsoft.Web/sites/app1/restoreSnapshot`, "Microsoft.Web/sites/restoreSnapshot/action"],
    ["POST", `${RG}/providers/Microsoft.Web/sites/app1/recover`, "Microsoft.Web/sites/recover/action"],
    ["PUT", `${RG}/providers/Microsoft.Web/sites/app1/sitecontainers/c1`, "Microsoft.Web/sites/sitecontainers/write"],
    ["PUT", `${RG}/providers/Microsoft.ContainerInstance/containerGroups/cg1`, "Microsoft.ContainerInstance/containerGroups/write"],
    ["GET", `${RG}/providers/Microsoft.DocumentDB/databaseAccounts/db1/readonlykeys`, "Microsoft.DocumentDB/databaseAccounts/readonlykeys/read"],
    ["PUT", `${RG}/providers/Microsoft.ApiManagement/service/apim1/apis/a1/policies/policy`, "Microsoft.ApiManagement/service/apis/policies/write"],
    ["PUT", `${RG}/providers/Microsoft.ApiManagement/service/apim1/policyFragments/f1`, "Microsoft.ApiManagement/service/policyFragments/write"],
    ["POST", `${RG}/providers/Microsoft.ApiManagement/service/apim1/namedValues/nv1/listValue`, "Microsoft.ApiManagement/service/namedValues/listValue/action"],
    ["PUT", `${RG}/providers/Microsoft.DataFactory/factories/f1/pipelines/p1`, "Microsoft.DataFactory/factories/pipelines/write"],
    ["PUT", `${RG}/providers/Microsoft.Compute/virtualMachines/vm1/providers/Microsoft.GuestConfiguration/guestConfigurationAssignments/g1`, "Microsoft.GuestConfiguration/guestConfigurationAssignments/write"],
    ["PUT", `${RG}/providers/Microsoft.Solutions/applicationDefinitions/def1`, "Microsoft.Solutions/applicationDefinitions/write"],
    ["PUT", `${RG}/providers/Microsoft.Solutions/applications/ma1`, "Microsoft.Solutions/applications/write"],
    ["POST", `${RG}/providers/Microsoft.AppPlatform/Spring/sp1/jobs/j1/start`, "Microsoft.AppPlatform/Spring/jobs/start/action"],
    ["POST", `${RG}/moveResources`, "Microsoft.Resources/subscriptions/resourceGroups/moveResources/action"],
  ])("refuses %s %s (%s)", (method, p, action) => {
    const d = decide(method, p);
    expect(d.operation?.action).toBe(action);
    expect(d).toMatchObject({ outcome: "deny", enforced: true, matched: { role: "guard", preset: "no-privilege-escalation" } });
  });

  it.each([
    ["GET", `${RG}/providers/Microsoft.Web/sites/w/config/appsettings`],
    ["PUT", RG],
    ["POST", `${RG}/providers/Microsoft.Compute/virtualMachines/vm/restart`],
    ["GET", `${RG}/deployments/d1`],
    ["POST", `${RG}/providers/Microsoft.Resources/deployments/d1/validate`],
    ["POST", `${RG}/providers/Microsoft.App/jobs/job1/stop`],
    ["POST", `${RG}/providers/Microsoft.Logic/workflows/wf1/triggers/manual/run`],
    ["GET", `${RG}/providers/Microsoft.Logic/workflows/wf1`],
  ])("lets %s %s through", (method, p) => {
    expect(decide(method, p).outcome).toBe("allow");
  });
});
