/**
 * Bots end to end: a real proxy (its CI issuers reached through
 * bots.issuer_connect_to, the emulator's, over HTTPS with its CA), a real
 * agent, the emulator's CI issuers and runner token services, and the real
 * CLI in a job's shoes: `azgate bot exec -- az group list` and Terraform's
 * token request (client_id, x-ms-identity) as a GitHub Actions, an Azure
 * DevOps, a GitLab and a Kubernetes bot, each followed by a scan of the
 * job's directories; a policy deny; and `bot proxy azure` ended by a lock
 * on its next request.
 * The many refusals are played in process (test/bots.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { useEmulator, findIssuedTokens } from "../helpers/emulator.ts";
import { IDENTITY, SUB, spawnAgent, startCluster, type AgentProcess, type TestCluster } from "../helpers/cluster.ts";
import { cli, parseExports, startCli, tempDir, type CliResult, type LongRunningCli } from "../helpers/azgate.ts";
import { runCommand } from "../helpers/run.ts";
import { stopAll } from "../helpers/stop.ts";
import { ADO_ORGANIZATION_ID } from "../../src/emulator/ci-issuers.ts";

const fx = useEmulator({ projectToken: true });
const CONTRIBUTOR = IDENTITY("teleport-contributor");
const AKS_ISSUER = "https://oidc.prod-aks.azure.com/00000000-0000-4000-8000-0000000000aa/";

const SETUP = `
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
kind: token
version: v2
metadata: { name: deploy-prod }
spec:
  roles: [Bot]
  bot_name: deploy-prod
  join_method: github
  github:
    allow:
      - { repository: acme/infra, repository_id: "892712345", ref: refs/heads/main, environment: production }
---
kind: token
version: v2
metadata: { name: deploy-ado }
spec:
  roles: [Bot]
  bot_name: deploy-prod
  join_method: azure_devops
  azure_devops:
    organization_id: ${ADO_ORGANIZATION_ID}
    allow:
      - { project_name: infra, definition_id: 1 }
---
kind: token
version: v2
metadata: { name: deploy-gitlab }
spec:
  roles: [Bot]
  bot_name: deploy-prod
  join_method: gitlab
  gitlab:
    allow:
      - { project_path: acme/infra, project_id: 4242, ref_protected: true }
---
kind: token
version: v2
metadata: { name: deploy-k8s }
spec:
  roles: [Bot]
  bot_name: deploy-prod
  join_method: kubernetes
  kubernetes:
    oidc: { issuer: '${AKS_ISSUER}' }
    allow:
      - { service_account: 'ci:deployer' }
`;

/** A real PEM block or a JWT (three base64url parts, two of them JSON): what must not be left on disk. */
const SECRET_SHAPES = [/-----BEGIN [A-Z ]*(PRIVATE KEY|CERTIFICATE)-----\s*[A-Za-z0-9+/=\s]{40,}-----END/, /eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/];

