/**
 * Proxy replicas advertise themselves in the shared backend, so an agent that
 * reached one replica (through a load balancer) learns of all of them and
 * holds a tunnel to each: whichever replica a client lands on has a tunnel
 * to the agent. An advertisement lives 30 s and is refreshed every 10 s; a
 * replica that dies drops out within 30 s, one that stops cleanly at once.
 */
import type { ProxyContext } from "./context.ts";
import { KEYS } from "./keys.ts";
import type { Clock } from "../util/clock.ts";

export interface ProxyPeer {
  id: string;
  /** host:port agents dial to reach this replica itself. */
  addr: string;
  started: string;
}

const TTL_MS = 30_000;
const REFRESH_MS = 10_000;

export function advertise(ctx: ProxyContext, peer: ProxyPeer): { stop(): Promise<void> } {
  const write = () => ctx.backend.put<ProxyPeer>(KEYS.proxy(peer.id), peer, { expires: new Date(ctx.clock.now() + TTL_MS) });
  const first = write().catch((e) => console.error("[proxy] cannot advertise this replica:", (e as Error).message));
  const timer = ctx.clock.every(REFRESH_MS, () => void write().catch((e) => console.error("[proxy] cannot advertise this replica:", (e as Error).message))).unref();
  return {
    async stop() {
      timer.cancel();
      await first;
      await ctx.backend.delete(KEYS.proxy(peer.id)).catch(() => undefined);
    },
  };
}

export async function listPeers(ctx: ProxyContext): Promise<ProxyPeer[]> {
  return (await ctx.backend.list<ProxyPeer>(KEYS.proxies)).map((i) => i.value);
}

/** How long a peer list is kept at most; a change any replica makes to one drops it at once. */
export const PEERS_MAX_AGE_MS = 5_000;

/**
 * The peer list for heartbeat answers, listed once and kept until an
 * advertisement changes (the backend's watch, every replica's) or it is
 * PEERS_MAX_AGE_MS old: every agent heartbeats every 10 s, and listing the
 * backend for each was a directory read (a query on PostgreSQL) per heartbeat.
 */
export function cachedPeers(ctx: ProxyContext, clock: Clock = ctx.clock): { peers(): Promise<ProxyPeer[]>; close(): void } {
  const now = () => clock.now();
  let cached: { at: number; list: Promise<ProxyPeer[]> } | null = null;
  const unwatch = ctx.backend.watch(KEYS.proxies, () => (cached = null));
  return {
    peers() {
      if (!cached || now() - cached.at >= PEERS_MAX_AGE_MS) {
        const list = listPeers(ctx);
        cached = { at: now(), list };
        list.catch(() => (cached = null));
      }
      return cached.list;
    },
    close: unwatch,
  };
}
