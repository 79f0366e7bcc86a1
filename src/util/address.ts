/**
 * host:port, the one way: listen and dial addresses, CONNECT targets, and a
 * host put back into a URL. IPv6 literals travel in brackets.
 */
import { AzgateError } from "../errors/index.ts";

const HOST_PORT = /^(?:\[([^\]]+)\]|([^:\[\]\s]*))(?::(\d{1,5}))?$/;

/** "host:port", "[v6]:port" or "host" (then `defaultPort`). */
export function splitHostPort(addr: string, defaultPort: number): { host: string; port: number } {
  const m = HOST_PORT.exec(addr.trim());
  if (!m) throw new AzgateError("bad_parameter", `bad address "${addr}": use host:port`);
  return { host: m[1] ?? m[2], port: m[3] ? Number(m[3]) : defaultPort };
}

/** A CONNECT request's target: host and port both given; the host lower-cased (DNS names are case-insensitive). Null when malformed. */
export function connectTarget(value: string | undefined): { host: string; port: number } | null {
  const m = HOST_PORT.exec(value ?? "");
  if (!m || !m[3] || !(m[1] ?? m[2])) return null;
  return { host: (m[1] ?? m[2]).toLowerCase(), port: Number(m[3]) };
}

/** A host as it goes into a URL: IPv6 literals in brackets. */
export const urlHost = (host: string) => (host.includes(":") ? `[${host}]` : host);
