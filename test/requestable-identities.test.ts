/**
 * A glob in `request.azure_identities` offers the identities it matches, by
 * name, and a short name resolves only when it is one identity (issue 31,
 * item 2). In process (test/helpers/memory-cluster.ts): the real state and
 * request service, an agent answering identity_list from the emulator's ARM
 * with its own Workload ID. The world adds a second `teleport-reader`, in
 * resource group `production`, which the requester's glob does not cover:
 * the attack is a short name that is one requestable and one
 * non-requestable identity.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { parse, stringify } from "yaml";
import { useEmulator } from "./helpers/emulator.ts";
import { IDENTITY, SUB } from "./helpers/cluster.ts";
import { startMemoryCluster, type MemoryCluster } from "./helpers/memory-cluster.ts";
import { tempDir } from "./helpers/azgate.ts";
import { DEFAULT_WORLD_YAML } from "../src/emulator/default-world.ts";
import { createRequest, requestableIdentities, requestableTerms } from "../src/proxy/access-requests.ts";
import { knownIdentities } from "../src/proxy/known-identities.ts";
import { servedApps } from "../src/proxy/registry.ts";
import { KEYS } from "../src/proxy/keys.ts";
import type { AccessRequest } from "../src/resources/access-request.ts";
import type { AuditEvent } from "../src/audit/sink.ts";
import type { Caller } from "../src/proxy/caller.ts";
import { isAzgateError } from "../src/errors/index.ts";
import { AzureTokenProvider } from "../src/agent/tokens.ts";
import type { HttpClient, PipelineRequest } from "@azure/core-rest-pipeline";
import { FakeClock } from "./helpers/fake-clock.ts";

const worldFile = path.join(tempDir("azgate-world-"), "world.yaml");
{
  const world = parse(DEFAULT_WORLD_YAML);
  world.identities.push({ subscription: SUB, resource_group: "production", name: "teleport-reader", client_id: "00000000-0000-4000-8000-000000000030", principal_id: "10000000-0000-4000-8000-000000000030", federated_credentials: [] });
  writeFileSync(worldFile, stringify(world));
}
// Two items a page: the agent's list follows ARM's nextLink.
const fx = useEmulator({ projectToken: true, worldFile, armPageSize: 2 });
const READER = IDENTITY("teleport-reader");
const CONTRIB = IDENTITY("teleport-contributor");
const AGENT = IDENTITY("teleport-azure-cli-aks-agent");
/** The same name in another group: no role of the requester's offers it. */
const PROD_READER = `/subscriptions/${SUB}/resourceGroups/production/providers/Microsoft.ManagedIdentity/userAssignedIdentities/teleport-reader`;
/** The README's form: every identity of one resource group, in any subscription. */
const GLOB = "/subscriptions/*/resourceGroups/myResourceGroup/providers/Microsoft.ManagedIdentity/userAssignedIdentities/*";
const ROLES = `kind: role
version: v7
metadata: {name: requester}
spec:
  allow: {app_labels: {'*': '*'}, request: {azure_identities: ['${GLOB}'], max_duration: 2h, reason: {mode: required}}}
  deny: {request: {azure_identities: ['${AGENT}']}}
`;

