/**
 * A running bot command's session (src/client/bot-session.ts) against a real
 * proxy in process (startProxy, on a FakeClock) whose CI issuers are the
 * emulator's, with a stand-in agent on an in-memory tunnel: the bot joins
 * with a GitHub Actions run's token from the emulated runner, serves the
 * local proxy, renews its certificates in memory at two thirds of their life
 * (so a request after the first certificate's end still goes through), and
 * a lock on the bot refuses its next request and tells the command
 * (onRefused, on which `bot proxy azure` ends). The e2e file
 * (test/e2e/bots.test.ts) runs the real CLI and az; this one moves time.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { startProxy, type RunningProxy } from "../src/proxy/server.ts";
import { loadConfig } from "../src/config/load.ts";
import { resolveCaller, type Caller } from "../src/proxy/caller.ts";
import { createResources } from "../src/proxy/admin.ts";
import { addBot } from "../src/proxy/bots/admin.ts";
import { createLock, removeLock } from "../src/proxy/locks.ts";
import { parseResources } from "../src/resources/parse.ts";
import { memoryPair } from "../src/tunnel/memory.ts";
import { respondJsonMeta, type TunnelStream } from "../src/tunnel/index.ts";
import { respondJson } from "../src/tunnel/http.ts";
import { IDENTITY_FACTS_CALL } from "../src/api/types.ts";
import { joinAsBot, openBotApp, type BotAppSession } from "../src/client/bot-session.ts";
import type { AzgateError } from "../src/errors/index.ts";
import { IDENTITY } from "./helpers/cluster.ts";
import { tempDir } from "./helpers/azgate.ts";
import { rawRequest } from "./helpers/local-proxy.ts";
import { useEmulator } from "./helpers/emulator.ts";
import { gitlabClaims } from "../src/emulator/ci-runner.ts";
import { FakeClock } from "./helpers/fake-clock.ts";

const fx = useEmulator();
const READER = IDENTITY("teleport-reader");
const GROUPS_PATH = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2022-09-01";
const SETUP = `kind: role
version: v7
metadata: { name: pipeline }
spec: { allow: { app_labels: { '*': '*' }, azure_identities: ['${READER}'] } }
`;
const TOKEN = `kind: token
version: v2
metadata: { name: deploy }
spec:
  roles: [Bot]
  bot_name: deploy
  join_method: github
  github:
    allow:
      - { repository: acme/infra, ref: refs/heads/main }
`;
const GITLAB_TOKEN = `kind: token
version: v2
metadata: { name: deploy-gitlab }
spec:
  roles: [Bot]
  bot_name: deploy
  join_method: gitlab
  gitlab:
    allow:
      - { project_path: acme/infra }
`;
const MINUTE = 60_000;

let proxy: RunningProxy;
let admin: Caller;
/** Whether the stand-in agent heartbeats (an agent away for a while stops being served). */
let serving = true;
const clock = new FakeClock();
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  const config = loadConfig({
    flags: [
      [["proxy", "listen"], "127.0.0.1:0"],
      [["cluster_name"], "bot-session"],
      [["auth", "second_factor"], "off"],
      [["bots", "cert_ttl"], "20m"],
      [["bots", "issuer_connect_to", "address"], `127.0.0.1:${fx.emu.httpsPort}`],
      [["bots", "issuer_connect_to", "ca_file"], fx.emu.caFile],
    ],
  });
  proxy = await startProxy({ ...config, data_dir: tempDir("azgate-bot-session-") }, clock);
  admin = await resolveCaller(proxy.ctx, { kind: "local-admin", name: "@local-admin", roles: [], traits: {}, azure_identities: [], login_method: "local", session_id: proxy.ctx.localAdminSession });
  await createResources(proxy.ctx, admin, parseResources(SETUP, "role.yaml").resources, false);
  await addBot(proxy.ctx, admin, "deploy", ["pipeline"]);
  await createResources(proxy.ctx, admin, parseResources(TOKEN + "---\n" + GITLAB_TOKEN, "token.yaml").resources, false);
  // An agent that answers every request with 200, and knows no identity facts.
  const agent = memoryPair({
    onStream: (s: TunnelStream) => {
      if (s.meta.type === IDENTITY_FACTS_CALL) return respondJsonMeta(s, { ok: false, message: "a stand-in agent" });
      void respondJson(s, 200, { value: [] }).catch(() => undefined);
    },
  });
  // It heartbeats as an agent does, so it is still served when the test moves the clock by minutes.
  const heartbeat = () => serving && proxy.registry.heartbeat({ id: "stand-in", hostId: "stand-in", hostName: "stand-in", session: agent.acceptor, connectedAt: clock.now(), holds: false }, [{ name: "azure-cli", cloud: "Azure", uri: "cloud://Azure", labels: { env: "prod" } }]);
  heartbeat();
  const beating = clock.every(30_000, heartbeat);
  closers.push(async () => beating.cancel());
  closers.push(async () => agent.dialer.close(0, "done"));
}, 60_000);
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await proxy?.close();
});

/** GET the resource groups through the bot's local proxy, as a client would. */
async function get(s: BotAppSession): Promise<{ status: number; code?: string }> {
  const caPem = readFileSync(path.join(s.dir, "localca.pem"), "utf8");
  const res = await rawRequest(s.proxy.port, caPem, "management.azure.com", { method: "GET", path: GROUPS_PATH, headers: { host: "management.azure.com", authorization: "Bearer placeholder-not-checked-by-the-stand-in" } });
  return { status: res.status, code: res.status === 200 ? undefined : (JSON.parse(res.body) as { error?: { code?: string } }).error?.code };
}

