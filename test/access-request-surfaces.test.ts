/**
 * One answer for one action, whichever surface asks: every review, cancel
 * and revoke, by every kind of actor, in each state, through the API (the
 * API client with a signed proof, as the CLI's), the web UI (a signed-in
 * browser session's form post) and the CLI's own verbs (yargs, in process,
 * over the same API client). All three must agree with each other and with
 * the lifecycle's allowedActions. The proxy's real state and API, in
 * process, by a fake clock.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import yargs from "yargs";
import { openState, settingsFrom } from "../src/proxy/state.ts";
import { configSchema } from "../src/config/schema.ts";
import type { ProxyContext } from "../src/proxy/context.ts";
import { createApi } from "../src/proxy/api.ts";
import { AppRegistry, servedApps } from "../src/proxy/registry.ts";
import { resolveCaller, type Caller } from "../src/proxy/caller.ts";
import { addUser, createResources } from "../src/proxy/admin.ts";
import { acceptInvite } from "../src/proxy/users.ts";
import { login } from "../src/proxy/login.ts";
import { cancelRequest, createRequest, getRequest, requestActions, reviewRequest } from "../src/proxy/access-requests.ts";
import { parseResources } from "../src/resources/parse.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../src/pki/keys.ts";
import { ApiClient } from "../src/api/client.ts";
import { requestCommands, type WithClient } from "../src/cli/commands/requests.ts";
import { memoryPair } from "../src/tunnel/memory.ts";
import { isAzgateError } from "../src/errors/index.ts";
import type { AccessRequest } from "../src/resources/access-request.ts";
import { tempDir } from "./helpers/azgate.ts";
import { FakeClock } from "./helpers/fake-clock.ts";

const BASE = "https://proxy.example:3080";
const READER = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ops/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader";
const ROLES = `kind: role
version: v7
metadata: {name: requester}
spec: {allow: {app_labels: {'*': '*'}, request: {azure_identities: ['${READER}']}}}
---
kind: role
version: v7
metadata: {name: reviewer}
spec: {allow: {review_requests: {azure_identities: ['${READER}']}}}
---
kind: role
version: v7
metadata: {name: request-admin}
spec: {allow: {rules: [{resources: [access_request], verbs: [list, read, update]}]}}
`;
const ACTORS = { requester: "alice", reviewer: "bob", stranger: "mallory", admin: "root" } as const;
type Actor = keyof typeof ACTORS;
type Action = "approve" | "deny" | "cancel" | "revoke";

let ctx: ProxyContext;
let close: () => Promise<void>;
let api: ReturnType<typeof createApi>;
const clock = new FakeClock();
const registry = new AppRegistry(clock, 45_000);
const people = new Map<string, { caller: Caller; client: ApiClient; cookie: string }>();

beforeAll(async () => {
  ({ ctx, close } = await openState(tempDir("azgate-surfaces-"), { clusterName: "s", settings: settingsFrom(configSchema.parse({ auth: { second_factor: "off" } })), purpose: "surfaces test", clock }));
  api = createApi(ctx, { publicUrl: () => BASE, registry });
  // An agent serves the app, so requests for it can be made.
  registry.heartbeat({ id: "t", hostId: "agent", hostName: "agent", session: memoryPair().acceptor, connectedAt: clock.now() }, [{ name: "azure-cli", cloud: "Azure", uri: "cloud://Azure", labels: {} }]);
  const localAdmin = await resolveCaller(ctx, { kind: "local-admin", name: "@local-admin", roles: [], traits: {}, azure_identities: [], login_method: "local", session_id: ctx.localAdminSession });
  await createResources(ctx, localAdmin, parseResources(ROLES, "roles.yaml").resources, true);
  const roles: Record<string, string[]> = { alice: ["requester"], bob: ["reviewer"], mallory: ["access"], root: ["request-admin"] };
  for (const [name, rs] of Object.entries(roles)) {
    const { invite } = await addUser(ctx, localAdmin, name, rs, {});
    const password = `correct horse battery ${name}`;
    await acceptInvite(ctx, invite.token, { password });
    const keys = await generateKeyPair();
    const res = await login(ctx, { user: name, password, public_key_pem: await publicKeyToPem(keys.publicKey) });
    const client = new ApiClient({ baseUrl: BASE, fetch: (req) => api.fetch(req) }, { keyPem: await privateKeyToPem(keys.privateKey), certPem: res.cert_pem }, clock);
    const signIn = await form("/web/login", { user: name, password });
    const cookie = /__Host-azgate_session=[0-9a-f]+/.exec(signIn.headers.get("set-cookie") ?? "")![0];
    people.set(name, { caller: await resolveCaller(ctx, res.identity), client, cookie });
  }
});
afterAll(async () => close?.());

function form(path: string, fields: Record<string, string>, cookie?: string) {
  return api.request(`${BASE}${path}`, { method: "POST", body: new URLSearchParams(fields).toString(), headers: { host: "proxy.example:3080", "content-type": "application/x-www-form-urlencoded", origin: BASE, "sec-fetch-site": "same-origin", ...(cookie ? { cookie } : {}) } });
}

/** A fresh request in `state` (PENDING, or APPROVED by the reviewer). */
async function fresh(state: "PENDING" | "APPROVED"): Promise<string> {
  const r = await createRequest(ctx, people.get("alice")!.caller, { app: "azure-cli", azure_identity: READER, reason: "INC-1" }, servedApps(registry));
  if (state === "APPROVED") await reviewRequest(ctx, people.get("bob")!.caller, r.metadata.name, { state: "APPROVED" });
  return r.metadata.name;
}

