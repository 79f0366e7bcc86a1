/**
 * The outside review of the bot join (issue 33's second attack), each
 * walk-around played and refused: its code, its bot.join audit event, and
 * no request to Azure. F1: GitLab's bare ref; F2: GitHub's display names
 * and ID anchors; F3: Azure DevOps' pipeline names; F4: invisible and
 * control characters in CI facts; F5/F6: locks and names that miss a bot;
 * F7: renewal rechecks the rules; F8: a refused join does not spend its jti.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useEmulator } from "./helpers/emulator.ts";
import { startMemoryCluster, type MemoryCluster } from "./helpers/memory-cluster.ts";
import { IDENTITY } from "./helpers/cluster.ts";
import { join } from "../src/proxy/join.ts";
import { addBot } from "../src/proxy/bots/admin.ts";
import { renewBot } from "../src/proxy/bots/renew.ts";
import type { BotCertificate } from "../src/proxy/bots/join.ts";
import { resolveCaller, type Caller } from "../src/proxy/caller.ts";
import { createLock, listLocks, removeLock } from "../src/proxy/locks.ts";
import { botLockUser } from "../src/resources/user.ts";
import { addUser, createResources } from "../src/proxy/admin.ts";
import { finishSsoLogin } from "../src/proxy/sso/finish.ts";
import type { SsoAttempt } from "../src/proxy/sso/attempt.ts";
import type { Connector } from "../src/resources/connector.ts";
import { parseResources } from "../src/resources/parse.ts";
import { generateKeyPair, publicKeyToPem } from "../src/pki/keys.ts";
import { githubClaims, azureDevopsClaims, gitlabClaims } from "../src/emulator/ci-runner.ts";
import { adoIssuer, ADO_AUDIENCE, ADO_ORGANIZATION_ID } from "../src/emulator/ci-issuers.ts";
import type { AuditEvent } from "../src/audit/sink.ts";

const fx = useEmulator({ projectToken: true });
const CONTRIBUTOR = IDENTITY("teleport-contributor");
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
`;

const token = (name: string, method: string, body: string, bot = "deploy-prod") => `
kind: token
version: v2
metadata: { name: ${name} }
spec:
  roles: [Bot]
  bot_name: ${bot}
  join_method: ${method}
${body}`;

const TOKENS = [
  token("gitlab-main", "gitlab", `  gitlab:\n    allow:\n      - { project_path: acme/infra, ref: main }`),
  token("gh-repo", "github", `  github:\n    allow:\n      - { repository: acme/infra, repository_id: "892712345" }`),
  token("gitlab-tag", "gitlab", `  gitlab:\n    allow:\n      - { project_path: acme/infra, ref: v1, ref_type: tag }`),
].join("\n---\n");

let mc: MemoryCluster;
let admin: Caller;
const now = () => Math.floor(mc.clock.now() / 1000);
const gh = (claims: Record<string, unknown>) => fx.emu.ci.github.sign(claims, { audience: "memory", now: now() });
const gl = (claims: Record<string, unknown>) => fx.emu.ci.gitlab.sign(claims, { audience: "memory", now: now() });
const ado = (claims: Record<string, unknown>) => fx.emu.ci.azureDevops.sign(claims, { audience: ADO_AUDIENCE, issuer: adoIssuer(ADO_ORGANIZATION_ID), now: now() });
const azureRequests = (from: number) => fx.emu.requests.slice(from).filter((r) => !CI_HOSTS.has(r.host));

async function joinAs(tokenName: string, method: string, idToken: string): Promise<BotCertificate & { key: CryptoKeyPair }> {
  const key = await generateKeyPair();
  const res = (await join(mc.ctx, { token: tokenName, join_method: method, id_token: idToken, public_key_pem: await publicKeyToPem(key.publicKey), type: "" }, "10.9.9.9")) as BotCertificate;
  return { ...res, key };
}

/** The join is refused with `code`, audited as bot.join (TJ001E) with that code, and nothing reached Azure. */
async function refused(tokenName: string, method: string, idToken: string | Promise<string>, code: string, message?: RegExp): Promise<AuditEvent> {
  const from = fx.emu.requests.length;
  const before = (await mc.ctx.audit.search({ event: "bot.join" })).length;
  await expect(joinAs(tokenName, method, await idToken)).rejects.toMatchObject({ code, ...(message ? { message: expect.stringMatching(message) } : {}) });
  const events = (await mc.ctx.audit.search({ event: "bot.join" })).slice(before);
  expect(events).toEqual([expect.objectContaining({ event: "bot.join", code: "TJ001E", token_name: tokenName, error_code: code, success: false, remote_addr: "10.9.9.9" })]);
  expect(azureRequests(from)).toEqual([]);
  return events[0];
}