describe("a bot command's session, in memory", () => {
  it("renews its certificates at two thirds of their life, so it outlives the first; a lock refuses the next request and ends it", async () => {
    const logs: string[] = [];
    const log = (line: string) => void logs.push(line);
    const refusals: AzgateError[] = [];
    const bot = await joinAsBot({
      proxy: new URL(proxy.url).host,
      caPin: proxy.caPins[0],
      token: "deploy",
      method: "github",
      env: fx.emu.ci.runner.githubJob(),
      caPems: [readFileSync(fx.emu.caFile, "utf8")],
      clock,
    });
    expect(bot).toMatchObject({ bot: "deploy", method: "github", ci: { repository: "acme/infra", ref: "refs/heads/main" } });
    const firstEnd = bot.expires().getTime();
    expect(firstEnd - clock.now()).toBeLessThanOrEqual(20 * MINUTE);
    const session = await openBotApp(bot, { app: "azure-cli", azureIdentity: READER, log, onRefused: (e) => refusals.push(e) });
    closers.push(() => session.close());
    expect(await get(session)).toEqual({ status: 200 });

    // Two thirds of 20 minutes: the bot's certificate, then the app's, renewed for the same keys.
    await clock.tick(14 * MINUTE);
    await expect.poll(() => logs.find((l) => /^renew/.test(l))).toMatch(/^renewed the bot's certificates until/);
    expect(bot.expires().getTime()).toBeGreaterThan(firstEnd);
    expect((await proxy.ctx.audit.search({ event: "bot.renew" })).filter((e) => e.user === "bot-deploy")).toHaveLength(1);

    // Past the first certificate's end: still served, with the renewed one.
    await clock.tick(7 * MINUTE);
    expect(clock.now()).toBeGreaterThan(firstEnd);
    expect(await get(session)).toEqual({ status: 200 });

    const lock = await createLock(proxy.ctx, admin, { target: { user: "bot-deploy" }, message: "release freeze" });
    await expect.poll(async () => (await get(session)).status).toBe(403);
    expect(await get(session)).toEqual({ status: 403, code: "locked" });
    expect(refusals.map((e) => e.code)).toContain("locked");
    expect(logs.join("\n")).not.toMatch(/eyJ/);
    await session.close();
    await removeLock(proxy.ctx, admin, lock.metadata.name);
  });

  it("a renewal that fails for a while (no agent serves the app) is tried again, and does not end the session", async () => {
    const logs: string[] = [];
    const refusals: AzgateError[] = [];
    // A GitLab job's token, signed at the proxy's (moved) time: the emulated GitHub runner signs at the machine's.
    const idToken = await fx.emu.ci.gitlab.sign(gitlabClaims(), { audience: "bot-session", now: Math.floor(clock.now() / 1000) });
    const bot = await joinAsBot({ proxy: new URL(proxy.url).host, caPin: proxy.caPins[0], token: "deploy-gitlab", env: { GITLAB_CI: "true", AZGATE_ID_TOKEN: idToken }, clock });
    expect(bot.method).toBe("gitlab");
    const session = await openBotApp(bot, { app: "azure-cli", azureIdentity: READER, log: (l) => void logs.push(l), onRefused: (e) => refusals.push(e) });
    closers.push(() => session.close());
    serving = false;
    try {
      await clock.tick(14 * MINUTE);
      await expect.poll(() => logs.find((l) => /^renew/.test(l))).toMatch(/^renewing the bot's certificates failed: app "azure-cli" not found/);
    } finally {
      serving = true;
    }
    expect(refusals).toEqual([]);
    await clock.tick(31_000);
    await expect.poll(() => logs.filter((l) => /^renewed/.test(l)).length).toBe(1);
    expect(refusals).toEqual([]);
    await session.close();
  });
  it("--output-dir keeps the clients' files there, says what it wrote, and never writes a key or a token; without it they go with the session", async () => {
    const join = async () => {
      const idToken = await fx.emu.ci.gitlab.sign(gitlabClaims(), { audience: "bot-session", now: Math.floor(clock.now() / 1000) });
      return joinAsBot({ proxy: new URL(proxy.url).host, caPin: proxy.caPins[0], token: "deploy-gitlab", env: { GITLAB_CI: "true", AZGATE_ID_TOKEN: idToken }, clock });
    };
    const out = path.join(tempDir("azgate-bot-out-"), "azgate");
    const kept = await openBotApp(await join(), { app: "azure-cli", azureIdentity: READER, outputDir: out });
    expect(kept.dir).toBe(out);
    expect(kept.wrote).toEqual([expect.stringContaining(path.join(out, "localca.pem")), expect.stringContaining(path.join(out, "ca-bundle.pem")), expect.stringContaining(path.join(out, "azure"))]);
    await kept.close();
    const files = readdirSync(out, { recursive: true }).map((f) => path.join(out, String(f))).filter((f) => statSync(f).isFile());
    expect(files.map((f) => path.relative(out, f)).sort()).toEqual(["ca-bundle.pem", "localca.pem"]);
    for (const f of files) expect(readFileSync(f, "utf8")).not.toMatch(/PRIVATE KEY|eyJ[\w-]+\.eyJ/);

    const temporary = await openBotApp(await join(), { app: "azure-cli", azureIdentity: READER });
    expect(temporary.wrote).toEqual([]);
    expect(existsSync(path.join(temporary.dir, "localca.pem"))).toBe(true);
    await temporary.close();
    expect(existsSync(temporary.dir)).toBe(false);
  });
});
