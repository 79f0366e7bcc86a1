/**
 * `azgate demo`: the whole system in one process, offline. The emulator
 * plays Azure (with an AKS-style issuer projecting the agent's service
 * account token), a proxy runs on loopback, an agent joins it with a join
 * token and Workload ID against the emulator, and a user with the seed
 * guide's role is created and logged in on this machine's azgate profile.
 * Everything goes through the same APIs a real deployment uses.
 */
import { systemClock } from "../util/clock.ts";
import path from "node:path";
import { startEmulator, type RunningEmulator } from "../emulator/server.ts";
import { identityResourceId } from "../emulator/world.ts";
import { loadConfig } from "../config/load.ts";
import { startProxy, type RunningProxy } from "../proxy/server.ts";
import { startAgent, type RunningAgent } from "../agent/server.ts";
import { ApiClient } from "../api/client.ts";
import { saveProfile, type Profile } from "../client/profile.ts";
import { connectAdmin } from "../cli/connect.ts";
import { AzgateError, isAzgateError } from "../errors/index.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../pki/keys.ts";
import { ensureDir, writeFileAtomic } from "../runtime/index.ts";
import { AGENT_IDENTITY_NAME, AGENT_SERVICE_ACCOUNT, DEMO_APP, DEMO_IDENTITY_NAME, DEMO_ROLE_YAML, DEMO_USER, DEMO_BOT, DEMO_BOT_TOKEN_YAML, DEMO_PIPELINE_RUN, demoBotYaml } from "./seed.ts";
import { azgateHome } from "../client/profile.ts";
import { exportLines } from "../cli/shell-exports.ts";

export interface DemoOptions {
  dataDir: string;
  /** Proxy port on 127.0.0.1 (0: any free port). */
  port: number;
  /** azgate home to log the demo user into (default: the user's, ~/.azgate). */
  home?: string;
  log(line: string): void;
}

export interface RunningDemo {
  emulator: RunningEmulator;
  proxy: RunningProxy;
  agent: RunningAgent;
  profile: Profile;
  user: string;
  password: string;
  identity: string;
  /** A GitHub Actions step's environment (sh), for `azgate bot exec` in a second shell. */
  pipelineEnv: string;
  close(): Promise<void>;
}

