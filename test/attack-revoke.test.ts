/**
 * An outside review's attacks on "deny wins; revocation and locks act on the
 * next request", across surfaces: locks by every spelling of an identity, a
 * role edited or deleted mid-grant, a user deleted and re-created, an editor
 * who loses the role, and two replicas on PostgreSQL (written on A, the next
 * request on B). It found a lock by client or principal ID accepted that
 * locked nothing (now refused when made) and the change feed's cut
 * (test/postgres-feed.test.ts); the rest held.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useEmulator } from "./helpers/emulator.ts";
import { IDENTITY } from "./helpers/cluster.ts";
import { memoryReplicas, startMemoryCluster, type MemoryCluster } from "./helpers/memory-cluster.ts";
import { createLock, removeLock } from "../src/proxy/locks.ts";
import { addUser, removeResource, updateUser } from "../src/proxy/admin.ts";
import { rotateAuthority } from "../src/proxy/rotation.ts";
import { createApi } from "../src/proxy/api.ts";
import { acceptInvite } from "../src/proxy/users.ts";
import { login } from "../src/proxy/login.ts";
import { ApiClient } from "../src/api/client.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../src/pki/keys.ts";
import type { ProxyContext } from "../src/proxy/context.ts";
import type { AppRegistry } from "../src/proxy/registry.ts";
import type { Phase } from "../src/pki/rotation.ts";
import { createRequest, reviewRequest } from "../src/proxy/access-requests.ts";
import { servedApps } from "../src/proxy/registry.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");
const GROUPS = "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2022-09-01";
const role = (name: string, extra = "") => `kind: role\nversion: v7\nmetadata: {name: ${name}}\nspec: {allow: {app_labels: {'*': '*'}, azure_identities: ['${READER}']}${extra}}\n`;
const BASE = "https://attack-revoke.test";


/** A person made, invited and logged in on `c`, with an API client (in process, signed proofs) on `ctxApi`'s API. */
async function personWithApi(c: MemoryCluster, name: string, roles: string[], apiCtx: ProxyContext, apiRegistry: AppRegistry, apiClock: MemoryCluster["clock"]) {
  const { invite } = await addUser(c.ctx, c.admin, name, roles, {});
  const password = `correct horse battery ${name}`;
  await acceptInvite(c.ctx, invite.token, { password });
  const keys = await generateKeyPair();
  const res = await login(c.ctx, { user: name, password, public_key_pem: await publicKeyToPem(keys.publicKey) });
  const api = createApi(apiCtx, { publicUrl: () => BASE, registry: apiRegistry });
  return new ApiClient({ baseUrl: BASE, fetch: (r) => api.fetch(r) }, { keyPem: await privateKeyToPem(keys.privateKey), certPem: res.cert_pem }, apiClock);
}