/** What each surface answers: did it take the action, the HTTP status of a refusal, and the request's state after. */
interface Answer {
  ok: boolean;
  status: number;
  state: string;
}

const stateOf = async (id: string) => (await getRequest(ctx, people.get("root")!.caller, id)).spec.state;
const apiPath = (action: Action) => (action === "approve" || action === "deny" ? "review" : action);
const apiBody = (action: Action) => (action === "approve" ? { state: "APPROVED" } : action === "deny" ? { state: "DENIED" } : {});

const surfaces: Record<"api" | "web" | "cli", (actor: string, action: Action, id: string) => Promise<Answer>> = {
  async api(actor, action, id) {
    try {
      await people.get(actor)!.client.call<AccessRequest>("POST", `/v1/requests/${id}/${apiPath(action)}`, apiBody(action));
      return { ok: true, status: 200, state: await stateOf(id) };
    } catch (e) {
      if (!isAzgateError(e)) throw e;
      return { ok: false, status: e.status, state: await stateOf(id) };
    }
  },
  async web(actor, action, id) {
    const { cookie } = people.get(actor)!;
    const page = await api.request(`${BASE}/web/requests/${id}`, { headers: { host: "proxy.example:3080", cookie } });
    const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? "";
    const res = await form(`/web/requests/${id}/${apiPath(action)}`, { _csrf: csrf, ...(apiBody(action) as Record<string, string>) }, cookie);
    return { ok: res.status === 303, status: res.status === 303 ? 200 : res.status, state: await stateOf(id) };
  },
  async cli(actor, action, id) {
    const outcome: { error?: unknown } = {};
    const withClient: WithClient = (fn) => async (argv) => {
      try {
        await fn(people.get(actor)!.client, argv);
      } catch (e) {
        outcome.error = e;
      }
    };
    const quiet = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    try {
      await requestCommands(yargs().exitProcess(false), withClient).parseAsync(["request", action, id]);
    } finally {
      quiet.mockRestore();
    }
    const e = outcome.error;
    if (e && !isAzgateError(e)) throw e;
    return { ok: !e, status: e && isAzgateError(e) ? e.status : 200, state: await stateOf(id) };
  },
};

describe("an access request's actions, through the API, the web UI and the CLI", () => {
  const cases: [Actor, Action, "PENDING" | "APPROVED"][] = [];
  for (const actor of Object.keys(ACTORS) as Actor[]) {
    for (const action of ["approve", "deny", "cancel", "revoke"] as const) for (const state of ["PENDING", "APPROVED"] as const) cases.push([actor, action, state]);
  }
  it.each(cases)("%s %s on a %s request: the same answer everywhere, as allowedActions says", async (actor, action, state) => {
    const answers: Record<string, Answer> = {};
    let predicted: boolean | undefined;
    for (const surface of ["api", "web", "cli"] as const) {
      const id = await fresh(state);
      const name = ACTORS[actor];
      const may = await requestActions(ctx, people.get(name)!.caller, await getRequest(ctx, people.get("root")!.caller, id));
      predicted = may[action === "approve" || action === "deny" ? "review" : action].allowed;
      answers[surface] = await surfaces[surface](name, action, id);
      // One user has at most 10 pending requests: a case's leftover is cancelled.
      if (answers[surface].state === "PENDING") await cancelRequest(ctx, people.get("alice")!.caller, id);
    }
    expect(answers.web, "web UI").toEqual(answers.api);
    expect(answers.cli, "CLI").toEqual(answers.api);
    expect(answers.api.ok).toBe(predicted);
  });
});