beforeAll(async () => {
  mc = await startMemoryCluster(fx, { bots: { issuer_connect_to: { address: `127.0.0.1:${fx.emu.httpsPort}`, ca_file: fx.emu.caFile } } });
  mc.agent();
  admin = mc.admin;
  await mc.createRoles(ROLES);
  await addBot(mc.ctx, admin, "deploy-prod", ["azure-deployer"]);
  await createResources(mc.ctx, admin, parseResources(TOKENS, "tokens").resources, false);
});
afterAll(() => mc?.close());

describe("F1 GitLab: a rule naming ref without ref_type means a branch", () => {
  it("a tag named main does not join a rule written `ref: main`; the branch does; a rule naming ref_type: tag takes the tag", async () => {
    const tag = (ref: string) => ({ ...gitlabClaims({ project_path: "acme/infra", ref, ref_protected: false }), ref_type: "tag", ref_path: `refs/tags/${ref}`, sub: `project_path:acme/infra:ref_type:tag:ref:${ref}` });
    const event = await refused("gitlab-main", "gitlab", gl(tag("main")), "join_denied", /matches a branch only \(this run's ref_type is "tag"\)/);
    expect(event.ci).toMatchObject({ project_path: "acme/infra", ref: "main" });
    const noType = gitlabClaims({ project_path: "acme/infra", ref: "main" });
    delete noType.ref_type;
    await refused("gitlab-main", "gitlab", gl(noType), "join_denied", /ref_type is missing/);
    expect((await joinAs("gitlab-main", "gitlab", await gl(gitlabClaims({ project_path: "acme/infra", ref: "main" })))).identity.name).toBe("bot-deploy-prod");
    expect((await joinAs("gitlab-tag", "gitlab", await gl(tag("v1")))).identity.name).toBe("bot-deploy-prod");
  });
});

describe("F2 GitHub and GitLab: rules pin IDs and the workflow file; `workflow` is a display name", () => {
  const pinned = token("gh-pinned", "github", `  github:\n    allow:\n      - { repository: acme/infra, repository_id: "892712345", workflow_ref: acme/infra/.github/workflows/deploy.yml@refs/heads/main }`);
  const glPinned = token("gl-pinned", "gitlab", `  gitlab:\n    allow:\n      - { project_path: acme/infra, project_id: 4242, ref: main }`);
  beforeAll(async () => {
    await createResources(mc.ctx, admin, parseResources([pinned, glPinned].join("\n---\n"), "t").resources, false);
  });

  it("a re-registered acme/infra (another repository_id) and another workflow file named deploy are refused by a rule pinning repository_id and workflow_ref", async () => {
    const jacked = { ...githubClaims({}), repository_id: "666666", repository_owner_id: "777777" };
    const event = await refused("gh-pinned", "github", gh(jacked), "join_denied", /wants another repository_id \(this run's is "666666"\)/);
    expect(event.rule_detail).toMatch(/the rule wants "892712345"/);
    const evil = githubClaims({ ref: "refs/heads/attacker-branch", workflow: "deploy" });
    evil.workflow_ref = evil.job_workflow_ref = "acme/infra/.github/workflows/evil.yml@refs/heads/attacker-branch";
    await refused("gh-pinned", "github", gh(evil), "join_denied", /wants another workflow_ref/);
    expect((await joinAs("gh-pinned", "github", await gh(githubClaims({})))).identity.name).toBe("bot-deploy-prod");
  });

  it("GitLab: a project re-created at the same path (another project_id) is refused by a rule pinning project_id (a YAML number, read as text)", async () => {
    await refused("gl-pinned", "gitlab", gl({ ...gitlabClaims({ project_path: "acme/infra" }), project_id: "9999" }), "join_denied", /wants another project_id/);
    expect((await joinAs("gl-pinned", "gitlab", await gl(gitlabClaims({ project_path: "acme/infra" })))).identity.name).toBe("bot-deploy-prod");
  });

  it("the ID fields parse (bad IDs refused with resource_invalid); a rule with no ID anchor is warned of, one with an ID is not; workflow alone is no anchor", () => {
    expect(parseResources(pinned, "t").warnings).toEqual([]);
    expect(parseResources(token("w", "github", `  github:\n    allow:\n      - { repository: acme/infra }`), "t").warnings).toEqual([expect.stringMatching(/rule 1 names no repository_id or repository_owner_id/)]);
    expect(parseResources(token("w", "gitlab", `  gitlab:\n    allow:\n      - { project_path: acme/infra }`), "t").warnings).toEqual([expect.stringMatching(/rule 1 names no project_id or namespace_id/)]);
    for (const field of ["repository_owner_id: 1", "job_workflow_sha: abc", "workflow_ref: 'acme/infra/.github/workflows/deploy.yml@refs/heads/main'"]) {
      expect(parseResources(token("pin", "github", `  github:\n    allow:\n      - { repository: acme/infra, ${field} }`), "t").resources).toHaveLength(1);
    }
    expect(() => parseResources(token("pin", "github", `  github:\n    allow:\n      - { repository: acme/infra, repository_id: "12a" }`), "t")).toThrow(expect.objectContaining({ code: "resource_invalid", message: expect.stringMatching(/numeric ID/) }));
    expect(() => parseResources(token("pin", "github", `  github:\n    allow:\n      - { workflow: deploy }`), "t")).toThrow(expect.objectContaining({ code: "resource_invalid" }));
  });
});

describe("F3 Azure DevOps: a pipeline is named by its definition ID in its project, not by its name", () => {
  const rule = (r: string) => token("ado-x", "azure_devops", `  azure_devops:\n    organization_id: ${ADO_ORGANIZATION_ID}\n    allow:\n      - ${r}`);
  beforeAll(async () => {
    await createResources(mc.ctx, admin, parseResources(token("ado-deploy", "azure_devops", `  azure_devops:\n    organization_id: ${ADO_ORGANIZATION_ID}\n    allow:\n      - { project_id: 271ef6f7-0000-4000-8000-00000000ad01, definition_id: 1, repository_ref: refs/heads/main }`), "t").resources, false);
  });

  it("another pipeline named deploy in the project (another definition, another repository) is refused; the pinned definition joins", async () => {
    const other = azureDevopsClaims({ project: "infra", pipeline: "deploy", definition_id: "999", repository: "mallory/scratch", ref: "refs/heads/main" });
    const event = await refused("ado-deploy", "azure_devops", ado(other), "join_denied", /wants another definition_id \(this run's is "999"\)/);
    expect(event.ci).toMatchObject({ pipeline: "deploy", definition_id: "999", repository: "mallory/scratch" });
    expect((await joinAs("ado-deploy", "azure_devops", await ado(azureDevopsClaims({ project: "infra", pipeline: "deploy" })))).identity.name).toBe("bot-deploy-prod");
  });

  it("the docs' old rule (project and pipeline name), a pipeline name alone, a definition ID alone, a pipeline's sub: refused as no anchor (resource_invalid); definition or service connection in a project, or a connection's sub, are anchors", () => {
    for (const bad of ["{ project_name: infra, pipeline_name: deploy, repository_ref: refs/heads/main }", "{ pipeline_name: deploy }", "{ definition_id: 1 }", "{ project_name: infra }", "{ sub: p://acme/infra/deploy }"]) {
      expect(() => parseResources(rule(bad), "t"), bad).toThrow(expect.objectContaining({ code: "resource_invalid", message: expect.stringMatching(/definition_id/) }));
    }
    for (const good of ["{ project_name: infra, definition_id: 12 }", "{ project_id: 271ef6f7-0000-4000-8000-00000000ad01, definition_id: '12' }", "{ project_name: infra, service_connection: azgate-prod }", "{ sub: sc://acme/infra/azgate-prod }"]) {
      expect(parseResources(rule(good), "t").resources, good).toHaveLength(1);
    }
  });
});

describe("F5 admin lock --bot: a spelling that names no bot is refused, never a lock on nothing", () => {
  it("the CLI's --bot takes the bot's name only: bot-NAME (with a hint), capitals and spaces are refused", () => {
    expect(botLockUser("deploy-prod")).toBe("bot-deploy-prod");
    expect(() => botLockUser("bot-deploy-prod")).toThrow(expect.objectContaining({ code: "bad_parameter", message: expect.stringContaining('--bot "deploy-prod"') }));
    for (const bad of ["Deploy-Prod", "deploy-prod ", "", "deploy prod"]) expect(() => botLockUser(bad), bad).toThrow(expect.objectContaining({ code: "bad_parameter" }));
  });

  it("the proxy refuses a lock on a bot user that does not exist (not_found, nothing stored, no lock.create); a person's name that does not exist is warned of; the right lock refuses the join, audited", async () => {
    const locks = (await listLocks(mc.ctx)).length;
    const created = (await mc.ctx.audit.search({ event: "lock.create" })).length;
    for (const user of ["bot-Deploy-Prod", "bot-bot-deploy-prod", "bot-deploy-prod "]) {
      await expect(createLock(mc.ctx, admin, { target: { user }, message: "release freeze" }), user).rejects.toMatchObject({ code: "not_found", message: expect.stringContaining("admin bots ls") });
    }
    expect((await listLocks(mc.ctx)).length).toBe(locks);
    expect((await mc.ctx.audit.search({ event: "lock.create" })).length).toBe(created);
    const warnings: string[] = [];
    const ghost = await createLock(mc.ctx, admin, { target: { user: "nobody-yet" } }, warnings);
    expect(warnings).toEqual([expect.stringContaining('no user is named "nobody-yet"')]);
    await removeLock(mc.ctx, admin, ghost.metadata.name);
    // A bot named bot-x would be user bot-bot-x, which --bot cannot name.
    await expect(addBot(mc.ctx, admin, "bot-x", ["azure-deployer"])).rejects.toMatchObject({ code: "bad_parameter" });
    const lock = await createLock(mc.ctx, admin, { target: { user: botLockUser("deploy-prod") }, message: "release freeze" });
    await refused("gh-repo", "github", gh(githubClaims({})), "locked", /release freeze/);
    await removeLock(mc.ctx, admin, lock.metadata.name);
  });
});

describe("F4 CI facts: invisible, bidi and control characters refuse the join; a long value is cut visibly", () => {
  it("a ref with a zero-width space is not refs/heads/main: refused, the audit event shows the character escaped", async () => {
    const event = await refused("gh-repo", "github", gh(githubClaims({ ref: "refs/heads/main\u200b" })), "join_denied", /ref holds an invisible or control character \(U\+200B\)/);
    expect((event.ci as Record<string, string>).ref).toBe("refs/heads/main\\u{200b}");
  });

  it("a right-to-left override, an 8-bit CSI, a C0 control (once dropped silently), a line separator: refused; a matched claim that is no fact too", async () => {
    for (const [claims, c] of [
      [githubClaims({ workflow: "deploy\u202e" }), "U+202E"],
      [githubClaims({ workflow: "deploy\u009b31m" }), "U+009B"],
      [githubClaims({ actor: "octo\x1bcat" }), "U+001B"],
      [githubClaims({ actor: "octo\u2028cat" }), "U+2028"],
    ] as const) {
      await refused("gh-repo", "github", gh(claims), "join_denied", new RegExp(`\\(${c.replace("+", "\\+")}\\)`));
    }
    const pinned = githubClaims({});
    pinned.workflow_ref = "acme/infra/.github/workflows/deploy.yml@refs/heads/main\u200d";
    await refused("gh-pinned", "github", gh(pinned), "join_denied", /workflow_ref holds an invisible/);
  });

  it("a value longer than 256 characters is kept cut and marked with …, not silently", async () => {
    const wf = "deploy " + "x".repeat(300) + "TAIL";
    const cert = await joinAs("gh-repo", "github", await gh(githubClaims({ workflow: wf })));
    const kept = cert.identity.bot!.ci.workflow;
    expect([...kept].length).toBe(256);
    expect(kept.endsWith("…")).toBe(true);
    expect(kept).not.toContain("TAIL");
    const [joined] = (await mc.ctx.audit.search({ event: "bot.join" })).filter((e) => e.success === true).slice(-1);
    expect((joined.ci as Record<string, string>).workflow).toBe(kept);
  });
});

describe("F6 a person cannot take a bot's name (bot-*)", () => {
  it("admin users add, a user file and an SSO login's first sign-in refuse bot-ci (audited for SSO); the bot ci is then made and --bot ci locks it", async () => {
    await expect(addUser(mc.ctx, admin, "bot-ci", ["azure-deployer"], {})).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringContaining("admin bots add ci") });
    await expect(addUser(mc.ctx, admin, "Bot-CI", ["azure-deployer"], {})).rejects.toMatchObject({ code: "bad_parameter" });
    await expect(createResources(mc.ctx, admin, parseResources("kind: user\nversion: v2\nmetadata: { name: bot-ci }\nspec: { roles: [azure-deployer] }", "u").resources, false)).rejects.toMatchObject({ code: "bad_parameter" });
    const connector = { kind: "oidc", metadata: { name: "idp" }, spec: {} } as unknown as Connector;
    const attempt = { key: "sso-attempts/x", revision: "1", value: { remote_addr: "127.0.0.1" } as SsoAttempt };
    await expect(finishSsoLogin(mc.ctx, connector, attempt, { user: "bot-ci", subject: "oidc:https://idp:1", roles: ["azure-deployer"], traits: {} })).rejects.toMatchObject({ code: "bad_parameter" });
    expect((await mc.ctx.audit.search({ event: "user.login", user: "bot-ci" })).slice(-1)[0]).toMatchObject({ success: false, connector: "idp", error: "the name is a bot's" });
    expect(await mc.ctx.backend.get(`users/bot-ci`)).toBeNull();
    await addBot(mc.ctx, admin, "ci", ["azure-deployer"]);
    const lock = await createLock(mc.ctx, admin, { target: { user: botLockUser("ci") } });
    expect(lock.spec.target.user).toBe("bot-ci");
    await removeLock(mc.ctx, admin, lock.metadata.name);
  });
});

describe("F7 renewal matches the join token's rules as they are now", () => {
  it("after the rule is narrowed to another repository, a running bot's renewal is refused (join_denied), audited as bot.renew; the rule put back, it renews", async () => {
    const narrow = (repo: string) => token("gh-narrow", "github", `  github:\n    allow:\n      - { repository: ${repo}, repository_id: "892712345" }`);
    await createResources(mc.ctx, admin, parseResources(narrow("acme/infra"), "t").resources, false);
    const cert = await joinAs("gh-narrow", "github", await gh(githubClaims({ repository: "acme/infra" })));
    expect(cert.identity.bot!.run).toMatchObject({ repository: "acme/infra", repository_id: "892712345", event_name: "push" });
    await createResources(mc.ctx, admin, parseResources(narrow("acme/elsewhere"), "t").resources, true);
    const pem = await publicKeyToPem(cert.key.publicKey);
    const from = fx.emu.requests.length;
    await expect(renewBot(mc.ctx, await resolveCaller(mc.ctx, cert.identity), { public_key_pem: pem })).rejects.toMatchObject({ code: "join_denied", message: expect.stringMatching(/wants another repository \(this run's is "acme\/infra"\)/) });
    expect((await mc.ctx.audit.search({ event: "bot.renew" })).slice(-1)[0]).toMatchObject({ code: "AZJ002E", success: false, error_code: "join_denied", bot: "deploy-prod", session_id: cert.identity.session_id, rule_detail: expect.stringContaining('the rule wants "acme/elsewhere"') });
    expect(azureRequests(from)).toEqual([]);
    // A certificate without the run's fields (from before rechecks) is not renewed: fail closed.
    const { run: _run, ...older } = cert.identity.bot!;
    await createResources(mc.ctx, admin, parseResources(narrow("acme/infra"), "t").resources, true);
    await expect(renewBot(mc.ctx, await resolveCaller(mc.ctx, { ...cert.identity, bot: older }), { public_key_pem: pem })).rejects.toMatchObject({ code: "join_denied" });
    const renewed = await renewBot(mc.ctx, await resolveCaller(mc.ctx, cert.identity), { public_key_pem: pem });
    expect(renewed.identity.bot!.run).toEqual(cert.identity.bot!.run);
  });
});

describe("F8 a join refused as locked does not spend the run's token ID", () => {
  it("refused as locked (audited), the lock lifted, the same CI token joins; then it is spent", async () => {
    const lock = await createLock(mc.ctx, admin, { target: { user: botLockUser("deploy-prod") }, message: "freeze" });
    const t = await gh(githubClaims({}));
    await refused("gh-repo", "github", t, "locked", /freeze/);
    await removeLock(mc.ctx, admin, lock.metadata.name);
    expect((await joinAs("gh-repo", "github", t)).identity.name).toBe("bot-deploy-prod");
    await refused("gh-repo", "github", t, "id_token_replayed", /joined before/);
  });
});
