/**
 * Tunnels to every proxy replica. The first goes to the address the agent
 * was given (usually a load balancer); each heartbeat answer lists the
 * replicas, and the pool dials each one it has no tunnel to at the address
 * the replica advertises. A replica that leaves the list (stopped, or dead
 * for 30 s) loses its tunnel; one that comes back gets a new one. With a
 * single proxy, or replicas that advertise nothing, this is one tunnel.
 */
import { proxyBaseUrl } from "../api/trust.ts";
import type { TunnelSession } from "../tunnel/index.ts";
import { ReverseTunnel, type HeartbeatAnswer, type ReverseTunnelOptions } from "./reverse-tunnel.ts";

export class TunnelPool {
  private readonly seed: ReverseTunnel;
  /** Direct tunnels by replica id. */
  private readonly direct = new Map<string, ReverseTunnel>();
  private stopped = false;

  constructor(private readonly opts: ReverseTunnelOptions) {
    this.seed = new ReverseTunnel({ ...opts, onHeartbeat: (a) => this.onHeartbeat(a), beforeLeaving: (id) => this.servedDirectly(id) });
  }

  start(): void {
    this.seed.start();
  }

  /** Every tunnel, the seed first. */
  get tunnels(): ReverseTunnel[] {
    return [this.seed, ...this.direct.values()];
  }

  /** An open tunnel, for control calls (certificate renewal) and readiness. */
  get current(): TunnelSession | null {
    for (const t of this.tunnels) if (t.current && !t.current.isDraining) return t.current;
    return this.seed.current;
  }

  /** Replica ids with an open tunnel. */
  connectedReplicas(): string[] {
    return [...new Set(this.tunnels.filter((t) => t.current && t.proxyId).map((t) => t.proxyId!))];
  }

  /** Every tunnel reopens with the credentials of now, each new one up before its old one drains (after a renewal under a rotated CA). */
  cycle(): void {
    for (const t of this.tunnels) t.cycle();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.tunnels.map((t) => t.stop()));
  }

  /**
   * The seed's new tunnel (through the balancer) reached another replica than its old one: the replica it leaves
   * got a direct tunnel in onHeartbeat; the old one drains once that is up (or after 15 s, when it cannot be reached).
   */
  private async servedDirectly(replicaId: string): Promise<void> {
    const direct = this.direct.get(replicaId);
    if (direct && !(await direct.whenUp(15_000))) this.opts.log(`proxy replica ${replicaId}: its direct tunnel is not up after 15s; the tunnel through ${this.opts.baseUrl} drains anyway`, "warn");
  }

  private onHeartbeat(answer: HeartbeatAnswer): void {
    if (this.stopped || !answer.peers) return;
    const listed = new Map(answer.peers.map((p) => [p.id, p.addr]));
    for (const [id, tunnel] of this.direct) {
      const gone = !listed.has(id);
      // The seed reconnected (through the balancer) to this very replica: one tunnel to it is enough.
      const doubled = this.seed.proxyId === id && this.seed.current !== null;
      if (gone || doubled) {
        this.direct.delete(id);
        void tunnel.stop();
        this.opts.log(gone ? `proxy replica ${id} is gone; its tunnel is closed` : `proxy replica ${id} is reached through ${this.opts.baseUrl} again; its direct tunnel is closed`);
      }
    }
    for (const [id, addr] of listed) {
      // The seed already reaches this replica (through the load balancer), or a direct tunnel exists.
      if (this.direct.has(id) || (this.seed.proxyId === id && this.seed.current)) continue;
      const tunnel = new ReverseTunnel({ ...this.opts, baseUrl: proxyBaseUrl(addr), onHeartbeat: (a) => this.onHeartbeat(a) });
      this.direct.set(id, tunnel);
      this.opts.log(`proxy replica ${id} at ${addr}: opening a tunnel`);
      tunnel.start();
    }
  }
}
