/**
 * Bots in process (test/helpers/memory-cluster.ts): the proxy's real join
 * path against the emulator's CI issuers (GitHub Actions, Azure DevOps,
 * GitLab, an AKS-style Kubernetes issuer), read over HTTPS through the
 * proxy's issuer connect-to. Every refusal of the issue's list is played:
 * its code, its bot.join audit event, and no request to Azure. Then what
 * applies to users applies to bots: azure_api policy, locks on the next
 * request, access requests (a bot asks, a person approves), no password or
 * SSO, and every event of a bot carries its name and its run.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useEmulator } from "./helpers/emulator.ts";
import { startMemoryCluster, type MemoryApp, type MemoryCluster } from "./helpers/memory-cluster.ts";
import { IDENTITY, SUB } from "./helpers/cluster.ts";
import { join } from "../src/proxy/join.ts";
import { addBot, listBots, removeBot } from "../src/proxy/bots/admin.ts";
import { renewBot } from "../src/proxy/bots/renew.ts";
import type { BotCertificate } from "../src/proxy/bots/join.ts";
import { UNKNOWN_KID_REFETCH_MS } from "../src/proxy/bots/issuer-keys.ts";
import { resolveCaller, type Caller } from "../src/proxy/caller.ts";
import { createLock, removeLock } from "../src/proxy/locks.ts";
import { login } from "../src/proxy/login.ts";
import { createResources, resetUser } from "../src/proxy/admin.ts";
import { createRequest, reviewRequest } from "../src/proxy/access-requests.ts";
import { servedApps } from "../src/proxy/registry.ts";
import { parseResources } from "../src/resources/parse.ts";
import { generateKeyPair, publicKeyToPem } from "../src/pki/keys.ts";
import { githubClaims, azureDevopsClaims, gitlabClaims } from "../src/emulator/ci-runner.ts";
import { adoIssuer, ADO_AUDIENCE, ADO_ORGANIZATION_ID } from "../src/emulator/ci-issuers.ts";
import type { AuditEvent } from "../src/audit/sink.ts";
import { finishSsoLogin } from "../src/proxy/sso/finish.ts";
import type { SsoAttempt } from "../src/proxy/sso/attempt.ts";
import type { Connector } from "../src/resources/connector.ts";

const fx = useEmulator({ projectToken: true });
const CONTRIBUTOR = IDENTITY("teleport-contributor");
const READER = IDENTITY("teleport-reader");
const AKS_ISSUER = "https://oidc.prod-aks.azure.com/00000000-0000-4000-8000-0000000000aa/";
const CI_HOSTS = new Set(["token.actions.githubusercontent.com", "vstoken.dev.azure.com", "gitlab.com", "oidc.prod-aks.azure.com"]);

const ROLES = `
kind: role
version: v7
metadata: { name: azure-deployer }
spec:
  allow:
    app_labels: { '*': '*' }
    azure_identities: ['${CONTRIBUTOR}']
    azure_api:
      - actions: ['*']
  deny:
    azure_api:
      - actions: ['Microsoft.Resources/subscriptions/resourceGroups/delete']
---
kind: role
version: v7
metadata: { name: asks-for-reader }
spec:
  allow:
    app_labels: { '*': '*' }
    request: { azure_identities: ['${READER}'] }
---
kind: role
version: v7
metadata: { name: reader-reviewer }
spec:
  allow:
    review_requests: { azure_identities: ['${READER}'] }
`;

const token = (name: string, method: string, body: string, extra = "") => `
kind: token
version: v2
metadata: { name: ${name}${extra} }
spec:
  roles: [Bot]
  bot_name: deploy-prod
  join_method: ${method}
${body}`;

const TOKENS = [
  token("deploy-prod", "github", `  github:\n    allow:\n      - { repository: acme/infra, ref: refs/heads/main, environment: production }`),
  token("gh-any-event", "github", `  github:\n    allow:\n      - { repository: acme/infra }\n      - { repository: acme/infra, event_name: pull_request_target, actor: trusted-maintainer }`),
  token("ado-deploy", "azure_devops", `  azure_devops:\n    organization_id: ${ADO_ORGANIZATION_ID}\n    allow:\n      - { project_name: infra, definition_id: 1, repository_ref: refs/heads/main }\n      - { project_name: infra, service_connection: azgate-prod }`),
  token("gitlab-deploy", "gitlab", `  gitlab:\n    allow:\n      - { project_path: acme/infra, ref: main, ref_protected: true }`),
  token("k8s-deploy", "kubernetes", `  kubernetes:\n    oidc: { issuer: '${AKS_ISSUER}' }\n    allow:\n      - { service_account: 'ci:deployer' }`),
].join("\n---\n");

let mc: MemoryCluster;
let agent: ReturnType<MemoryCluster["agent"]>;
let admin: Caller;
let human: Caller;
const now = () => Math.floor(mc.clock.now() / 1000);
const github = (run: Parameters<typeof githubClaims>[0] = {}, o: { audience?: string; now?: number; ttlSeconds?: number; key?: Awaited<ReturnType<typeof fx.emu.ci.github.unpublishedKey>> } = {}) =>
  fx.emu.ci.github.sign(githubClaims({ environment: "production", ...run }), { audience: o.audience ?? "memory", now: o.now ?? now(), ttlSeconds: o.ttlSeconds, key: o.key });
/** Azure's requests (not the CI issuers' documents) the emulator saw from `from` on. */
const azureRequests = (from: number) => fx.emu.requests.slice(from).filter((r) => !CI_HOSTS.has(r.host));

