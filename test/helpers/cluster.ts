/**
 * A real cluster for tests: a proxy process, agent processes using Workload ID
 * against the emulator, and users and app sessions created through the
 * proxy's real API (in this process, to keep tests fast; the CLI paths have
 * their own tests).
 */
import { systemClock } from "../../src/util/clock.ts";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { saveProfile } from "../../src/client/profile.ts";
import { ApiClient, trustedCas, type ApiTarget } from "../../src/api/client.ts";
import { readLocalAdmin } from "../../src/proxy/local-admin.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../../src/pki/keys.ts";
import { dialTunnel, type TunnelSession } from "../../src/tunnel/index.ts";
import { signPlaceholder } from "../../src/azure/placeholder.ts";
import { tunnelRequest, type TunnelResponse } from "../../src/tunnel/http.ts";
import { azgateCommand, startProxyProcess, tempDir, type ProxyProcess } from "./azgate.ts";
import type { EmulatorFixture } from "./emulator.ts";

export const SUB = "00000000-0000-0000-0000-000000000000";
export const IDENTITY = (name: string) => `/subscriptions/${SUB}/resourceGroups/myResourceGroup/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name}`;
export const AGENT_CLIENT_ID = "00000000-0000-0000-0000-000000000001";

export interface AgentProcess {
  child: ChildProcess;
  dataDir: string;
  output: () => string;
  /** Resolves when the agent logged `pattern` (after `from` characters of output). */
  waitFor(pattern: RegExp, timeoutMs?: number, from?: number): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function agentEnv(fx: EmulatorFixture, clientId = AGENT_CLIENT_ID): Record<string, string> {
  return {
    AZURE_CLIENT_ID: clientId,
    AZURE_TENANT_ID: fx.emu.world.tenant_id,
    AZURE_FEDERATED_TOKEN_FILE: fx.tokenFile,
    AZURE_AUTHORITY_HOST: "https://login.microsoftonline.com/",
  };
}

/** Runs `azgate start --mode agent`, pointed at the emulator with --azure-connect-to. */
export function spawnAgent(opts: { proxy: ProxyProcess; fx: EmulatorFixture; token?: string; dataDir?: string; args?: string[]; env?: Record<string, string>; app?: string; labels?: string }): AgentProcess {
  const dataDir = opts.dataDir ?? tempDir("azgate-agent-");
  const args = [
    "start", "--mode", "agent", "--proxy", opts.proxy.addr, "--ca-pin", opts.proxy.pin, "--data-dir", dataDir,
    "--app", opts.app ?? "azure-cli", "--labels", opts.labels ?? "env=prod",
    "--azure-connect-to", `127.0.0.1:${opts.fx.emu.httpsPort}`, "--azure-ca-file", opts.fx.emu.caFile,
    ...(opts.token ? ["--token", opts.token] : []),
    ...(opts.args ?? []),
  ];
  const [cmd, argv] = azgateCommand(args);
  const child = spawn(cmd, argv, { env: { ...process.env, ...agentEnv(opts.fx), ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d;
    for (const l of listeners) l();
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  return {
    child,
    dataDir,
    output: () => out,
    waitFor(pattern, timeoutMs = 30_000, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (pattern.test(out.slice(from))) {
            cleanup();
            resolve();
          } else if (child.exitCode !== null) {
            cleanup();
            reject(new Error(`agent exited (${child.exitCode}) before ${pattern}:\n${out}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`agent did not log ${pattern} within ${timeoutMs} ms:\n${out}`));
        }, timeoutMs);
        const onExit = () => check();
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
          child.off("exit", onExit);
        };
        listeners.add(check);
        child.on("exit", onExit);
        check();
      });
    },
    stop(signal = "SIGTERM") {
      return new Promise((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done(child.exitCode);
        child.once("exit", (code) => done(code));
        child.kill(signal);
      });
    },
  };
}

export interface TestCluster {
  proxy: ProxyProcess;
  target: ApiTarget;
  admin: ApiClient;
  home: string;
  joinToken(opts?: { ttl?: string; uses?: number }): Promise<string>;
  /** Creates a user with roles (and azure_identities trait) and logs in; returns its API client. */
  /** A user, logged in; `ttlMs` shortens the login certificate (and so every app certificate). */
  user(name: string, roles: string[], azureIdentities?: string[], opts?: { ttlMs?: number }): Promise<UserSession>;
  stop(): Promise<void>;
}

export interface UserSession {
  name: string;
  api: ApiClient;
  keyPem: string;
  certPem: string;
  /** An app certificate and a tunnel session to the proxy, as `apps login` and the local proxy will use them. */
  appSession(app: string, identity: string): Promise<AppSession>;
}

export interface AppSession {
  key: CryptoKeyPair;
  certPem: string;
  expires: Date;
  tunnel: TunnelSession;
  placeholder(resource: string, opts?: { identity?: string; expires?: Date; key?: CryptoKey }): Promise<string>;
  request(url: string, opts?: { method?: string; headers?: [string, string][]; body?: Uint8Array | ReadableStream<Uint8Array>; resource?: string | null }): Promise<TunnelResponse>;
  /** A new tunnel with the same app certificate, as the local proxy dials again after its tunnel was closed. */
  redial(): Promise<void>;
  close(): void;
}

export async function startCluster(opts: { args?: string[]; clusterName?: string; env?: Record<string, string>; port?: number } = {}): Promise<TestCluster> {
  const home = tempDir("azgate-home-");
  const proxy = await startProxyProcess({ dataDir: tempDir("azgate-proxy-"), home, clusterName: opts.clusterName, env: opts.env, port: opts.port, args: [...(opts.args?.includes("--second-factor") ? [] : ["--second-factor", "off"]), ...(opts.args ?? [])] });
  const local = await readLocalAdmin(proxy.dataDir);
  if (!local) throw new Error("no local admin credentials");
  const target: ApiTarget = { baseUrl: `https://127.0.0.1:${proxy.port}`, ca_pem: local.ca_pem };
  const admin = new ApiClient(target, { keyPem: local.key_pem, certPem: local.cert_pem });
  const cluster: TestCluster = {
    proxy,
    target,
    admin,
    home,
    async joinToken(o = {}) {
      return (await admin.call<{ token: string }>("POST", "/v1/admin/tokens", { type: "app", ttl: o.ttl ?? "1h", uses: o.uses })).token;
    },
    async user(name, roles, azureIdentities = [], opts = {}) {
      const { invite_token } = await admin.call<{ invite_token: string }>("POST", "/v1/admin/users", { name, roles, traits: { azure_identities: azureIdentities } });
      const password = `correct horse battery ${name}`;
      await new ApiClient(target).call("POST", `/v1/invites/${invite_token}/accept`, { password });
      const keys = await generateKeyPair();
      const login = await new ApiClient(target).call<{ cert_pem: string }>("POST", "/v1/auth/login", { user: name, password, public_key_pem: await publicKeyToPem(keys.publicKey), ttl_ms: opts.ttlMs });
      const keyPem = await privateKeyToPem(keys.privateKey);
      const api = new ApiClient(target, { keyPem, certPem: login.cert_pem });
      return {
        name,
        api,
        keyPem,
        certPem: login.cert_pem,
        appSession: (app, identity) => openAppSession(target, api, app, identity),
      };
    },
    // Stops the proxy the test left running, which is a new process when a test restarted it.
    async stop() {
      await proxy.stop();
      await cluster.proxy.stop();
    },
  };
  return cluster;
}

export async function openAppSession(target: ApiTarget, api: ApiClient, app: string, identity: string): Promise<AppSession> {
  const key = await generateKeyPair();
  const res = await api.call<{ cert_pem: string; expires: string }>("POST", "/v1/apps/login", { app, azure_identity: identity, public_key_pem: await publicKeyToPem(key.publicKey) });
  const dial = () => dialTunnel({ baseUrl: target.baseUrl, path: "/v1/tunnel/client", caPems: trustedCas(target), key: key.privateKey, certPem: res.cert_pem, session: {}, clock: systemClock });
  const expires = new Date(res.expires);
  // One placeholder per resource, reused until it expires, as az and the SDKs do.
  const reused = new Map<string, Promise<string>>();
  const session: AppSession = {
    key,
    certPem: res.cert_pem,
    expires,
    tunnel: await dial(),
    placeholder: (resource, o = {}) =>
      signPlaceholder(o.key ?? key.privateKey, { tid: "aaaaaaaa-0000-4000-8000-000000000001", resource, identity: o.identity ?? identity, now: new Date(), expires: o.expires ?? expires }),
    async request(url, o = {}) {
      const headers: [string, string][] = [...(o.headers ?? [])];
      const resource = o.resource === undefined ? "https://management.core.windows.net/" : o.resource;
      if (resource !== null && !headers.some(([k]) => k.toLowerCase() === "authorization")) {
        if (!reused.has(resource)) reused.set(resource, session.placeholder(resource));
        headers.push(["authorization", `Bearer ${await reused.get(resource)}`]);
      }
      return tunnelRequest(session.tunnel, { method: o.method ?? "GET", url, headers }, o.body);
    },
    async redial() {
      session.tunnel.close();
      session.tunnel = await dial();
    },
    close: () => session.tunnel.close(),
  };
  return session;
}

/** The whole body; a reset stream rejects with its StreamResetError (not a wrapper). */
export async function readBytes(res: TunnelResponse): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/** The whole body as text (see readBytes). */
export async function readBody(res: TunnelResponse): Promise<string> {
  return (await readBytes(res)).toString("utf8");
}

export const ROOT = path.resolve(import.meta.dirname, "../..");

export const SEED_DIR = path.resolve(import.meta.dirname, "../fixtures/seed");

/**
 * What the workstation tests start from: a proxy, one agent (Workload ID
 * against the emulator) with its tunnel up, and the seed guide's role files.
 */
export async function startClusterWithAgent(fx: EmulatorFixture, seedRoles = ["azure-cli-access-internal.yaml"]): Promise<{ cluster: TestCluster; agent: AgentProcess }> {
  const cluster = await startCluster();
  const agent = spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken() });
  await agent.waitFor(/tunnel to .* is up/);
  for (const file of seedRoles) await cluster.admin.call("POST", "/v1/admin/resources", { text: readFileSync(path.join(SEED_DIR, file), "utf8") });
  return { cluster, agent };
}

/** An azgate home logged in as `user` on `cluster` (a workstation of its own). */
export async function workstationHome(cluster: TestCluster, user: UserSession): Promise<string> {
  const home = tempDir("azgate-home-");
  await saveProfile({ proxy: cluster.proxy.addr, user: user.name, cluster: "e2e", ca_pem: cluster.target.ca_pem }, user.keyPem, user.certPem, home);
  return home;
}
