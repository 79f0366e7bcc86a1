/**
 * A whole cluster in this process: the proxy's real state (file backend,
 * audit log, CAs) and request path (handleAppRequest), agents running the
 * real forwarder against the emulator, and clients, all joined by in-memory
 * tunnel pairs. Users are made and logged in through the proxy's own
 * functions. Everything in it runs by one fake clock (test/helpers/fake-clock.ts)
 * that a test moves. A request costs a few
 * milliseconds, so the proxy's routing, authorisation, audit and failover can
 * be tested case by case; the spawned-process suites stay the safety net.
 */
import { openState, settingsFrom } from "../../src/proxy/state.ts";
import { configSchema } from "../../src/config/schema.ts";
import type { ProxyContext } from "../../src/proxy/context.ts";
import { AppRegistry, type AgentTunnel } from "../../src/proxy/registry.ts";
import { handleAppRequest } from "../../src/proxy/app-request.ts";
import { resolveCaller, type Caller } from "../../src/proxy/caller.ts";
import { addUser } from "../../src/proxy/admin.ts";
import { acceptInvite } from "../../src/proxy/users.ts";
import { login } from "../../src/proxy/login.ts";
import { issueAppCert } from "../../src/proxy/apps.ts";
import { parseResources } from "../../src/resources/parse.ts";
import { createResources } from "../../src/proxy/admin.ts";
import { identityOf } from "../../src/pki/certificate.ts";
import { x509 } from "../../src/pki/x509.ts";
import { caPin } from "../../src/pki/pin.ts";
import { generateKeyPair, publicKeyToPem } from "../../src/pki/keys.ts";
import type { Identity } from "../../src/pki/identity.ts";
import { memoryPair } from "../../src/tunnel/memory.ts";
import type { TunnelSession, TunnelStream } from "../../src/tunnel/index.ts";
import { tunnelRequest, type TunnelResponse } from "../../src/tunnel/http.ts";
import { signPlaceholder } from "../../src/azure/placeholder.ts";
import { forwardStream } from "../../src/agent/forward.ts";
import { isProxyCall, serveProxyStream } from "../../src/agent/streams.ts";
import { Outbound } from "../../src/agent/outbound.ts";
import { AzureTokenProvider } from "../../src/agent/tokens.ts";
import { identityHttpClient } from "../../src/agent/identity-http.ts";
import type { AppSpec } from "../../src/api/types.ts";
import { agentEnv } from "./cluster.ts";
import { tempDir } from "./azgate.ts";
import type { EmulatorFixture } from "./emulator.ts";
import { FakeClock } from "./fake-clock.ts";
import { startPostgres } from "./postgres.ts";

export interface MemoryAgent {
  id: string;
  tunnel: AgentTunnel;
  /** Streams this agent was given. */
  streams: number;
  /** Says "alive" to the registry now (on the registry's clock). */
  heartbeat(): void;
  /** Drops the agent's tunnel, as a pod that dies does. */
  kill(): void;
}

export interface MemoryApp {
  identity: Identity;
  /** The proxy's answer to apps login. */
  login: Awaited<ReturnType<typeof issueAppCert>>;
  session: TunnelSession;
  /** One request as the workstation's local proxy sends it, with a placeholder for `resource` (null: no Authorization). */
  request(url: string, opts?: { method?: string; body?: Uint8Array; resource?: string | null; headers?: [string, string][] }): Promise<TunnelResponse & { text: () => Promise<string> }>;
}

export interface MemoryCluster {
  ctx: ProxyContext;
  registry: AppRegistry;
  /** The cluster's one clock (proxy, backend, audit, registry, agents): `advance` moves it. */
  clock: FakeClock;
  admin: Caller;
  /** An agent; `holds: false` is one from before held requests (its heartbeat lists no features). */
  agent(opts?: { app?: string; labels?: Record<string, string>; holds?: boolean; onStream?: (s: TunnelStream, forward: () => Promise<void>) => void }): MemoryAgent;
  createRoles(yaml: string): Promise<void>;
  /** A user made, invited, signed up and logged in (the `azure_identities` trait from `traits`, none by default): the caller and its certificate's end. */
  signIn(user: string, roles: string[], traits?: Record<string, string[]>): Promise<{ caller: Caller; expires: Date }>;
  /**
   * A user made, invited, signed up and logged in; returns an app session for `azureIdentity`.
   * `beforeAppLogin` runs as the logged-in user before apps login (to request access, say).
   */
  appSession(user: string, roles: string[], azureIdentity: string, opts?: { traits?: Record<string, string[]>; app?: string; beforeAppLogin?: (caller: Caller) => Promise<void> }): Promise<MemoryApp>;
  /** An app session (apps login, then a tunnel) for a caller already signed in (or joined: a bot), whose certificate ends at `expires`. */
  /** `pinned`: the tunnel remembers its certificate's CA, as tunnels.ts does, so a rotation that retires it is checked. */
  appSessionAs(caller: Caller, expires: Date, azureIdentity: string, opts?: { app?: string; mfa?: { attempt: string; code: string; secret: string }; inMemory?: boolean; pinned?: boolean }): Promise<MemoryApp>;
  close(): Promise<void>;
}

