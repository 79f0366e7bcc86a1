/**
 * Makes test/fixtures/upgrade/ from the previous release: its proxy and
 * agent run as processes from a checkout of that release (give its path;
 * `git worktree add /tmp/prev <commit>` and a node_modules beside it), and
 * the state they leave is kept: the file backend's data dir and the agent's,
 * and a pg_dump of the same on PostgreSQL. Users alice (the seed guide's
 * azure-cli-access, teleport-reader) and bob (may request teleport-reader),
 * a joined agent, one request through it, and bob's access request,
 * pending. test/e2e/upgrade.test.ts boots the current azgate on them.
 *
 *   tsx scripts/make-upgrade-fixtures.ts /tmp/prev
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import "reflect-metadata";
import { ApiClient } from "../src/api/client.ts";
import { startEmulator } from "../src/emulator/server.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../src/pki/keys.ts";
import { readLocalAdmin } from "../src/proxy/local-admin.ts";
import { agentEnv, IDENTITY, openAppSession, readBody, SEED_DIR } from "../test/helpers/cluster.ts";
import { AGENT_SA } from "../test/helpers/emulator.ts";
import { startPostgres } from "../test/helpers/postgres.ts";
import { tempDir } from "../test/helpers/azgate.ts";

const PREV = path.resolve(process.argv[2] ?? "");
if (!existsSync(path.join(PREV, "bin/azgate.mjs"))) throw new Error("give the previous release's checkout: tsx scripts/make-upgrade-fixtures.ts /tmp/prev");
const OUT = path.resolve(import.meta.dirname, "../test/fixtures/upgrade");
const READER = IDENTITY("teleport-reader");
export const PASSWORD = (user: string) => `correct horse battery ${user}`;
const REQUESTER = `kind: role\nversion: v7\nmetadata: {name: requester}\nspec:\n  allow:\n    app_labels: {"*": "*"}\n    request:\n      azure_identities: ["${READER}"]\n      max_duration: 1h\n`;

function old(args: string[], env: Record<string, string> = {}): { child: ChildProcess; out: () => string; until: (re: RegExp) => Promise<string> } {
  const child = spawn(process.execPath, [path.join(PREV, "bin/azgate.mjs"), ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  return {
    child,
    out: () => out,
    until: (re) =>
      new Promise((resolve, reject) => {
        const t = setInterval(() => {
          const m = re.exec(out);
          if (m) (clearInterval(t), resolve(m[1] ?? m[0]));
          else if (child.exitCode !== null) (clearInterval(t), reject(new Error(`exited:\n${out}`)));
        }, 100);
      }),
  };
}

const stop = (c: ChildProcess) => new Promise<void>((done) => (c.exitCode !== null ? done() : (c.once("exit", () => done()), c.kill("SIGTERM"))));

async function makeCluster(name: string, storage: string | null, emu: Awaited<ReturnType<typeof startEmulator>>, tokenFile: string) {
  const dataDir = tempDir(`azgate-prev-${name}-`);
  const agentDir = tempDir(`azgate-prev-agent-${name}-`);
  const configFile = path.join(dataDir, "..", `${path.basename(dataDir)}.yaml`);
  if (storage) writeFileSync(configFile, `storage:\n  type: postgres\n  conn_string: ${storage}\n`);
  const proxy = old(["start", "--mode", "proxy", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--cluster-name", "upgrade", "--second-factor", "off", ...(storage ? ["--config", configFile] : [])]);
  const port = await proxy.until(/Listening:\s+\S+:(\d+)/);
  const pin = await proxy.until(/CA pin:\s+(sha256:[0-9a-f]{64})/);
  const local = (await readLocalAdmin(dataDir))!;
  const target = { baseUrl: `https://127.0.0.1:${port}`, ca_pem: local.ca_pem };
  const admin = new ApiClient(target, { keyPem: local.key_pem, certPem: local.cert_pem });
  await admin.call("POST", "/v1/admin/resources", { text: readFileSync(path.join(SEED_DIR, "azure-cli-access-internal.yaml"), "utf8") + "---\n" + REQUESTER });
  const login: Record<string, ApiClient> = {};
  for (const [user, roles, ids] of [["alice", ["azure-cli-access"], [READER]], ["bob", ["requester"], []]] as const) {
    const { invite_token } = await admin.call<{ invite_token: string }>("POST", "/v1/admin/users", { name: user, roles, traits: { azure_identities: ids } });
    await new ApiClient(target).call("POST", `/v1/invites/${invite_token}/accept`, { password: PASSWORD(user) });
    const keys = await generateKeyPair();
    const res = await new ApiClient(target).call<{ cert_pem: string }>("POST", "/v1/auth/login", { user, password: PASSWORD(user), public_key_pem: await publicKeyToPem(keys.publicKey) });
    login[user] = new ApiClient(target, { keyPem: await privateKeyToPem(keys.privateKey), certPem: res.cert_pem });
  }
  const { token } = await admin.call<{ token: string }>("POST", "/v1/admin/tokens", { type: "app", ttl: "1h" });
  const agent = old(
    ["start", "--mode", "agent", "--proxy", `127.0.0.1:${port}`, "--ca-pin", pin, "--data-dir", agentDir, "--app", "azure-cli", "--labels", "env=prod", "--azure-connect-to", `127.0.0.1:${emu.httpsPort}`, "--azure-ca-file", emu.caFile, "--token", token],
    agentEnv({ emu, tokenFile, dir: "" }),
  );
  await agent.until(/tunnel to .* is up/);
  const session = await openAppSession(target, login.alice, "azure-cli", READER);
  const res = await session.request("https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2021-04-01");
  if (res.status !== 200) throw new Error(`the request through the old cluster got ${res.status}: ${await readBody(res)}`);
  await readBody(res);
  session.close();
  const request = await login.bob.call<{ metadata: { name: string } }>("POST", "/v1/requests", { app: "azure-cli", azure_identity: READER, duration: "30m", reason: "upgrade fixture" });
  await stop(agent.child);
  await stop(proxy.child);
  return { dataDir, agentDir, pending: request.metadata.name, pin };
}

const emuDir = tempDir("azgate-prev-emu-");
const emu = await startEmulator({ dir: emuDir });
const tokenFile = path.join(emuDir, "sa-token");
const projection = await emu.issuer.project(tokenFile, AGENT_SA);
const pg = await startPostgres();
try {
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  const version = spawnSync(process.execPath, [path.join(PREV, "bin/azgate.mjs"), "version"], { encoding: "utf8" }).stdout.trim();
  const commit = spawnSync("git", ["-C", PREV, "rev-parse", "HEAD"], { encoding: "utf8" }).stdout.trim();

  const file = await makeCluster("file", null, emu, tokenFile);
  const keep = (from: string, to: string) => cpSync(from, path.join(OUT, to), { recursive: true, filter: (p) => !/azgate\.lock$|local-admin/.test(p) });
  keep(file.dataDir, "file/data");
  keep(file.agentDir, "file/agent");

  const url = await pg.database("upgrade");
  const onPg = await makeCluster("postgres", url, emu, tokenFile);
  keep(onPg.agentDir, "postgres/agent");
  const u = new URL(url);
  const bin = path.dirname(spawnSync("sh", ["-c", "ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1"], { encoding: "utf8" }).stdout.trim() + "/x");
  const dump = spawnSync(path.join(bin, "pg_dump"), ["-h", u.hostname, "-p", u.port, "-U", u.username, "--no-owner", "--no-privileges", "upgrade"], { env: { ...process.env, PGPASSWORD: decodeURIComponent(u.password) }, encoding: "utf8" });
  if (dump.status !== 0) throw new Error(dump.stderr);
  mkdirSync(path.join(OUT, "postgres"), { recursive: true });
  writeFileSync(path.join(OUT, "postgres/dump.sql"), dump.stdout);

  writeFileSync(
    path.join(OUT, "fixture.json"),
    JSON.stringify({ made_by: `azgate ${version}`, commit, users: { alice: PASSWORD("alice"), bob: PASSWORD("bob") }, identity: READER, pending_requests: { file: file.pending, postgres: onPg.pending }, ca_pins: { file: file.pin, postgres: onPg.pin } }, null, 2) + "\n",
  );
  console.log(`fixtures written to ${OUT} from azgate ${version} (${commit})`);
} finally {
  projection.stop();
  await emu.close();
  await pg.stop();
}
