/**
 * The agent's reverse tunnel: dial the proxy, heartbeat the apps, serve the
 * streams the proxy opens, and reconnect with jittered exponential backoff
 * when the proxy restarts, drains, or the network drops.
 */
import { AGENT_FEATURES } from "../azure/forwarding.ts";
import { AzgateError } from "../errors/index.ts";
import { isUntrustedTls } from "../api/client.ts";
import { importPrivateKeyPem } from "../pki/keys.ts";
import { dialTunnel, type TunnelSession, type TunnelStream } from "../tunnel/index.ts";
import { callControl, type ControlAnswer } from "../api/control.ts";
import { VERSION } from "../version.ts";
import type { AppSpec } from "../api/types.ts";
import type { Clock } from "../util/clock.ts";
import type { LogLine } from "../util/log.ts";

export interface ReverseTunnelOptions {
  baseUrl: string;
  /** CAs trusted besides the web PKI, as they are now: the cluster's host CAs (two while they rotate) and any TLS front's (agent.proxy_ca_file). */
  caPems: () => string[];
  /**
   * A dial's TLS handshake failed on the CAs trusted: the host CA rotated while this agent missed the trust
   * call (it was away). Learns what to trust from /v1/ping (api/trust.ts learnHostCas) or throws saying what to do.
   */
  onUntrustedTls?: () => Promise<void>;
  /** Current credentials (they change when the certificate is renewed). */
  credentials: () => { keyPem: string; certPem: string };
  hostName: string;
  apps: AppSpec[];
  tenantId?: string;
  onStream: (stream: TunnelStream) => void;
  log: LogLine;
  backoff?: { initialMs: number; maxMs: number };
  /** Called with errors that retrying cannot fix (the agent was removed, its certificate expired). */
  onFatal?: (e: AzgateError) => void;
  /** Each heartbeat's answer: which replica this tunnel reached, and every replica there is. */
  onHeartbeat?: (answer: HeartbeatAnswer, tunnel: ReverseTunnel) => void;
  /**
   * A cycle's new tunnel reached another replica than the one it replaces (a balancer chose): resolves once that
   * replica is served by another tunnel, so the old one drains only then (make before break, per replica).
   */
  beforeLeaving?: (replicaId: string) => Promise<void>;
  /** Dates the dial's proof. (Reconnect back-off and heartbeats pace I/O, on the runtime's timers.) */
  clock: Clock;
}

/** A heartbeat the proxy accepted (api/control.ts). */
export type HeartbeatAnswer = Extract<ControlAnswer<"heartbeat">, { ok: true }>;

/** Refusals that retrying will not fix. */
const FATAL = new Set(["cert_expired", "cert_untrusted", "ca_retired", "access_denied", "version_unsupported"]);

export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 20));
  // "Equal jitter": half fixed, half random, so agents that lost the same proxy do not return in lockstep.
  return ceiling / 2 + random() * (ceiling / 2);
}

export class ReverseTunnel {
  private session: TunnelSession | null = null;
  private stopped = false;
  private attempt = 0;
  private wake: (() => void) | null = null;
  private heartbeatTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set by cycle(): the loop dials a new tunnel before it lets this one go. */
  private cycleAsked: (() => void) | null = null;
  /** Completed connections, for status output and tests. */
  connections = 0;
  /** Waiting for a tunnel to be up (heartbeated): whenUp. */
  private upWaiters: (() => void)[] = [];
  /** The replica the current tunnel reached (from its heartbeat). */
  proxyId: string | null = null;

  constructor(private readonly opts: ReverseTunnelOptions) {}

  get baseUrl(): string {
    return this.opts.baseUrl;
  }

  get current(): TunnelSession | null {
    return this.session && !this.session.isClosed ? this.session : null;
  }

