/**
 * Agent mode: join (or reuse the stored identity), open the reverse tunnel,
 * forward Azure requests, and renew the host certificate before it expires.
 */
import { startTracing } from "../tracing/index.ts";
import os from "node:os";
import path from "node:path";
import { readFileSync } from "node:fs";
import { x509 } from "../pki/x509.ts";
import { AzgateError } from "../errors/index.ts";
import { acquireDirLock, ensureDir, type RunningServer } from "../runtime/index.ts";
import { serveDiag } from "../health/probes.ts";
import { loopbackUrl } from "../health/probe-record.ts";
import { agentMetrics } from "../metrics/agent.ts";
import { proxyBaseUrl } from "../api/trust.ts";
import { splitHostPort } from "../util/address.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../pki/keys.ts";
import { callControl } from "../api/control.ts";
import type { AppSpec, HostCertificate } from "../api/types.ts";
import { serveProxyStream } from "./streams.ts";
import { ensureJoined } from "./join.ts";
import { saveAgentState, trustedHostCas, type AgentState } from "./state.ts";
import { agentTrust } from "./rotation.ts";
import { Outbound } from "./outbound.ts";
import { identityHttpClient } from "./identity-http.ts";
import { AzureTokenProvider } from "./tokens.ts";
import { TunnelPool } from "./tunnel-pool.ts";
import type { Clock, Timer } from "../util/clock.ts";
import { levelled, type LogLevel, type LogLine } from "../util/log.ts";
import { isGuid } from "../azure/guid.ts";

export interface AgentConfig {
  dataDir: string;
  proxyAddr: string;
  token?: string;
  caPin?: string | string[];
  /** CAs of a TLS front before the proxy (agent.proxy_ca_file). */
  proxyCaPems?: string[];
  apps: AppSpec[];
  hostName?: string;
  /** Send all Azure connections to this host:port (the emulator), trusting `caFile`. */
  connectTo?: { address: string; caFile?: string };
  env?: Record<string, string | undefined>;
  /** Where the agent's lines go (each with its level); stdout when not given. */
  log?: LogLine;
  /** The lowest level written (agent.log_level): info when not given. */
  logLevel?: LogLevel;
  backoff?: { initialMs: number; maxMs: number };
  /** host:port for /healthz and /readyz (ready while the tunnel to the proxy is up). */
  diagAddr?: string;
  /** Judges the stored certificate and times its renewal (util/clock.ts). */
  clock: Clock;
  /** Where the agent's spans go (an OTLP/HTTP .../v1/traces URL: tracing/); none when not given. */
  tracingUrl?: string;
}

export interface RunningAgent {
  hostId: string;
  clusterName: string;
  tunnel: TunnelPool;
  tokens: AzureTokenProvider;
  /** Resolves when the agent stops by itself (a fatal refusal). */
  stopped: Promise<AzgateError | null>;
  /** The probes' port, when diagAddr was given. */
  diagPort?: number;
  /** Its readiness URL on loopback: the diagnostics port's, or a probe-only loopback port's when that cannot be reached there. */
  probeUrl: string;
  close(): Promise<void>;
}

/**
 * The tenant the agent announces in its heartbeats (AZURE_TENANT_ID, as the
 * Workload ID webhook sets it): a GUID or nothing. It reaches workstations'
 * shell exports, so anything else is refused at start, not passed on.
 */
export function agentTenant(env: Record<string, string | undefined>): string | undefined {
  const tenant = env.AZURE_TENANT_ID;
  if (tenant === undefined || tenant === "") return undefined;
  if (!isGuid(tenant)) throw new AzgateError("config_invalid", `AZURE_TENANT_ID must be the Entra tenant's ID, a GUID (like 72f988bf-86f1-41af-91ab-2d7cd011db47), not ${JSON.stringify(tenant.slice(0, 80))}`);
  return tenant;
}

