/**
 * An outside review's attacks on the cached caller and per-server decisions (caller.ts, authorize-request.ts
 * onServer) on PostgreSQL, each on one tunnel whose decisions were made (warm) a moment before the change:
 * the very next request is refused with the change's own code, and audited. All held.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useEmulator } from "./helpers/emulator.ts";
import { IDENTITY } from "./helpers/cluster.ts";
import { startMemoryCluster, type MemoryCluster } from "./helpers/memory-cluster.ts";
import { startPostgres, type TestPostgres } from "./helpers/postgres.ts";
import { createLock } from "../src/proxy/locks.ts";
import { addUser, removeResource, resetUser } from "../src/proxy/admin.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");
const GROUPS = "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2022-09-01";
const role = (name: string, extra = "") => `kind: role\nversion: v7\nmetadata: {name: ${name}}\nspec: {allow: {app_labels: {'*': '*'}, azure_identities: ['${READER}']}${extra}}\n`;

describe("attack: cached decisions on PostgreSQL follow every change on the next request", () => {
  let server: TestPostgres;
  let c: MemoryCluster;
  let n = 0;
  let agent: ReturnType<MemoryCluster["agent"]>;
  beforeAll(async () => {
    server = await startPostgres();
    c = await startMemoryCluster(fx, { storage: { type: "postgres", conn_string: await server.database("cachepg") } });
    agent = c.agent();
  }, 60_000);
  afterAll(async () => {
    await c?.close();
    await server?.stop();
  });

  const warm = async (roleName: string) => {
    await c.createRoles(role(roleName));
    const user = `pg-${++n}`;
    const app = await c.appSession(user, [roleName], READER, { traits: {} });
    for (let i = 0; i < 3; i++) expect((await app.request(GROUPS)).status).toBe(200);
    return { user, app };
  };

  it.each([
    ["a lock with a TTL on the user", (u: string) => createLock(c.ctx, c.admin, { target: { user: u }, ttl: "1h" }), 403, "locked"],
    ["a reset", (u: string) => resetUser(c.ctx, c.admin, u), 401, "unauthenticated"],
    ["deleting and re-creating the user", async (u: string, r: string) => (await removeResource(c.ctx, c.admin, "user", u), await addUser(c.ctx, c.admin, u, [r], {})), 401, "unauthenticated"],
    ["deleting its only role", (_u: string, r: string) => removeResource(c.ctx, c.admin, "role", r), 403, "access_denied"],
    ["its role edited to ask for per-session MFA", (_u: string, r: string) => c.createRoles(role(r, ", options: {require_session_mfa: true}")), 403, "mfa_required"],
  ])("held: %s", async (_what, change, status, code) => {
    const r = `pgrole-${n + 1}`;
    const { user, app } = await warm(r);
    await change(user, r);
    expect((await app.request(GROUPS)).status).toBe(status);
    const denied = (await c.ctx.audit.search({ event: "app.request.denied" })).filter((e) => e.user === user);
    expect(denied).toEqual([expect.objectContaining({ error_code: code, success: false })]);
  });

  it("held: a TTL lock that ends lifts on the next request (a refusal is not kept), one that has not ended holds", async () => {
    const { user, app } = await warm(`pgrole-ttl`);
    await createLock(c.ctx, c.admin, { target: { user }, ttl: "1m" });
    expect((await app.request(GROUPS)).status).toBe(403);
    c.clock.advance(59_000);
    agent.heartbeat();
    expect((await app.request(GROUPS)).status).toBe(403);
    c.clock.advance(2_000);
    agent.heartbeat();
    expect((await app.request(GROUPS)).status).toBe(200);
  });
});