describe("requestable identities from a glob, by name", () => {
  let c: MemoryCluster;
  let alice: Caller;
  const known = () => knownIdentities(c.ctx, c.registry, alice);
  const events = async (user: string): Promise<AuditEvent[]> => (await c.ctx.audit.search({ event: "access_request.create" })).filter((e) => e.user === user);
  const stored = async () => (await c.ctx.backend.list<AccessRequest>(KEYS.accessRequests)).map((i) => i.value);

  beforeAll(async () => {
    c = await startMemoryCluster(fx);
    await c.createRoles(ROLES);
    c.agent();
    alice = (await c.signIn("alice", ["requester"], {})).caller;
  });
  afterAll(async () => c?.close());

  it("the agent lists the identities its own identity reads in ARM; the glob offers those it matches, by name, deny removed", async () => {
    const listed = await known();
    expect(listed.complete).toBe(true);
    expect(listed.identities).toEqual(expect.arrayContaining([READER, CONTRIB, AGENT, PROD_READER]));
    const offered = await requestableIdentities(c.ctx, alice, known);
    // The glob's group only (not production's teleport-reader); the agent's own identity is denied for requests.
    expect(offered.map((o) => o.azure_identity)).toEqual([CONTRIB, READER]);
    expect(offered[0]).toMatchObject({ max_duration_ms: 2 * 3_600_000, reason_required: true });
  });

  it("a short name one identity has resolves to its full ID: the request stores that, and requestTerms decided on it", async () => {
    const r = await createRequest(c.ctx, alice, { app: "azure-cli", azure_identity: "Teleport-Contributor", reason: "deploy" }, servedApps(c.registry), known);
    expect(r.spec.azure_identity).toBe(CONTRIB);
    expect(await events("alice")).toContainEqual(expect.objectContaining({ access_request_id: r.metadata.name, azure_identity: CONTRIB, success: true }));
    // apps login's hint asks the same question.
    expect(await requestableTerms(c.ctx, alice, "teleport-contributor", known)).toMatchObject({ requestable: true, azure_identity: CONTRIB, max_duration_ms: 2 * 3_600_000, reason_required: true });
  });

  it("the attack: a short name that is one requestable and one non-requestable identity is refused as ambiguous, listing both, audited; nothing is stored", async () => {
    const before = (await stored()).length;
    const made = createRequest(c.ctx, alice, { app: "azure-cli", azure_identity: "teleport-reader", reason: "which one?" }, servedApps(c.registry), known);
    await expect(made).rejects.toSatisfy((e) => isAzgateError(e) && e.code === "bad_parameter");
    const said = `"teleport-reader" names 2 Azure identities; give the full resource ID of the one you mean: ${[READER, PROD_READER].sort().join(", ")}`;
    await expect(made).rejects.toThrow(said);
    expect(await events("alice")).toContainEqual(expect.objectContaining({ azure_identity: "teleport-reader", error_code: "bad_parameter", reason: said, success: false }));
    expect((await stored()).length).toBe(before);
    // apps login says the same (with the candidates), never the request command for one of them.
    expect(await requestableTerms(c.ctx, alice, "teleport-reader", known)).toEqual({ requestable: false, ambiguous: said });
    // Each by its full ID: requestTerms decides, on the canonical form. The other group's is not requestable (403, audited).
    await expect(createRequest(c.ctx, alice, { app: "azure-cli", azure_identity: PROD_READER, reason: "x" }, servedApps(c.registry), known)).rejects.toThrow(`no role lets you request Azure identity "${PROD_READER}"`);
    expect(await events("alice")).toContainEqual(expect.objectContaining({ azure_identity: PROD_READER, error_code: "access_denied", success: false }));
    const mine = await createRequest(c.ctx, alice, { app: "azure-cli", azure_identity: READER.toLowerCase(), reason: "this one" }, servedApps(c.registry), known);
    // Stored in Azure's spelling of the fixed segments, the group and name as written (one canonical form decides).
    expect(mine.spec.azure_identity).toBe(READER.replace("myResourceGroup", "myresourcegroup"));
  });

  it("a name no identity has, or a denied one, is refused; a deny wins over the glob", async () => {
    await expect(createRequest(c.ctx, alice, { app: "azure-cli", azure_identity: "nobody-here", reason: "x" }, servedApps(c.registry), known)).rejects.toThrow('"nobody-here" names no Azure identity azgate knows of');
    await expect(createRequest(c.ctx, alice, { app: "azure-cli", azure_identity: "teleport-azure-cli-aks-agent", reason: "x" }, servedApps(c.registry), known)).rejects.toThrow(`role "requester" denies requesting Azure identity "${AGENT}"`);
    await expect(createRequest(c.ctx, alice, { app: "azure-cli", azure_identity: "teleport-*", reason: "x" }, servedApps(c.registry), known)).rejects.toThrow("is not an identity name");
  });

  it("an agent from before identity_list is not asked: the glob offers what the roles name", async () => {
    const older = await startMemoryCluster(fx);
    try {
      await older.createRoles(ROLES);
      older.agent({ holds: false });
      const bob = (await older.signIn("bob", ["requester"], {})).caller;
      expect(await requestableIdentities(older.ctx, bob, () => knownIdentities(older.ctx, older.registry, bob))).toEqual([]);
    } finally {
      await older.close();
    }
  });
});

describe("the agent's ARM reads for the list", () => {
  it("send its own token to its cloud's ARM host over HTTPS only: a nextLink elsewhere is refused before anything is sent", async () => {
    const sent: string[] = [];
    const httpClient: HttpClient = { sendRequest: async (req: PipelineRequest) => (sent.push(req.url), { request: req, status: 500, headers: req.headers }) };
    const tokens = new AzureTokenProvider({ env: { AZURE_CLIENT_ID: "c", AZURE_TENANT_ID: "t", AZURE_FEDERATED_TOKEN_FILE: "/nonexistent" }, httpClient, clock: new FakeClock() });
    for (const link of ["https://evil.example/subscriptions?api-version=1", "https://management.azure.com.evil.example/subscriptions", "http://management.azure.com/subscriptions", "//evil.example/x", "https://management.azure.com:8443/subscriptions"]) {
      await expect(tokens.armGetAsAgent(link)).rejects.toThrow("refusing to send the agent's ARM token");
    }
    expect(sent).toEqual([]);
  });
});