async function joinAs(tokenName: string, method: string, idToken: string): Promise<BotCertificate & { key: CryptoKeyPair }> {
  const key = await generateKeyPair();
  const res = (await join(mc.ctx, { token: tokenName, join_method: method, id_token: idToken, public_key_pem: await publicKeyToPem(key.publicKey), type: "" }, "10.1.2.3")) as BotCertificate;
  return { ...res, key };
}

async function botApp(cert: BotCertificate, identity = CONTRIBUTOR): Promise<MemoryApp> {
  return mc.appSessionAs(await resolveCaller(mc.ctx, cert.identity), new Date(cert.expires), identity);
}

/** The join is refused with `code`, audited as bot.join (TJ001E) with that code, and nothing reached Azure. */
async function refused(tokenName: string, method: string, idToken: string | Promise<string>, code: string, message?: RegExp): Promise<AuditEvent> {
  const from = fx.emu.requests.length;
  const before = (await mc.ctx.audit.search({ event: "bot.join" })).length;
  await expect(joinAs(tokenName, method, await idToken)).rejects.toMatchObject({ code, ...(message ? { message: expect.stringMatching(message) } : {}) });
  const events = (await mc.ctx.audit.search({ event: "bot.join" })).slice(before);
  expect(events).toEqual([expect.objectContaining({ event: "bot.join", code: "TJ001E", token_name: tokenName, error_code: code, success: false, remote_addr: "10.1.2.3" })]);
  expect(azureRequests(from)).toEqual([]);
  return events[0];
}

beforeAll(async () => {
  mc = await startMemoryCluster(fx, { bots: { issuer_connect_to: { address: `127.0.0.1:${fx.emu.httpsPort}`, ca_file: fx.emu.caFile } } });
  agent = mc.agent();
  admin = mc.admin;
  await mc.createRoles(ROLES);
  // reader-reviewer too: whatever its roles say, a bot reviews nothing.
  await addBot(mc.ctx, admin, "deploy-prod", ["azure-deployer", "asks-for-reader", "reader-reviewer"]);
  await createResources(mc.ctx, admin, parseResources(TOKENS, "tokens").resources, false);
  ({ caller: human } = await mc.signIn("lead", ["reader-reviewer"]));
});
afterAll(() => mc?.close());