/** `config`: more configuration (bots' issuer connect-to, say), over second_factor off. */
export async function startMemoryCluster(fx: EmulatorFixture, config_: Record<string, unknown> = {}): Promise<MemoryCluster> {
  const config = configSchema.parse({ ...config_, auth: { second_factor: "off" } });
  const clock = new FakeClock();
  const { ctx, close } = await openState(tempDir("azgate-mem-"), { clusterName: "memory", settings: settingsFrom(config), purpose: "memory cluster", storage: config.storage, clock });
  const registry = new AppRegistry(clock, 45_000);
  const admin = await resolveCaller(ctx, { kind: "local-admin", name: "@local-admin", roles: [], traits: {}, azure_identities: [], login_method: "local", session_id: ctx.localAdminSession });
  const outbound = new Outbound({ connectTo: { host: "127.0.0.1", port: fx.emu.httpsPort }, caPem: fx.emu.caPem });
  const tokens = new AzureTokenProvider({ env: agentEnv(fx), httpClient: identityHttpClient(outbound), clock });
  const sessions: TunnelSession[] = [];
  let agents = 0;

  const cluster: MemoryCluster = {
    ctx,
    registry,
    clock,
    admin,
    agent(opts = {}) {
      const id = `agent-${++agents}`;
      const app: AppSpec = { name: opts.app ?? "azure-cli", cloud: "Azure", uri: "cloud://Azure", labels: opts.labels ?? { env: "prod" } };
      const agent: MemoryAgent = {
        id,
        streams: 0,
        tunnel: null as unknown as AgentTunnel,
        heartbeat: () => registry.heartbeat(agent.tunnel, [app]),
        kill: () => pair.dialer.close(6, "agent killed"),
      };
      // The agent dials (dialer) and the proxy opens a stream per request on it, as over the real WebSocket.
      const pair = memoryPair({
        onStream: (s) => {
          // apps login asks the agent for the identity's facts, access requests for the identities it lists: answered as the agent does, not counted as requests.
          if (isProxyCall(s)) return void serveProxyStream({ outbound, tokens, clock }, s);
          agent.streams++;
          const forward = () => forwardStream({ outbound, tokens, clock }, s);
          if (opts.onStream) opts.onStream(s, forward);
          else void forward();
        },
      });
      sessions.push(pair.dialer, pair.acceptor);
      agent.tunnel = { id: crypto.randomUUID(), hostId: id, hostName: id, session: pair.acceptor, connectedAt: clock.now(), holds: opts.holds ?? true, listsIdentities: opts.holds ?? true };
      agent.heartbeat();
      return agent;
    },
    async createRoles(yaml) {
      await createResources(ctx, admin, parseResources(yaml, "test").resources, true);
    },
    async signIn(user, roles, traits = {}) {
      const { invite } = await addUser(ctx, admin, user, roles, traits);
      const password = `correct horse battery ${user}`;
      await acceptInvite(ctx, invite.token, { password });
      const userKey = await generateKeyPair();
      const loggedIn = await login(ctx, { user, password, public_key_pem: await publicKeyToPem(userKey.publicKey) });
      return { caller: await resolveCaller(ctx, loggedIn.identity), expires: new Date(loggedIn.expires) };
    },
    async appSession(user, roles, azureIdentity, opts = {}) {
      const { caller, expires } = await cluster.signIn(user, roles, opts.traits ?? { azure_identities: [azureIdentity] });
      await opts.beforeAppLogin?.(caller);
      return cluster.appSessionAs(caller, expires, azureIdentity, opts);
    },
    async appSessionAs(caller, expires, azureIdentity, opts = {}) {
      const appKey = await generateKeyPair();
      const appCert = await issueAppCert(ctx, registry, caller, expires, { app: opts.app ?? "azure-cli", azure_identity: azureIdentity, public_key_pem: await publicKeyToPem(appKey.publicKey), ...(opts.mfa ? { mfa: opts.mfa } : {}), in_memory: opts.inMemory });
      const cert = new x509.X509Certificate(appCert.cert_pem);
      const identity = identityOf(cert);
      const clientKey = (await crypto.subtle.exportKey("jwk", appKey.publicKey)) as JsonWebKey;
      // The user CA signing now issued it (issueAppCert, just above).
      const issuerPin = opts.pinned ? await caPin(ctx.cluster.user.cert) : undefined;
      const pair = memoryPair({}, { onStream: (s) => void handleAppRequest(ctx, registry, { identity, clientKey, ...(issuerPin ? { issuerPin } : {}) }, s) });
      sessions.push(pair.dialer, pair.acceptor);
      return {
        identity,
        login: appCert,
        session: pair.dialer,
        async request(url, o = {}) {
          const headers: [string, string][] = [...(o.headers ?? [])];
          const resource = o.resource === undefined ? "https://management.core.windows.net/" : o.resource;
          if (resource !== null) headers.push(["authorization", `Bearer ${await signPlaceholder(appKey.privateKey, { tid: "t", resource, identity: azureIdentity, now: clock.date(), expires: cert.notAfter })}`]);
          const res = await tunnelRequest(pair.dialer, { method: o.method ?? "GET", url, headers }, o.body);
          return { ...res, text: async () => new TextDecoder().decode(await new Response(res.body).arrayBuffer()) };
        },
      };
    },
    async close() {
      for (const s of sessions) s.close(0, "closing");
      outbound.close();
      await close();
    },
  };
  return cluster;
}

/**
 * Two replicas of one cluster (A and B) on a PostgreSQL server of their own,
 * database `database`, each with an agent: what one writes, the other reads.
 */
export async function memoryReplicas(fx: EmulatorFixture, database: string): Promise<{ a: MemoryCluster; b: MemoryCluster; conn: string; close(): Promise<void> }> {
  const server = await startPostgres();
  const conn = await server.database(database);
  const a = await startMemoryCluster(fx, { storage: { type: "postgres", conn_string: conn } });
  const b = await startMemoryCluster(fx, { storage: { type: "postgres", conn_string: conn } });
  a.agent();
  b.agent();
  return { a, b, conn, close: async () => (await b.close(), await a.close(), await server.stop()) };
}