export async function startDemo(opts: DemoOptions): Promise<RunningDemo> {
  const closers: (() => Promise<unknown>)[] = [];
  const close = async () => {
    for (const fn of closers.reverse()) await fn().catch(() => undefined);
  };
  try {
    await ensureDir(opts.dataDir, 0o700);
    const emuDir = path.join(opts.dataDir, "emulator");
    const emulator = await startEmulator({ dir: emuDir });
    closers.push(() => emulator.close());
    const tokenFile = path.join(emuDir, "agent-sa-token");
    const projection = await emulator.issuer.project(tokenFile, AGENT_SERVICE_ACCOUNT);
    closers.push(async () => projection.stop());
    opts.log(`emulator: Entra ID, ARM, Key Vault and Blob storage for tenant ${emulator.world.tenant_id}`);

    const config = loadConfig({
      env: {},
      flags: [
        [["cluster_name"], "demo"],
        [["proxy", "listen"], `127.0.0.1:${opts.port}`],
        [["auth", "second_factor"], "off"],
        // The CI issuers a bot's token comes from (GitHub's, Azure DevOps', GitLab's) are the emulator's.
        [["bots", "issuer_connect_to", "address"], `127.0.0.1:${emulator.httpsPort}`],
        [["bots", "issuer_connect_to", "ca_file"], emulator.caFile],
      ],
    });
    const proxyDir = path.join(opts.dataDir, "proxy");
    const proxy = await startProxy({ ...config, data_dir: proxyDir }, systemClock).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "EADDRINUSE") throw new AzgateError("bad_parameter", `port ${opts.port} is in use; pick another with --port`);
      throw e;
    });
    closers.push(() => proxy.close());
    const proxyAddr = `127.0.0.1:${proxy.port}`;
    opts.log(`proxy: https://${proxyAddr} (cluster "demo", data in ${proxyDir})`);

    const admin = await connectAdmin({ dataDir: proxyDir });
    closers.push(() => admin.close());
    const identities = emulator.world.identities;
    const identity = identityResourceId(identities.find((i) => i.name === DEMO_IDENTITY_NAME)!);
    const agentIdentity = identities.find((i) => i.name === AGENT_IDENTITY_NAME)!;
    await admin.client.call("POST", "/v1/admin/resources", { text: DEMO_ROLE_YAML, source: "seed: azure-cli-access", force: true });

    // The agent joins with a one-use token and Workload ID against the emulator's Entra ID.
    const token = await admin.client.call<{ token: string }>("POST", "/v1/admin/tokens", { type: "app", ttl: "10m", uses: 1 });
    const agent = await startAgent({
      dataDir: path.join(opts.dataDir, "agent"),
      proxyAddr,
      token: token.token,
      caPin: proxy.caPins[0],
      apps: [{ name: DEMO_APP, cloud: "Azure", uri: "cloud://Azure", labels: { env: "demo" }, description: "Azure (emulated)" }],
      hostName: "demo-agent",
      connectTo: { address: `127.0.0.1:${emulator.httpsPort}`, caFile: emulator.caFile },
      env: {
        AZURE_CLIENT_ID: agentIdentity.client_id,
        AZURE_TENANT_ID: emulator.world.tenant_id,
        AZURE_FEDERATED_TOKEN_FILE: tokenFile,
        AZURE_AUTHORITY_HOST: "https://login.microsoftonline.com/",
      },
      log: (l) => opts.log(`agent: ${l}`),
      clock: systemClock,
    });
    closers.push(() => agent.close());
    await waitFor(() => proxy.registry.all(DEMO_APP).length > 0, 15_000, "the agent did not register its app with the proxy");

    // The user: created (or reset, when the data dir is reused) with an invite accepted here.
    const password = `demo-${crypto.randomUUID()}`;
    const exists = (await admin.client.call<{ items: unknown[] }>("GET", "/v1/admin/resources/user")).items.some((u) => (u as { metadata: { name: string } }).metadata.name === DEMO_USER);
    if (exists) await admin.client.call("PATCH", `/v1/admin/users/${DEMO_USER}`, { roles: ["azure-cli-access"], azure_identities: [identity] });
    const invite = exists
      ? await admin.client.call<{ invite_token: string }>("POST", `/v1/admin/users/${DEMO_USER}/reset`)
      : await admin.client.call<{ invite_token: string }>("POST", "/v1/admin/users", { name: DEMO_USER, roles: ["azure-cli-access"], traits: { azure_identities: [identity] } });
    const ca_pem = proxy.ctx.cluster.host.cert.toString("pem") + "\n";
    const target = { baseUrl: `https://${proxyAddr}`, ca_pem };
    await new ApiClient(target).call("POST", `/v1/invites/${invite.invite_token}/accept`, { password });
    const keys = await generateKeyPair();
    const login = await new ApiClient(target).call<{ cert_pem: string }>("POST", "/v1/auth/login", { user: DEMO_USER, password, public_key_pem: await publicKeyToPem(keys.publicKey) });
    const profile: Profile = { proxy: proxyAddr, user: DEMO_USER, cluster: proxy.clusterName, ca_pem };
    await saveProfile(profile, await privateKeyToPem(keys.privateKey), login.cert_pem, opts.home);
    opts.log(`user: ${DEMO_USER} (role azure-cli-access, identity ${DEMO_IDENTITY_NAME}), logged in`);

    const pipelineEnv = await seedPipeline(admin.client, emulator, { proxyAddr, caPin: proxy.caPins[0], identity, home: opts.home ?? azgateHome() });
    opts.log(`bot: ${DEMO_BOT} (role demo-pipeline), for a GitHub Actions run of ${DEMO_PIPELINE_RUN.repository} (${DEMO_PIPELINE_RUN.ref}, environment ${DEMO_PIPELINE_RUN.environment}); the run's environment is in ${pipelineEnv}`);
    return { emulator, proxy, agent, profile, user: DEMO_USER, password, identity, pipelineEnv, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * The demo's pipeline: the bot, its role and its join token, and a file with
 * what a GitHub Actions step of one run would have in its environment (the
 * emulated runner's token service, which signs as GitHub's issuer) and what
 * the step passes to azgate: the proxy, its CA pin, the runner's CA.
 */
async function seedPipeline(admin: ApiClient, emulator: RunningEmulator, o: { proxyAddr: string; caPin: string; identity: string; home: string }): Promise<string> {
  await admin.call("POST", "/v1/admin/resources", { text: demoBotYaml(o.identity), source: "demo: pipeline", force: true });
  // A reused data dir has the bot already.
  await admin.call("POST", "/v1/admin/bots", { name: DEMO_BOT, roles: ["demo-pipeline"] }).catch((e: unknown) => {
    if (!(isAzgateError(e) && e.code === "already_exists")) throw e;
  });
  await admin.call("POST", "/v1/admin/resources", { text: DEMO_BOT_TOKEN_YAML, source: "demo: pipeline", force: true });
  const job = emulator.ci.runner.githubJob(DEMO_PIPELINE_RUN);
  const file = path.join(o.home, "pipeline.env");
  await ensureDir(o.home, 0o700);
  const text = [
    `# A GitHub Actions step of one run of ${DEMO_PIPELINE_RUN.repository} (${DEMO_PIPELINE_RUN.ref}, environment ${DEMO_PIPELINE_RUN.environment}),`,
    `# with permissions: id-token: write, as the demo's emulated runner hands it out. Then:`,
    `#   azgate bot exec --proxy "$AZGATE_DEMO_PROXY" --ca-pin "$AZGATE_DEMO_CA_PIN" --ci-ca-file "$AZGATE_DEMO_CI_CA" --token ${DEMO_BOT} -- az group list`,
    exportLines(job, "unix"),
    exportLines({ AZGATE_DEMO_PROXY: o.proxyAddr, AZGATE_DEMO_CA_PIN: o.caPin, AZGATE_DEMO_CI_CA: emulator.caFile }, "unix"),
    ``,
  ].join("\n");
  // The runner's bearer secret is in it: private, as a runner keeps it.
  await writeFileAtomic(file, text, 0o600);
  return file;
}

async function waitFor(ready: () => boolean, ms: number, failure: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!ready()) {
    if (performance.now() > deadline) throw new AzgateError("internal", failure);
    await new Promise((r) => setTimeout(r, 100));
  }
}