describe("a bot joins with its CI's own token", () => {
  it("GitHub Actions: a push to main in the production environment joins; the certificate is short and carries the run", async () => {
    const run = { sha: "a".repeat(40), run_id: "4242", run_attempt: "2", actor: "octocat", workflow: "deploy" };
    const cert = await joinAs("deploy-prod", "github", await github(run));
    const life = Date.parse(cert.expires) - mc.clock.now();
    expect(life).toBeGreaterThan(19 * 60_000);
    expect(life).toBeLessThanOrEqual(20 * 60_000);
    expect(cert.identity).toMatchObject({ kind: "user", name: "bot-deploy-prod", login_method: "bot", bot: { name: "deploy-prod", token: "deploy-prod", join_method: "github", ci: { repository: "acme/infra", ref: "refs/heads/main", environment: "production", ...run } } });
    const [joined] = (await mc.ctx.audit.search({ event: "bot.join" })).filter((e) => e.success === true).slice(-1);
    expect(joined).toMatchObject({ code: "TJ001I", user: "bot-deploy-prod", bot: "deploy-prod", token_name: "deploy-prod", join_method: "github", ci: { repository: "acme/infra", sha: "a".repeat(40), run_id: "4242" } });
  });

  it("Azure DevOps (a pipeline's token, and a service connection's), GitLab and Kubernetes join by their own rules", async () => {
    const ado = await fx.emu.ci.azureDevops.sign(azureDevopsClaims({ project: "infra", pipeline: "deploy", ref: "refs/heads/main", run_id: "77" }), { audience: ADO_AUDIENCE, issuer: adoIssuer(ADO_ORGANIZATION_ID), now: now() });
    expect((await joinAs("ado-deploy", "azure_devops", ado)).identity.bot!.ci).toMatchObject({ organization: "acme", project: "infra", pipeline: "deploy", ref: "refs/heads/main", run_id: "77" });
    const sc = await fx.emu.ci.azureDevops.sign({ sub: "sc://acme/infra/azgate-prod" }, { audience: ADO_AUDIENCE, issuer: adoIssuer(ADO_ORGANIZATION_ID), now: now() });
    expect((await joinAs("ado-deploy", "azure_devops", sc)).identity.bot!.ci).toEqual({ organization: "acme", project: "infra", service_connection: "azgate-prod" });
    const gl = await fx.emu.ci.gitlab.sign(gitlabClaims({ project_path: "acme/infra", ref: "main", ref_protected: true, pipeline_id: "99" }), { audience: "memory", now: now() });
    expect((await joinAs("gitlab-deploy", "gitlab", gl)).identity.bot!.ci).toMatchObject({ project_path: "acme/infra", ref: "main", pipeline_id: "99" });
    const k8s = await fx.emu.issuer.sign({ namespace: "ci", serviceAccount: "deployer", audience: "memory", now: mc.clock.now() });
    const joined = await joinAs("k8s-deploy", "kubernetes", k8s);
    expect(joined.identity.bot!.ci).toEqual({ namespace: "ci", service_account: "deployer" });
    // A projected token is the pod's for most of an hour: it joins again.
    await joinAs("k8s-deploy", "kubernetes", k8s);
  });

  it("an issuer's new key (a rotation) is read once; a second unknown key within the minute is not read for", async () => {
    const reads = fx.emu.ci.gitlab.jwksReads;
    await fx.emu.ci.gitlab.rotate();
    await joinAs("gitlab-deploy", "gitlab", await fx.emu.ci.gitlab.sign(gitlabClaims(), { audience: "memory", now: now() }));
    expect(fx.emu.ci.gitlab.jwksReads).toBe(reads + 1);
    const stranger = await fx.emu.ci.gitlab.unpublishedKey();
    await refused("gitlab-deploy", "gitlab", fx.emu.ci.gitlab.sign(gitlabClaims(), { audience: "memory", now: now(), key: stranger }), "id_token_invalid", /does not publish/);
    expect(fx.emu.ci.gitlab.jwksReads).toBe(reads + 1);
    // A minute on, an unknown key may make one read again (and is still refused).
    mc.clock.advance(UNKNOWN_KID_REFETCH_MS);
    await refused("gitlab-deploy", "gitlab", fx.emu.ci.gitlab.sign(gitlabClaims(), { audience: "memory", now: now(), key: stranger }), "id_token_invalid", /does not publish/);
    expect(fx.emu.ci.gitlab.jwksReads).toBe(reads + 2);
  });
});

