/**
 * The Activity Log join under attack (issue 32, and the second outside
 * attack's F5): writes made around azgate, straight to ARM with the
 * identity's own token (IMDS on a VM that has it), carrying IDs chosen to
 * look explained: a correlation ID the user sent through azgate first, a
 * client request ID of a request azgate refused, and an ID copied from the
 * Activity Log of someone else's real write. None may be reported as made
 * through azgate. On the in-process cluster and the emulator's Activity Log.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import https from "node:https";
import http from "node:http";
import { useEmulator } from "./helpers/emulator.ts";
import { IDENTITY } from "./helpers/cluster.ts";
import { startMemoryCluster, type MemoryCluster } from "./helpers/memory-cluster.ts";
import { auditCommands } from "../src/proxy/audit-commands.ts";
import { correlate, type ActivityEntry } from "../src/audit/correlate.ts";
import type { AuditEvent } from "../src/audit/sink.ts";

const fx = useEmulator({ projectToken: true });
const SUB = "00000000-0000-0000-0000-000000000000";
const CONTRIB = IDENTITY("teleport-contributor");
const GROUP = `/subscriptions/${SUB}/resourcegroups/myResourceGroup?api-version=2022-09-01`;
const ROLES = `kind: role
version: v7
metadata: {name: base}
spec: {allow: {app_labels: {'*': '*'}, azure_identities: ['{{internal.azure_identities}}']}}
---
kind: role
version: v7
metadata: {name: guard}
spec: {deny: {azure_api: [{preset: no-privilege-escalation}]}}
`;

describe("the Activity Log join, attacked", () => {
  let c: MemoryCluster;
  let n = 0;
  const nextUser = () => `joiner${++n}`;
  const events = async (event: string, user: string): Promise<AuditEvent[]> => (await c.ctx.audit.search({ event })).filter((e) => e.event === event && e.user === user);
  const entriesWith = (pred: (e: { correlationId: string; httpRequest: { clientRequestId: string } }) => boolean) => fx.emu.activity.entries.filter(pred) as unknown as ActivityEntry[];

  beforeAll(async () => {
    c = await startMemoryCluster(fx);
    await c.createRoles(ROLES);
    c.agent();
  });
  afterAll(() => c?.close());

  it("an ID the client chose (a correlation ID sent through azgate, a client request ID of a refused write) explains no write made around azgate", async () => {
    const user = nextUser();
    const app = await c.appSession(user, ["base", "guard"], CONTRIB);
    const chosenCorrelation = crypto.randomUUID();
    const chosenClientId = crypto.randomUUID();
    expect((await app.request(`https://management.azure.com${GROUP.replace("/myResourceGroup", "")}`, { headers: [["x-ms-correlation-request-id", chosenCorrelation]] })).status).toBe(200);
    const assignment = `/subscriptions/${SUB}/resourceGroups/myResourceGroup/providers/Microsoft.Authorization/roleAssignments/${crypto.randomUUID()}?api-version=2022-04-01`;
    const body = '{"properties":{"roleDefinitionId":"/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635","principalId":"10000000-0000-4000-8000-000000000002"}}';
    const refused = await app.request(`https://management.azure.com${assignment}`, { method: "PUT", body: new TextEncoder().encode(body), headers: [["content-length", String(body.length)], ["CommandName", "role assignment create"], ["x-ms-client-request-id", chosenClientId]] });
    expect(refused.status).toBe(403);
    await expect.poll(async () => (await events("app.request", user)).length).toBe(1);
    // azgate sent its own correlation ID, not the one the client chose.
    expect(fx.emu.requests.some((r) => r.headers["x-ms-correlation-request-id"] === chosenCorrelation)).toBe(false);

    const token = await imdsToken(CONTRIB);
    expect(await armDirect("PUT", GROUP, token, '{"location":"eastus"}', { "x-ms-correlation-request-id": chosenCorrelation })).toBeLessThan(400);
    expect(await armDirect("PUT", assignment, token, body, { "x-ms-client-request-id": chosenClientId })).toBeGreaterThan(0);
    const around = entriesWith((e) => e.correlationId === chosenCorrelation || e.httpRequest.clientRequestId === chosenClientId);
    expect(around).toHaveLength(2);
    const found = correlate(around, await auditCommands(c.ctx, c.admin, { user }));
    expect(found.map((f) => f.through_azgate)).toEqual([false, false]);
  });

  it("an ID copied from the Activity Log of someone's real write explains one operation only: the copy and the original are both left unvouched, and another principal's copy is named as such", async () => {
    const alice = nextUser();
    const app = await c.appSession(alice, ["base"], CONTRIB);
    const put = await app.request(`https://management.azure.com${GROUP}`, { method: "PUT", body: new TextEncoder().encode('{"location":"eastus"}'), headers: [["content-length", "21"]] });
    expect(put.status).toBe(200);
    await expect.poll(async () => (await events("app.request", alice)).length).toBe(1);
    const [done] = await events("app.request", alice);
    const hers = done.azure_correlation_id as string;
    expect(hers).toBe(done.request_id);
    // Alone, Alice's write is hers.
    expect(correlate(entriesWith((e) => e.correlationId === hers), await auditCommands(c.ctx, c.admin, { user: alice })).map((f) => [f.through_azgate, f.user, f.same_operation])).toEqual([[true, alice, true]]);

    // The same identity's token, around azgate, her ID copied onto the same write.
    expect(await armDirect("PUT", GROUP, await imdsToken(CONTRIB), '{"location":"eastus"}', { "x-ms-correlation-request-id": hers })).toBeLessThan(400);
    // Another identity's token with her ID (the Reader: refused by Azure, still in its Activity Log).
    await armDirect("PUT", GROUP, await imdsToken(IDENTITY("teleport-reader")), '{"location":"eastus"}', { "x-ms-correlation-request-id": hers });
    const withHers = entriesWith((e) => e.correlationId === hers);
    expect(withHers).toHaveLength(3);
    const found = correlate(withHers, await auditCommands(c.ctx, c.admin, { user: alice }));
    expect(found.map((f) => f.through_azgate)).toEqual([false, false, false]);
    expect(found[0].not_explained_because).toMatch(/2 operations carry azgate request .* all but one were made around azgate/);
    expect(found[2].not_explained_because).toMatch(/another principal called \(10000000-0000-4000-8000-000000000002, not 10000000-0000-4000-8000-000000000003\)/);
  });
});

/** A token for an identity straight from the emulator's IMDS (a VM the identity is assigned to): no azgate in the path. */
function imdsToken(identity: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const target = `http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${encodeURIComponent("https://management.azure.com/")}&msi_res_id=${encodeURIComponent(identity)}`;
    const req = http.request({ host: "127.0.0.1", port: fx.emu.proxyPort, method: "GET", path: target, headers: { Metadata: "true", host: "169.254.169.254" } }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => (res.statusCode === 200 ? resolve(JSON.parse(text).access_token) : reject(new Error(`IMDS ${res.statusCode}: ${text}`))));
    });
    req.on("error", reject);
    req.end();
  });
}

/** One ARM request straight to the emulator, as a client around azgate sends it. */
function armDirect(method: string, path: string, token: string, body: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: "127.0.0.1", port: fx.emu.httpsPort, servername: "management.azure.com", ca: fx.emu.caPem, method, path, headers: { host: "management.azure.com", authorization: `Bearer ${token}`, "content-type": "application/json", "content-length": Buffer.byteLength(body), ...headers } },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