describe("attack: revocation on one replica (file backend, one process)", () => {
  let c: MemoryCluster;
  let n = 0;
  beforeAll(async () => {
    c = await startMemoryCluster(fx);
    c.agent();
  }, 60_000);
  afterAll(async () => {
    await c?.close();
  });

  const warm = async () => {
    const r = `r1-${++n}`;
    await c.createRoles(role(r));
    const user = `u1-${n}`;
    const app = await c.appSession(user, [r], READER, { traits: {} });
    expect((await app.request(GROUPS)).status).toBe(200);
    return { user, app, r };
  };
  const deniedFor = async (user: string) => (await c.ctx.audit.search({ event: "app.request.denied" })).filter((e) => e.user === user);

  it.each([
    ["client ID (what az and the portal show)", "client_id", (g: string) => g],
    ["principal (object) ID", "principal_id", (g: string) => g],
    ["client ID without hyphens (a GUID's N format)", "client_id", (g: string) => g.replaceAll("-", "")],
  ] as const)("a lock naming the identity by its %s is refused when made (the proxy decides on resource IDs: it would lock nothing)", async (_what, field, spell) => {
    const { user, app } = await warm();
    const guid = app.login[field];
    expect(guid).toMatch(/^[0-9a-f-]{36}$/);
    await expect(createLock(c.ctx, c.admin, { target: { azure_identity: spell(guid!) } })).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringContaining("full resource ID") });
    expect((await c.ctx.backend.list("locks/")).length).toBe(0);
    expect((await app.request(GROUPS)).status).toBe(200);
    expect(await deniedFor(user)).toEqual([]);
  });

  it.each([
    ["a Cyrillic look-alike letter", READER.replace("teleport-reader", "tеleport-reader")],
    ["a trailing dot on the name", "teleport-reader."],
    ["a trailing space", "teleport-reader "],
    ["percent-encoding", READER.replace("teleport-reader", "teleport%2Dreader")],
    ["a trailing dot on the resource ID", READER + "."],
    ["another resource type's ID", READER.replace("Microsoft.ManagedIdentity/userAssignedIdentities", "Microsoft.Compute/virtualMachines")],
  ])("held: a lock on an identity spelt with %s is refused when made", async (_what, spelling) => {
    await expect(createLock(c.ctx, c.admin, { target: { azure_identity: spelling } })).rejects.toMatchObject({ code: "bad_parameter" });
  });

  it.each([
    ["the name in upper case", () => "TELEPORT-READER"],
    ["the resource ID in lower case", () => READER.toLowerCase()],
    ["the resource ID with group and provider upper-cased", () => READER.replace("myResourceGroup", "MYRESOURCEGROUP").replace("Microsoft.ManagedIdentity", "MICROSOFT.MANAGEDIDENTITY")],
  ])("held: a lock on the identity spelt as %s refuses the next request", async (_what, spelling) => {
    const { user, app } = await warm();
    const lock = await createLock(c.ctx, c.admin, { target: { azure_identity: spelling() } });
    expect((await app.request(GROUPS)).status).toBe(403);
    expect(await deniedFor(user)).toEqual([expect.objectContaining({ error_code: "locked" })]);
    await removeLock(c.ctx, c.admin, lock.metadata.name);
  });

  it("held: a lock on a role, then the role removed from the user and re-added: still locked", async () => {
    const { user, app, r } = await warm();
    await createLock(c.ctx, c.admin, { target: { role: r } });
    expect((await app.request(GROUPS)).status).toBe(403);
    await updateUser(c.ctx, c.admin, user, { roles: ["access"] });
    await updateUser(c.ctx, c.admin, user, { roles: [r] });
    expect((await app.request(GROUPS)).status).toBe(403);
  });

  it("held: a lock on the login session reaches the app session opened from it", async () => {
    const r = `r1-${++n}`;
    await c.createRoles(role(r));
    const user = `u1-${n}`;
    const { caller, expires } = await c.signIn(user, [r]);
    const app = await c.appSessionAs(caller, expires, READER);
    expect((await app.request(GROUPS)).status).toBe(200);
    await createLock(c.ctx, c.admin, { target: { session_id: caller.identity.session_id } });
    expect((await app.request(GROUPS)).status).toBe(403);
    expect(await deniedFor(user)).toEqual([expect.objectContaining({ error_code: "locked" })]);
  });

  const GRANT_ROLES = (granted: string, requester: string, extra = "") =>
    `kind: role\nversion: v7\nmetadata: {name: ${granted}}\nspec: {allow: {app_labels: {env: prod}, azure_identities: ['${READER}']}${extra}}\n---\nkind: role\nversion: v7\nmetadata: {name: ${requester}}\nspec: {allow: {request: {roles: [${granted}], max_duration: 1h}}}\n`;
  const granted = async () => {
    const g = `g-${++n}`;
    const rq = `rq-${n}`;
    await c.createRoles(GRANT_ROLES(g, rq));
    const user = `gu-${n}`;
    let id = "";
    const app = await c.appSession(user, [rq], READER, {
      traits: {},
      beforeAppLogin: async (caller) => {
        id = (await createRequest(c.ctx, caller, { app: "azure-cli", azure_identity: READER, duration: "1h", reason: "INC-1" }, servedApps(c.registry))).metadata.name;
        await reviewRequest(c.ctx, c.admin, id, { state: "APPROVED", reason: "ok" });
      },
    });
    expect((await app.request(GROUPS)).status).toBe(200);
    return { user, app, g, rq, id };
  };

  it("held: a lock on the role a grant gave (not one the user holds) refuses the next request, audited", async () => {
    const { user, app, g } = await granted();
    await createLock(c.ctx, c.admin, { target: { role: g } });
    expect((await app.request(GROUPS)).status).toBe(403);
    expect(await deniedFor(user)).toEqual([expect.objectContaining({ error_code: "locked" })]);
  });

  it("held: the granted role edited to require per-session MFA: the grant's session's next request is refused mfa_required", async () => {
    const { user, app, g, rq } = await granted();
    await c.createRoles(GRANT_ROLES(g, rq, ", options: {require_session_mfa: true}"));
    expect((await app.request(GROUPS)).status).toBe(403);
    expect(await deniedFor(user)).toEqual([expect.objectContaining({ error_code: "mfa_required" })]);
  });

  it("held: the granted role deleted mid-grant: next request refused", async () => {
    const { user, app, g } = await granted();
    await removeResource(c.ctx, c.admin, "role", g);
    expect((await app.request(GROUPS)).status).toBe(403);
    expect(await deniedFor(user)).toEqual([expect.objectContaining({ error_code: "access_denied" })]);
  });

  it("held: the grant's user deleted and re-created under the same name: the new account's app login gets nothing from the old grant", async () => {
    const { user, app, rq } = await granted();
    await removeResource(c.ctx, c.admin, "user", user);
    expect((await app.request(GROUPS)).status).toBe(401);
    const again = await c.appSession(user, [rq], READER, { traits: {} }).catch((e) => e);
    expect(again).toMatchObject({ code: expect.stringMatching(/not_found|access_denied/) });
  });

  it("held: an editor who loses the editor role: the same certificate's next admin call is refused and audited", async () => {
    const api = await personWithApi(c, `ed-${++n}`, ["editor"], c.ctx, c.registry, c.clock);
    await api.call("POST", "/v1/admin/resources", { text: role(`made-by-ed-${n}`) });
    await updateUser(c.ctx, c.admin, `ed-${n}`, { roles: ["access"] });
    await expect(api.call("POST", "/v1/admin/resources", { text: role(`made-by-ed-${n}-2`) })).rejects.toMatchObject({ code: "access_denied" });
    await expect(api.call("POST", "/v1/admin/locks", { target: { user: "someone" } })).rejects.toMatchObject({ code: "access_denied" });
    const denied = (await c.ctx.audit.search({ event: "api.request.denied" })).filter((e) => e.user === `ed-${n}`);
    expect(denied.length).toBe(2);
  });
});