describe("every refusal: its code, its audit event, and no Azure request", () => {
  it("a wrong repository, ref or environment matches no rule; the caller hears its own run's value, the log the rule's too", async () => {
    const repo = await refused("deploy-prod", "github", github({ repository: "acme/other" }), "join_denied", /wants another repository \(this run's is "acme\/other"\)/);
    expect(repo.rule_detail).toMatch(/the rule wants "acme\/infra"/);
    expect(repo.ci).toMatchObject({ repository: "acme/other" });
    await refused("deploy-prod", "github", github({ ref: "refs/heads/feature" }), "join_denied", /wants another ref/);
    await refused("deploy-prod", "github", github({ environment: "staging" }), "join_denied", /wants another environment/);
    await refused("deploy-prod", "github", fx.emu.ci.github.sign(githubClaims({}), { audience: "memory", now: now() }), "join_denied", /environment \(this run's is missing\)/);
  });

  it("a fork's pull request does not match a rule that did not name pull_request events; a rule naming the event does", async () => {
    const fork = { event_name: "pull_request", ref: "refs/pull/5/merge", environment: undefined, extra: { head_ref: "attack", base_ref: "main" } };
    await refused("gh-any-event", "github", github(fork), "join_denied", /a pull_request run .* matches only a rule that names event_name: pull_request/);
    await refused("gh-any-event", "github", github({ ...fork, event_name: "pull_request_target" }), "join_denied", /matches only a rule that names event_name: pull_request_target/);
    // The same repository on a push joins under the first rule; the named event and actor under the second.
    await joinAs("gh-any-event", "github", await github({ environment: undefined }));
    await joinAs("gh-any-event", "github", await github({ ...fork, event_name: "pull_request_target", actor: "trusted-maintainer" }));
  });

  it("an expired token, a token from the future, a wrong audience, a replayed token ID, a key not in the issuer's JWKS", async () => {
    await refused("deploy-prod", "github", github({}, { now: now() - 600, ttlSeconds: 300 }), "id_token_invalid", /expired at/);
    await refused("deploy-prod", "github", github({}, { now: now() + 600 }), "id_token_invalid", /issued in the future|not valid before/);
    await refused("deploy-prod", "github", github({}, { audience: "https://github.com/acme" }), "id_token_invalid", /audience is "https:\/\/github.com\/acme", not "memory"/);
    const once = await github();
    await joinAs("deploy-prod", "github", once);
    await refused("deploy-prod", "github", once, "id_token_replayed", /joined before/);
    await refused("deploy-prod", "github", github({}, { key: await fx.emu.ci.github.unpublishedKey() }), "id_token_invalid", /does not publish/);
    await refused("ado-deploy", "azure_devops", fx.emu.ci.azureDevops.sign(azureDevopsClaims(), { audience: ADO_AUDIENCE, issuer: adoIssuer("11111111-0000-4000-8000-000000000000"), now: now() }), "id_token_invalid", /issuer/);
  });

  it("a locked bot, and a join token that has expired (or never existed)", async () => {
    const lock = await createLock(mc.ctx, admin, { target: { user: "bot-deploy-prod" }, message: "frozen" });
    const locked = await refused("deploy-prod", "github", github(), "locked", /frozen/);
    expect(locked.ci).toMatchObject({ repository: "acme/infra" });
    await removeLock(mc.ctx, admin, lock.metadata.name);
    const soon = new Date(mc.clock.now() + 60_000).toISOString();
    await createResources(mc.ctx, admin, parseResources(token("short-lived", "github", `  github:\n    allow:\n      - { repository: acme/infra }`, `, expires: '${soon}'`), "t").resources, false);
    mc.clock.advance(61_000);
    await refused("short-lived", "github", github(), "token_invalid", /expired at/);
    await refused("no-such-token", "github", github(), "token_invalid", /not known/);
  });
});

describe("what applies to users applies to bots", () => {
  let cert: BotCertificate & { key: CryptoKeyPair };
  let app: MemoryApp;
  beforeAll(async () => {
    agent.heartbeat(); // the clock moved on above: the agent says it is alive now
    cert = await joinAs("deploy-prod", "github", await github({ sha: "b".repeat(40), run_id: "555" }));
    app = await botApp(cert);
  });

  it("reads through its identity; every event of its requests carries the bot and the run", async () => {
    const res = await app.request(`https://management.azure.com/subscriptions/${SUB}/resourcegroups?api-version=2021-04-01`);
    expect(res.status).toBe(200);
    await res.text();
    // (The end event is written after the answer: polled.)
    await expect.poll(async () => (await mc.ctx.audit.search({ bot: "deploy-prod", event: "app.request" })).filter((e) => e.event === "app.request").length).toBe(1);
    const events = await mc.ctx.audit.search({ bot: "deploy-prod", ci: "run_id=555" });
    expect(events.map((e) => e.event)).toEqual(expect.arrayContaining(["app.session.start", "app.request.start", "app.request"]));
    for (const e of events) expect(e).toMatchObject({ user: "bot-deploy-prod", bot: "deploy-prod", ci: { repository: "acme/infra", sha: "b".repeat(40), run_id: "555" } });
    expect((await mc.ctx.audit.search({ ci: "b".repeat(40), event: "app.request" })).map((e) => e.event)).toEqual(["app.request.start", "app.request"]);
    expect(await mc.ctx.audit.search({ ci: "sha=" + "c".repeat(40) })).toEqual([]);
  });

  it("a deny in the bot's azure_api policy refuses az group delete (AzgatePolicyDenied), audited, and nothing reaches Azure", async () => {
    const from = fx.emu.requests.length;
    const res = await app.request(`https://management.azure.com/subscriptions/${SUB}/resourcegroups/production?api-version=2021-04-01`, { method: "DELETE" });
    expect(res.status).toBe(403);
    expect(JSON.parse(await res.text()).error).toMatchObject({ code: "AzgatePolicyDenied" });
    const [denied] = (await mc.ctx.audit.search({ event: "app.request.denied", bot: "deploy-prod" })).slice(-1);
    expect(denied).toMatchObject({ error_code: "policy_denied", method: "DELETE", ci: { run_id: "555" } });
    expect(azureRequests(from)).toEqual([]);
  });

  it("a lock on the bot refuses its next request, audited; lifting it lets the next one through", async () => {
    const lock = await createLock(mc.ctx, admin, { target: { user: "bot-deploy-prod" } });
    const from = fx.emu.requests.length;
    const res = await app.request(`https://management.azure.com/subscriptions/${SUB}/resourcegroups?api-version=2021-04-01`);
    expect(res.status).toBe(403);
    expect(JSON.parse(await res.text()).error.code).toBe("locked");
    expect(azureRequests(from)).toEqual([]);
    expect((await mc.ctx.audit.search({ event: "app.request.denied", bot: "deploy-prod" })).slice(-1)[0]).toMatchObject({ error_code: "locked" });
    // Nor does it renew: the account as it is now is locked.
    await expect((async () => renewBot(mc.ctx, await resolveCaller(mc.ctx, cert.identity), { public_key_pem: await publicKeyToPem(cert.key.publicKey) }))()).rejects.toMatchObject({ code: "locked" });
    await removeLock(mc.ctx, admin, lock.metadata.name);
    expect((await app.request(`https://management.azure.com/subscriptions/${SUB}/resourcegroups?api-version=2021-04-01`)).status).toBe(200);
  });

  it("renews within its session (same session, a fresh short certificate), audited with its run", async () => {
    const renewed = await renewBot(mc.ctx, await resolveCaller(mc.ctx, cert.identity), { public_key_pem: await publicKeyToPem(cert.key.publicKey) });
    expect(renewed.identity.session_id).toBe(cert.identity.session_id);
    expect(Date.parse(renewed.expires)).toBeGreaterThan(mc.clock.now() + 19 * 60_000);
    expect((await mc.ctx.audit.search({ event: "bot.renew" })).slice(-1)[0]).toMatchObject({ bot: "deploy-prod", ci: { run_id: "555" } });
  });

  it("a bot may request access; it cannot review; a person approves and the bot's apps login takes the grant", async () => {
    const bot = await resolveCaller(mc.ctx, cert.identity);
    const req = await createRequest(mc.ctx, bot, { app: "azure-cli", azure_identity: READER, reason: "release 1.2" }, servedApps(mc.registry));
    expect((await mc.ctx.audit.search({ event: "access_request.create", bot: "deploy-prod" })).slice(-1)[0]).toMatchObject({ access_request_id: req.metadata.name, ci: { run_id: "555" } });
    const { caller: carol } = await mc.signIn("carol", ["asks-for-reader"]);
    const hers = await createRequest(mc.ctx, carol, { app: "azure-cli", azure_identity: READER, reason: "debugging" }, servedApps(mc.registry));
    await expect(reviewRequest(mc.ctx, bot, hers.metadata.name, { state: "APPROVED" })).rejects.toMatchObject({ code: "access_denied", message: expect.stringContaining("a bot does not review") });
    expect((await mc.ctx.audit.search({ event: "access_request.review", bot: "deploy-prod" })).slice(-1)[0]).toMatchObject({ success: false, error_code: "access_denied" });
    expect((await reviewRequest(mc.ctx, human, req.metadata.name, { state: "APPROVED", reason: "ok" })).spec.state).toBe("APPROVED");
    const reader = await botApp(cert, READER);
    expect((await reader.request(`https://management.azure.com/subscriptions/${SUB}/resourcegroups?api-version=2021-04-01`)).status).toBe(200);
  });

  it("a bot cannot sign in with a password or SSO, be reset to get a password, or be overwritten by a user file", async () => {
    await expect(login(mc.ctx, { user: "bot-deploy-prod", password: "whatever it is", public_key_pem: await publicKeyToPem(cert.key.publicKey) })).rejects.toMatchObject({ code: "login_failed" });
    expect((await mc.ctx.audit.search({ event: "user.login", user: "bot-deploy-prod" })).slice(-1)[0]).toMatchObject({ success: false, error: expect.stringContaining("a bot cannot sign in with a password") });
    const connector = { kind: "oidc", metadata: { name: "idp" }, spec: {} } as unknown as Connector;
    const attempt = { key: "sso-attempts/x", revision: "1", value: { remote_addr: "127.0.0.1" } as SsoAttempt };
    await expect(finishSsoLogin(mc.ctx, connector, attempt, { user: "bot-deploy-prod", subject: "oidc:https://idp:1", roles: ["azure-deployer"], traits: {} })).rejects.toMatchObject({ code: "already_exists", message: expect.stringContaining("is a bot") });
    expect((await mc.ctx.audit.search({ event: "user.login", user: "bot-deploy-prod" })).slice(-1)[0]).toMatchObject({ success: false, connector: "idp", error: "the name is a bot's" });
    await expect(resetUser(mc.ctx, admin, "bot-deploy-prod")).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringContaining("is a bot") });
    await expect(createResources(mc.ctx, admin, parseResources("kind: user\nversion: v2\nmetadata: { name: bot-deploy-prod }\nspec: { roles: [azure-deployer] }", "u").resources, true)).rejects.toMatchObject({ code: "already_exists" });
  });

  it("bots are listed; removing one refuses its certificate on the next request", async () => {
    expect(await listBots(mc.ctx, admin)).toEqual([expect.objectContaining({ name: "deploy-prod", user: "bot-deploy-prod", roles: ["azure-deployer", "asks-for-reader", "reader-reviewer"] })]);
    await addBot(mc.ctx, admin, "short-lived-bot", ["azure-deployer"]);
    await removeBot(mc.ctx, admin, "short-lived-bot");
    expect((await mc.ctx.audit.search({ event: "bot.delete" })).slice(-1)[0]).toMatchObject({ code: "TB003I", name: "short-lived-bot" });
  });
});
