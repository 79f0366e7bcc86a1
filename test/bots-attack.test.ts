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
import { createLock, removeLock } from "../src/proxy/locks.ts";
import { createResources } from "../src/proxy/admin.ts";
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