export async function startAgent(cfg: AgentConfig): Promise<RunningAgent> {
  const log = levelled(cfg.logLevel ?? "info", cfg.log ?? ((line, level) => console.log(`[agent] ${level === "info" ? "" : `${level.toUpperCase()} `}${line}`)));
  const tenantId = agentTenant(cfg.env ?? process.env);
  await ensureDir(cfg.dataDir, 0o700);
  const lock = await acquireDirLock(cfg.dataDir, "azgate agent");
  try {
    let state = await ensureJoined({ dataDir: cfg.dataDir, proxyAddr: cfg.proxyAddr, token: cfg.token, caPin: cfg.caPin, proxyCaPems: cfg.proxyCaPems, hostName: cfg.hostName, clock: cfg.clock });
    let connectTo: { host: string; port: number } | undefined;
    let caPem: string | undefined;
    if (cfg.connectTo) {
      const hp = splitHostPort(cfg.connectTo.address, 443);
      connectTo = { host: hp.host, port: hp.port };
      if (cfg.connectTo.caFile) {
        try {
          caPem = readFileSync(path.resolve(cfg.connectTo.caFile), "utf8");
        } catch (e) {
          throw new AzgateError("config_invalid", `agent.connect_to.ca_file: cannot read ${cfg.connectTo.caFile}: ${(e as Error).message}`);
        }
      }
    }
    const outbound = new Outbound({ connectTo, caPem });
    const tracing = await startTracing("azgate-agent", cfg.tracingUrl);
    const metrics = agentMetrics();
    const clouds = new Set(cfg.apps.map((a) => a.cloud));
    if (clouds.size > 1) throw new AzgateError("config_invalid", `agent.apps: all apps of one agent must name the same cloud (they name ${[...clouds].join(", ")}); run an agent per cloud`);
    const tokens = new AzureTokenProvider({
      clock: cfg.clock,
      env: cfg.env ?? process.env,
      cloud: cfg.apps[0]?.cloud,
      httpClient: identityHttpClient(outbound),
      observe: {
        lookup: (hit) => metrics.tokenLookups.inc({ result: hit ? "hit" : "miss" }),
        fetched: (seconds, ok) => metrics.tokenFetch.observe({ outcome: ok ? "ok" : "error" }, seconds),
      },
    });
    let fatal: (e: AzgateError | null) => void = () => undefined;
    const stopped = new Promise<AzgateError | null>((r) => (fatal = r));
    // A rotation of the host CA, followed over the tunnel (agent/rotation.ts).
    const trust = agentTrust({
      dataDir: cfg.dataDir,
      proxyAddr: cfg.proxyAddr,
      pins: cfg.caPin ? [cfg.caPin].flat() : undefined,
      proxyCaPems: cfg.proxyCaPems,
      state: () => state,
      setState: (s) => (state = s),
      renew: async () => {
        await renew();
        tunnel.cycle();
      },
      log,
      clock: cfg.clock,
    });
    const tunnel = new TunnelPool({
      baseUrl: proxyBaseUrl(cfg.proxyAddr),
      caPems: () => [...trustedHostCas(state.identity), ...(cfg.proxyCaPems ?? [])],
      onUntrustedTls: () => trust.learn(),
      credentials: () => state,
      hostName: cfg.hostName ?? os.hostname(),
      apps: cfg.apps,
      tenantId,
      log,
      backoff: cfg.backoff,
      onStream: (stream) => {
        if (stream.meta.type === "trust") return void trust.answer(stream);
        void serveProxyStream({ outbound, tokens, log, clock: cfg.clock, tracing }, stream).catch((e) => {
          log(`stream failed: ${(e as Error).message}`, "warn");
          stream.reset(2, "agent error");
        });
      },
      onFatal: (e) => fatal(e),
      clock: cfg.clock,
    });
    tunnel.start();

    // Renew at two thirds of the certificate's life, over the tunnel; at once when a rotation asks (agentTrust).
    let renewTimer: Timer | undefined;
    const scheduleRenewal = () => {
      renewTimer?.cancel();
      const cert = new x509.X509Certificate(state.certPem);
      // notBefore is back-dated a minute for clock skew; the useful life starts after that.
      const life = cert.notAfter.getTime() - cert.notBefore.getTime() - 60_000;
      const at = cert.notAfter.getTime() - life / 3;
      renewTimer = cfg.clock.after(Math.max(at - cfg.clock.now(), 1_000), () => void renew().catch(() => undefined)).unref();
    };
    /** One renewal; a failure is retried in 10 s (and rethrown to a caller that waits on it). */
    const renew = async () => {
      try {
        const session = tunnel.current;
        if (!session) throw new Error("no tunnel");
        const keys = await generateKeyPair();
        const res = await callControl(session, "renew", { type: "renew", public_key_pem: await publicKeyToPem(keys.publicKey) });
        if (!res.ok) throw new Error(res.message);
        const next: AgentState = { ...state, keyPem: await privateKeyToPem(keys.privateKey), certPem: res.cert_pem };
        await saveAgentState(cfg.dataDir, next);
        state = next;
        log(`host certificate renewed; valid until ${res.expires}`);
        scheduleRenewal();
      } catch (e) {
        log(`certificate renewal failed (${(e as Error).message}); retrying in 10s`, "warn");
        renewTimer?.cancel();
        renewTimer = cfg.clock.after(10_000, () => void renew().catch(() => undefined)).unref();
        throw e;
      }
    };
    scheduleRenewal();

    const readiness = () => {
      const s = tunnel.current;
      return s && !s.isDraining ? ({ ready: true } as const) : ({ ready: false, reason: "no tunnel to the proxy" } as const);
    };
    let probes: RunningServer | undefined;
    let probeUrl: string | null = null;
    if (cfg.diagAddr) {
      const hp = splitHostPort(cfg.diagAddr, 3000);
      probes = await serveDiag(hp.host, hp.port, readiness, async () => ({ contentType: metrics.registry.contentType, text: await metrics.registry.metrics() }));
      probeUrl = loopbackUrl("http", hp.host, probes.port, "/readyz");
    }
    // No diagnostics port this machine reaches on loopback: the probes alone (no metrics) on a loopback port of
    // their own, so the container's HEALTHCHECK (azgate healthcheck, health/probe-record.ts) can ask an agent too.
    let loopbackProbes: RunningServer | undefined;
    if (!probeUrl) {
      loopbackProbes = await serveDiag("127.0.0.1", 0, readiness);
      probeUrl = loopbackUrl("http", "127.0.0.1", loopbackProbes.port, "/readyz")!;
    }

    return {
      diagPort: probes?.port,
      probeUrl,
      hostId: state.identity.host_id,
      clusterName: state.identity.cluster_name,
      tunnel,
      tokens,
      stopped,
      close: async () => {
        renewTimer?.cancel();
        trust.stop();
        await probes?.close();
        await loopbackProbes?.close();
        await tunnel.stop();
        outbound.close();
        await tracing.shutdown();
        fatal(null);
        await lock.release();
      },
    };
  } catch (e) {
    await lock.release();
    throw e;
  }
}
