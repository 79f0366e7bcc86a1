/**
 * Who is calling, when the proxy stands behind an Ingress or load balancer:
 * the socket's address is the front's, so the caller is read from
 * X-Forwarded-For, but only through fronts the operator named
 * (proxy.trusted_proxies). Walking the header from the right and skipping
 * those fronts gives the first address no trusted front vouches for; what a
 * client wrote into the header itself sits further left and is never used.
 * Rate limits and audit events use the result.
 */
import type { Context, MiddlewareHandler } from "hono";
import { inCidrs } from "../net/address-policy.ts";

export function clientAddress(socketAddr: string, forwardedFor: string | undefined, trusted: readonly string[]): string {
  if (!trusted.length || !forwardedFor || !inCidrs(socketAddr, trusted)) return socketAddr;
  const hops = forwardedFor.split(",").map((h) => h.trim()).filter(Boolean).slice(-32);
  for (let i = hops.length - 1; i >= 0; i--) if (!inCidrs(hops[i], trusted)) return hops[i];
  return hops[0] ?? socketAddr;
}

export type ClientAddressEnv = { Variables: { clientAddr: string } };

/** The address of the socket a request came in on (the node-server adapter's, on both runtimes). */
export function socketAddress(c: Context): string {
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
  return env?.incoming?.socket?.remoteAddress ?? "unknown";
}

/** Sets `clientAddr` on every request, once, for `remoteAddr(c)` to read. */
export function clientAddressMiddleware(trusted: readonly string[]): MiddlewareHandler<ClientAddressEnv> {
  return async (c, next) => {
    c.set("clientAddr", clientAddress(socketAddress(c), c.req.header("x-forwarded-for"), trusted));
    await next();
  };
}
