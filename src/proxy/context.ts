import type { Backend } from "../storage/backend.ts";
import type { AuditSink } from "../audit/sink.ts";
import type { ClusterAuthorities } from "./cluster.ts";
import type { ReplayCache } from "../auth/replay-cache.ts";

import type { ProxyMetrics } from "../metrics/proxy.ts";
import type { Clock } from "../util/clock.ts";
import type { Tracing } from "../tracing/index.ts";
import type { SecondFactor } from "../api/types.ts";

export interface AuthSettings {
  secondFactor: SecondFactor;
  /** auth.require_session_mfa: every app session needs a fresh passkey check. */
  requireSessionMfa: boolean;
  /** Failures within `windowMs` that lock the user for `lockMs`. */
  lockout: { maxAttempts: number; windowMs: number; lockMs: number };
  inviteTtlMs: number;
  /** Lifetime of agent (host) certificates; agents renew at two thirds of it. */
  hostCertTtlMs: number;
  /** audit.retention as written (90d), and in ms: events older are deleted (proxy/audit-retention.ts); unset, kept forever. */
  auditRetention?: { text: string; ms: number };
  /** From `login --auth` to certificate pickup: longer and the attempt is refused. */
  ssoLoginTimeoutMs: number;
  /** Fronts (CIDRs) whose X-Forwarded-For names the caller, for rate limits and audit (proxy.trusted_proxies). */
  trustedProxies: string[];
  /** Bots (config `bots`): their certificates' life and how the proxy reaches CI issuers. */
  bots: BotSettings;
}

export interface BotSettings {
  /** A bot certificate's life (at most an hour). */
  certTtlMs: number;
  /** The audience CI tokens must name, when not the cluster's name. */
  audience?: string;
  /** CAs trusted for issuers besides the web PKI (PEM). */
  issuerCas: string[];
  /** Every issuer connection to this address (the emulator), names kept. */
  connectTo?: { host: string; port: number };
}

/** What every proxy service needs; built once at start and passed down. */
export interface ProxyContext {
  /** The one clock every service decides by (util/clock.ts); the backend and the audit log were opened with it. */
  clock: Clock;
  backend: Backend;
  audit: AuditSink;
  /** The CAs as their rotation's phase makes them now, followed on every replica (cluster.ts followAuthorities). */
  cluster: ClusterAuthorities;
  /** Reads the authorities again now (the replica that moved a rotation does not wait for its watch). */
  reloadAuthorities: () => Promise<void>;
  settings: AuthSettings;
  replay: ReplayCache;
  metrics: ProxyMetrics;
  /** Spans of each Azure request (tracing/): the proxy's, exported when tracing.endpoint is set; NO_TRACING otherwise. */
  tracing: Tracing;
  /** The session id of this process's local admin identity; no other is accepted. */
  localAdminSession: string;
}