  start(): void {
    void this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.heartbeatTimer);
    this.wake?.();
    const s = this.session;
    if (s && !s.isClosed) await s.drain(5_000, "agent is shutting down");
  }

  /** Resolves true once a tunnel is up (dialled and heartbeated), false after `timeoutMs`. */
  whenUp(timeoutMs: number): Promise<boolean> {
    if (this.current && this.connections > 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.upWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  private isUp(): void {
    this.connections++;
    for (const w of this.upWaiters.splice(0)) w();
  }

  /**
   * Opens a new tunnel with the credentials of now (a certificate renewed under a rotated CA) and only then
   * drains this one: the proxy routes to the new tunnel before the old one stops taking requests.
   */
  cycle(): void {
    this.cycleAsked?.();
  }

  private async loop(): Promise<void> {
    const { initialMs, maxMs } = this.opts.backoff ?? { initialMs: 500, maxMs: 30_000 };
    let session: TunnelSession | null = null;
    while (!this.stopped) {
      try {
        if (!session) {
          session = await this.dial();
          this.session = session;
          await this.heartbeat(session);
          this.attempt = 0;
          this.isUp();
          this.opts.log(`tunnel to ${this.opts.baseUrl} is up (${this.opts.apps.map((a) => a.name).join(", ")})`);
        }
        const cycled = new Promise<"cycle">((r) => (this.cycleAsked = () => r("cycle")));
        const closed = await Promise.race([session.closed(), this.untilDraining(session), cycled]);
        this.cycleAsked = null;
        if (this.stopped) return;
        if (closed === "cycle") {
          // Make before break: the new tunnel heartbeats (the proxy registers it) before the old one drains.
          const old = session;
          const left = this.proxyId;
          const fresh = await this.dial();
          await this.heartbeat(fresh);
          session = this.session = fresh;
          this.isUp();
          this.opts.log(`tunnel to ${this.opts.baseUrl} reopened with the renewed certificate`);
          if (left && this.proxyId !== left) await this.opts.beforeLeaving?.(left);
          void old.drain(30_000, "the agent moved to a new tunnel");
          continue;
        }
        clearTimeout(this.heartbeatTimer);
        session = null;
        this.opts.log(`tunnel lost: ${typeof closed === "string" ? closed : closed.reason}; reconnecting`, "warn");
      } catch (e) {
        if (this.stopped) return;
        const err = e as AzgateError;
        if (FATAL.has(err.code)) {
          this.opts.log(`the proxy refused this agent: ${err.message}`, "error");
          this.opts.onFatal?.(err);
          return;
        }
        const delay = backoffDelay(this.attempt++, initialMs, maxMs);
        this.opts.log(`cannot reach the proxy (${err.message}); retrying in ${(delay / 1000).toFixed(1)}s`, "warn");
        await new Promise<void>((r) => {
          const t = setTimeout(r, delay);
          this.wake = () => {
            clearTimeout(t);
            r();
          };
        });
      }
    }
  }

  /** Resolves when the proxy announces a drain: the agent dials again while the old tunnel finishes its streams. */
  private untilDraining(session: TunnelSession): Promise<string> {
    return new Promise((resolve) => {
      const t = setInterval(() => {
        if (session.isClosed || session.isDraining) {
          clearInterval(t);
          resolve(session.isClosed ? "closed" : "the proxy is draining");
        }
      }, 200);
      void session.closed().then((c) => {
        clearInterval(t);
        resolve(c.reason);
      });
    });
  }

  private async dial(): Promise<TunnelSession> {
    const open = async () => {
      const { keyPem, certPem } = this.opts.credentials();
      return dialTunnel({
        baseUrl: this.opts.baseUrl,
        path: "/v1/tunnel/agent",
        caPems: this.opts.caPems(),
        key: await importPrivateKeyPem(keyPem),
        certPem,
        session: { name: "reverse tunnel", onStream: this.opts.onStream },
        clock: this.opts.clock,
      });
    };
    try {
      return await open();
    } catch (e) {
      // The proxy serves a certificate from a host CA this agent does not trust yet: learn it (or refuse, saying what to do), then dial again.
      if (!this.opts.onUntrustedTls || !isUntrustedTls(e)) throw e;
      await this.opts.onUntrustedTls();
      return open();
    }
  }

  private async heartbeat(session: TunnelSession): Promise<void> {
    const answer = await callControl(session, "heartbeat", {
      type: "heartbeat",
      host_name: this.opts.hostName,
      version: VERSION,
      features: AGENT_FEATURES,
      apps: this.opts.apps,
      ...(this.opts.tenantId ? { tenant_id: this.opts.tenantId } : {}),
    });
    if (!answer.ok) throw new AzgateError("bad_parameter", `the proxy refused the heartbeat: ${answer.message}`);
    this.proxyId = answer.proxy_id ?? null;
    this.opts.onHeartbeat?.(answer, this);
    const next = Math.max(1_000, answer.interval_ms ?? 10_000);
    clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = setTimeout(() => {
      if (session.isClosed || this.stopped) return;
      this.heartbeat(session).catch((e) => {
        this.opts.log(`heartbeat failed: ${(e as Error).message}; reconnecting`, "warn");
        session.close(6, "heartbeat failed");
      });
    }, next);
    (this.heartbeatTimer as { unref?: () => void }).unref?.();
  }
}