describe("azgate bot exec and bot proxy azure, in a CI job's shoes", () => {
  let cluster: TestCluster;
  let agent: AgentProcess;
  /** The running bot proxy azure, stopped at the end even when its test fails. */
  let botProxy: LongRunningCli | undefined;
  /** The job: its home, its temp and its workspace, fresh for each run. */
  let job: { home: string; tmp: string; work: string };
  // The emulated runner's token service is served with the emulator's CA, as a GitHub Enterprise Server's may be with a company's.
  const admin = (args: string[]) => cli(["admin", "--data-dir", cluster.proxy.dataDir, ...args], { home: tempDir("azgate-admin-home-") });
  const flags = () => ["--proxy", cluster.proxy.addr, "--ca-pin", cluster.proxy.pin, "--ci-ca-file", fx.emu.caFile, "--app", "azure-cli", "--azure-identity", "teleport-contributor"];
  const botExec = (token: string, env: Record<string, string>, command: string[], extra: string[] = []) => {
    job = { home: tempDir("azgate-job-home-"), tmp: tempDir("azgate-job-tmp-"), work: tempDir("azgate-job-work-") };
    return cli(["bot", "exec", ...flags(), "--token", token, ...extra, "--", ...command], { home: path.join(job.home, ".azgate"), cwd: job.work, env: { HOME: job.home, TMPDIR: job.tmp, ...env } });
  };
  /** What the last run left in the job's home, temp and workspace that is a private key, a certificate or a token (Entra's or azgate's). */
  const leftOnDisk = () => {
    const left: string[] = [];
    for (const dir of [job.home, job.tmp, job.work]) {
      for (const f of readdirSync(dir, { recursive: true }).map((n) => path.join(dir, String(n)))) {
        if (!statSync(f).isFile()) continue;
        const text = readFileSync(f, "latin1");
        if (SECRET_SHAPES.some((re) => re.test(text)) || findIssuedTokens(fx, text).length) left.push(f);
      }
    }
    return left;
  };
  /** Terraform azurerm's token request (the IMDS path with client_id, x-ms-identity), then an ARM call with the token. */
  // Terraform needs no az login.
  const noAzLogin = (extra: string[] = []) => ["--no-az-login", ...extra];
  const TERRAFORM = [
    "sh",
    "-c",
    [
      `T=$(curl -sS --fail --cacert "$SSL_CERT_FILE" -H "Metadata: true" -H "x-ms-identity: $IDENTITY_HEADER" "$ARM_MSI_ENDPOINT?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F&client_id=$ARM_CLIENT_ID" | jq -r .access_token)`,
      `curl -sS --fail --cacert "$SSL_CERT_FILE" -H "Authorization: Bearer $T" "https://management.azure.com/subscriptions/$ARM_SUBSCRIPTION_ID/resourcegroups?api-version=2021-04-01"`,
    ].join(" && "),
  ];
  const terraformGroups = (res: CliResult) => {
    expect(res.code, res.stderr).toBe(0);
    return (JSON.parse(res.stdout) as { value: { name: string }[] }).value.map((g) => g.name);
  };
  const groups = (res: CliResult) => {
    expect(res.stderr + res.stdout, res.stderr).not.toMatch(/ERROR/);
    expect(res.code).toBe(0);
    return (JSON.parse(res.stdout) as { name: string }[]).map((g) => g.name);
  };

  beforeAll(async () => {
    const config = path.join(tempDir("azgate-bots-cfg-"), "proxy.yaml");
    writeFileSync(config, `bots:\n  issuer_connect_to: { address: '127.0.0.1:${fx.emu.httpsPort}', ca_file: '${fx.emu.caFile}' }\n`);
    cluster = await startCluster({ args: ["--config", config] });
    agent = spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken() });
    await agent.waitFor(/tunnel to .* is up/);
    // As an administrator would: the role, the bot, its join tokens, through the CLI.
    const dir = tempDir("azgate-bots-setup-");
    writeFileSync(path.join(dir, "role.yaml"), SETUP.split("\n---\n")[0]);
    writeFileSync(path.join(dir, "tokens.yaml"), SETUP.split("\n---\n").slice(1).join("\n---\n"));
    for (const args of [["create", path.join(dir, "role.yaml")], ["bots", "add", "deploy-prod", "--roles", "azure-deployer"], ["create", path.join(dir, "tokens.yaml")]]) {
      const res = await admin(args);
      expect(res.code, res.stderr).toBe(0);
    }
    const bots = JSON.parse((await admin(["bots", "ls", "--format", "json"])).stdout) as { name: string; user: string; roles: string[] }[];
    expect(bots).toEqual([expect.objectContaining({ name: "deploy-prod", user: "bot-deploy-prod", roles: ["azure-deployer"] })]);
  }, 90_000);
  afterAll(() => stopAll(botProxy, agent, cluster));

  it("GitHub Actions: bot exec -- az group list, with no credential on disk after it, and the run in every audit event", async () => {
    const jobEnv = fx.emu.ci.runner.githubJob({ environment: "production", run_id: "9001", sha: "f".repeat(40) });
    const issuedBefore = fx.emu.issuedTokens.size;
    expect(groups(await botExec("deploy-prod", jobEnv, ["az", "group", "list", "-o", "json"]))).toContain("myResourceGroup");
    expect(fx.emu.issuedTokens.size).toBeGreaterThan(issuedBefore);
    expect(leftOnDisk()).toEqual([]);
    const { items } = await cluster.admin.call<{ items: Record<string, unknown>[] }>("GET", "/v1/admin/audit?bot=deploy-prod&ci=run_id%3D9001&event=app.request");
    const done = items.filter((e) => e.event === "app.request");
    expect(done.length).toBeGreaterThan(0);
    for (const e of done) expect(e).toMatchObject({ user: "bot-deploy-prod", bot: "deploy-prod", ci: { repository: "acme/infra", sha: "f".repeat(40), run_id: "9001", environment: "production" }, client: { program: "az" } });
    // One run, one invocation ID on every request (the audit's command view), as azgate exec stamps it.
    expect(new Set(done.map((e) => (e.client as { invocation_id?: string }).invocation_id)).size).toBe(1);
  });

  it("Terraform's token request (client_id, x-ms-identity) and an ARM call with its token, through bot exec", async () => {
    const res = await botExec("deploy-prod", fx.emu.ci.runner.githubJob({ environment: "production" }), TERRAFORM, noAzLogin());
    expect(terraformGroups(res)).toContain("myResourceGroup");
    expect(leftOnDisk()).toEqual([]);
  });

  it("a deny in the bot's azure_api policy refuses az group delete with AzgatePolicyDenied; nothing reaches Azure", async () => {
    const from = fx.emu.requests.length;
    const res = await botExec("deploy-prod", fx.emu.ci.runner.githubJob({ environment: "production" }), ["az", "group", "delete", "-n", "production", "--yes"]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/AzgatePolicyDenied/);
    expect(fx.emu.requests.slice(from).filter((r) => r.method === "DELETE")).toEqual([]);
  });

  it("Azure DevOps, GitLab and Kubernetes bots run az group list and Terraform's token request the same way, leaving nothing on disk", { timeout: 240_000 }, async () => {
    const ado = fx.emu.ci.runner.azureDevopsJob({ project: "infra", pipeline: "deploy" });
    expect(groups(await botExec("deploy-ado", ado, ["az", "group", "list", "-o", "json"]))).toContain("myResourceGroup");
    expect(leftOnDisk()).toEqual([]);
    expect(terraformGroups(await botExec("deploy-ado", ado, TERRAFORM, noAzLogin()))).toContain("myResourceGroup");
    expect(leftOnDisk()).toEqual([]);

    // A GitLab job's id_tokens variable; the CI token's own variable never reaches the command.
    const gitlab = async () => ({ GITLAB_CI: "true", AZGATE_ID_TOKEN: await fx.emu.ci.runner.gitlabToken("e2e", { project_path: "acme/infra" }) });
    const res = await botExec("deploy-gitlab", await gitlab(), ["sh", "-c", 'test -z "$AZGATE_ID_TOKEN" && az group list -o json']);
    expect(groups(res)).toContain("myResourceGroup");
    expect(leftOnDisk()).toEqual([]);
    expect(terraformGroups(await botExec("deploy-gitlab", await gitlab(), TERRAFORM, noAzLogin()))).toContain("myResourceGroup");
    expect(leftOnDisk()).toEqual([]);

    // A projected service-account token (the kubelet reuses it: no replay cache for this method).
    const tokenFile = path.join(tempDir("azgate-sa-"), "token");
    writeFileSync(tokenFile, await fx.emu.issuer.sign({ namespace: "ci", serviceAccount: "deployer", audience: "e2e" }));
    const k8s = ["--join-method", "kubernetes", "--id-token-file", tokenFile];
    expect(groups(await botExec("deploy-k8s", {}, ["az", "group", "list", "-o", "json"], k8s))).toContain("myResourceGroup");
    expect(leftOnDisk()).toEqual([]);
    expect(terraformGroups(await botExec("deploy-k8s", {}, TERRAFORM, noAzLogin(k8s)))).toContain("myResourceGroup");
    expect(leftOnDisk()).toEqual([]);
  });

  it("a lock on the bot ends a running bot proxy azure on its next request", async () => {
    const home = tempDir("azgate-job-home-");
    const running = (botProxy = await startCli(["bot", "proxy", "azure", ...flags(), "--token", "deploy-prod"], { home, env: { HOME: home, ...fx.emu.ci.runner.githubJob({ environment: "production" }) }, ready: /export HTTPS_PROXY=/ }));
    const env = { ...process.env, ...parseExports(running.output()) } as Record<string, string>;
    const url = `https://management.azure.com/subscriptions/${SUB}/resourcegroups?api-version=2021-04-01`;
    const token = async () => JSON.parse((await runCommand("curl", ["-sS", "--fail", "-H", `x-identity-header: ${env.IDENTITY_HEADER}`, `${env.IDENTITY_ENDPOINT}?resource=https://management.azure.com/&api-version=2019-08-01`], env)).stdout).access_token as string;
    const arm = async () => runCommand("curl", ["-sS", "--cacert", env.SSL_CERT_FILE, "-o", "/dev/null", "-w", "%{http_code}", "-H", `Authorization: Bearer ${await token()}`, url], env);
    expect((await arm()).stdout).toBe("200");
    expect((await admin(["lock", "--bot", "deploy-prod", "--message", "release frozen"])).code).toBe(0);
    expect((await arm()).stdout).toBe("403");
    const code = running.child.exitCode ?? (await new Promise<number>((resolve) => running.child.once("exit", (c) => resolve(c ?? -1))));
    expect(code).toBe(1);
    expect(running.output()).toMatch(/refused bot "deploy-prod": .*release frozen.*the Azure proxy stopped/);
  });
});
