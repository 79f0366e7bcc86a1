import type { TunnelSession } from "../tunnel/index.ts";
import type { AppSpec } from "../api/types.ts";
import type { Clock } from "../util/clock.ts";

/** One agent's tunnel to this proxy. */
export interface AgentTunnel {
  id: string;
  hostId: string;
  hostName: string;
  session: TunnelSession;
  connectedAt: number;
  /** The agent waits for the proxy's RELEASE before it forwards a held request (its heartbeat says so). */
  holds?: boolean;
  /** The agent answers identity_list (its heartbeat says so): it can list the identities it reads in ARM. */
  listsIdentities?: boolean;
}

export interface AppServer {
  app: AppSpec;
  tunnel: AgentTunnel;
  lastSeen: number;
}

/**
 * The proxy's registry of app servers, fed by agent heartbeats. A server is
 * live while its tunnel is open and it heartbeated within `ttlMs`; streams are
 * spread over live servers, least busy first, rotating among equals. The
 * registry decides nothing: callers filter servers by the caller's roles.
 */
export class AppRegistry {
  private readonly byTunnel = new Map<string, AppServer[]>();
  private rotation = 0;
  /** What each agent listed of its Azure identities, kept until `until` (proxy/known-identities.ts); dropped with its tunnel. */
  readonly identityLists = new Map<string, { until: number; list: Promise<{ identities: string[]; truncated: boolean }> }>();

  constructor(
    /** Judges heartbeats: a server is live within `ttlMs` of its last one. */
    private readonly clock: Clock,
    private readonly ttlMs = 45_000,
  ) {}

  heartbeat(tunnel: AgentTunnel, apps: AppSpec[]): void {
    const seen = this.clock.now();
    this.byTunnel.set(
      tunnel.id,
      apps.map((app) => ({ app, tunnel, lastSeen: seen })),
    );
  }

  removeTunnel(tunnelId: string): void {
    this.byTunnel.delete(tunnelId);
    this.identityLists.delete(tunnelId);
  }

  private live(): AppServer[] {
    const cutoff = this.clock.now() - this.ttlMs;
    const out: AppServer[] = [];
    for (const [id, servers] of this.byTunnel) {
      const session = servers[0]?.tunnel.session;
      if (!session || session.isClosed || servers[0].lastSeen < cutoff) {
        this.byTunnel.delete(id);
        this.identityLists.delete(id);
        continue;
      }
      out.push(...servers);
    }
    return out;
  }

  /**
   * Live servers for `appName` that can take a stream now and that `accept`
   * lets through (the caller's roles, on each server's own labels), in the
   * order to try them.
   */
  servers(appName: string, accept: (s: AppServer) => boolean = () => true): AppServer[] {
    const candidates = this.live().filter((s) => s.app.name === appName && !s.tunnel.session.isDraining && accept(s));
    if (candidates.length < 2) return candidates;
    const start = this.rotation++ % candidates.length;
    const rotated = [...candidates.slice(start), ...candidates.slice(0, start)];
    return rotated.sort((a, b) => a.tunnel.session.openStreams - b.tunnel.session.openStreams);
  }

  /**
   * Every live server (of `appName`, when given), busy or draining too. Each
   * keeps its own labels: two agents announcing one app name are two servers,
   * and access is decided per server.
   */
  all(appName?: string): AppServer[] {
    return this.live().filter((s) => appName === undefined || s.app.name === appName);
  }

  get tunnels(): number {
    return this.byTunnel.size;
  }
}

/** The app specs (labels) of the servers of an app this replica knows now: what an access request is judged against. */
export const servedApps = (registry: AppRegistry) => (app: string): AppSpec[] => registry.all(app).map((s) => s.app);