describe("attack: two replicas on one PostgreSQL: written on A, next request on B", () => {
  let replicas: Awaited<ReturnType<typeof memoryReplicas>>;
  let a: MemoryCluster;
  let b: MemoryCluster;
  let n = 0;
  beforeAll(async () => {
    replicas = await memoryReplicas(fx, "revokepg");
    ({ a, b } = replicas);
  }, 90_000);
  afterAll(async () => {
    await replicas?.close();
  });

  const onB = async () => {
    const r = `r2-${++n}`;
    await a.createRoles(role(r));
    const user = `u2-${n}`;
    const { caller, expires } = await b.signIn(user, [r]);
    const app = await b.appSessionAs(caller, expires, READER, { pinned: true });
    expect((await app.request(GROUPS)).status).toBe(200);
    return { user, app, r, caller, expires };
  };
  const deniedOnB = async (user: string) => (await b.ctx.audit.search({ event: "app.request.denied" })).filter((e) => e.user === user);

  it("held: a lock written on A refuses B's next request", async () => {
    const { user, app } = await onB();
    await createLock(a.ctx, a.admin, { target: { user } });
    expect((await app.request(GROUPS)).status).toBe(403);
    expect(await deniedOnB(user)).toEqual([expect.objectContaining({ error_code: "locked" })]);
  });

  it("held: an editor's role removed on A: the editor's next admin call on B is refused", async () => {
    const api = await personWithApi(a, `ed2-${++n}`, ["editor"], b.ctx, b.registry, b.clock);
    await api.call("GET", "/v1/admin/resources/role");
    await updateUser(a.ctx, a.admin, `ed2-${n}`, { roles: ["access"] });
    await expect(api.call("GET", "/v1/admin/resources/role")).rejects.toMatchObject({ code: "access_denied" });
  });

  /** The user CA rotated to standby on A (the old one retired), and B told so by its change feed (a NOTIFY, heard within ms). */
  const rotateUserCaToRetirement = async () => {
    const retiredBefore = b.ctx.cluster.views.user.retired.length;
    for (const phase of ["init", "update_clients", "update_servers", "standby"] as Phase[]) await rotateAuthority(a.ctx, a.admin, "user", { mode: "manual", phase });
    await expect.poll(() => b.ctx.cluster.views.user.retired.length, { timeout: 5_000 }).toBe(retiredBefore + 1);
  };

  it("a user-CA rotation finished on A (the old CA retired): B's next request on a tunnel of the old CA is refused ca_retired, audited", async () => {
    const { user, app } = await onB();
    await rotateUserCaToRetirement();
    const res = await app.request(GROUPS);
    expect(res.status).toBe(401);
    expect(JSON.parse(await res.text()).error.code).toBe("ca_retired");
    expect(await deniedOnB(user)).toEqual([expect.objectContaining({ error_code: "ca_retired" })]);
  });

  it("a user-CA rotation finished on A: B's next API call with a login certificate of the old CA is refused ca_retired, audited", async () => {
    const api = await personWithApi(b, `old-ca-${++n}`, ["access"], b.ctx, b.registry, b.clock);
    await api.call("GET", "/v1/whoami");
    await rotateUserCaToRetirement();
    await expect(api.call("GET", "/v1/whoami")).rejects.toMatchObject({ code: "ca_retired" });
    const refused = (await b.ctx.audit.search({ event: "cert.retired" })).filter((e) => e.user === `old-ca-${n}`);
    expect(refused.length).toBe(1);
  });
});
