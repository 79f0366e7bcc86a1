/**
 * The address links name (invites, the web UI, notifications, the offline
 * admin path) when `proxy.public_addr` is not set: the machine's host name
 * when the proxy listens on every address (a container's: `docker run
 * --hostname`, a VM's name), localhost only when it listens on loopback
 * alone, where localhost is the truth. A host name azgate cannot use in a URL
 * falls back to localhost, said so by `from`.
 */
import { isLoopback } from "../net/connect-server.ts";

const WILDCARDS = new Set(["", "0.0.0.0", "::", "[::]"]);
/** A DNS name: labels of letters, digits and '-', not starting or ending with '-'. */
const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

export interface DefaultPublicHost {
  host: string;
  /** Where it came from: the machine's host name, or localhost. */
  from: "hostname" | "localhost";
}

export interface DefaultPublicUrl {
  url: string;
  from: DefaultPublicHost["from"];
}

/** The host links name (and the proxy's own certificate names too, so they verify). */
export function defaultPublicHost(listenHost: string, hostname: string): DefaultPublicHost {
  const everywhere = WILDCARDS.has(listenHost) && !isLoopback(listenHost);
  const name = hostname.toLowerCase();
  if (everywhere && DNS_NAME.test(name) && name !== "localhost" && !name.endsWith(".localhost")) return { host: name, from: "hostname" };
  return { host: "localhost", from: "localhost" };
}

export function defaultPublicUrl(listenHost: string, port: number, hostname: string): DefaultPublicUrl {
  const { host, from } = defaultPublicHost(listenHost, hostname);
  return { url: `https://${host}:${port}`, from };
}
