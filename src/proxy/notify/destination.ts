/**
 * Where the proxy may send a notification. A target's URL or SMTP host is
 * written by whoever may create notification targets, and the proxy posts
 * from inside the network: to a loopback, link-local (IMDS), private or
 * other special address (net/address-policy.ts, the agent's own policy) it
 * sends only when the operator says so (`notifications.allow_private_addresses`
 * in the proxy's configuration). The name is resolved once and the checked
 * address is the one connected to, so a second DNS answer cannot swap in
 * another.
 */
import dns from "node:dns";
import { forbiddenAddressReason } from "../../net/address-policy.ts";

export interface DestinationPolicy {
  /** notifications.allow_private_addresses: send to any address (a receiver inside the network, tests on loopback). */
  allowPrivateAddresses?: boolean;
  /** DNS resolution; tests replace it. */
  resolve?: (host: string) => Promise<{ address: string; family: number }[]>;
}

export interface Pinned {
  address: string;
  family: number;
}

const systemResolve = (host: string) => dns.promises.lookup(host, { all: true, verbatim: true });

/** A refusal by this policy: audited as the failure, with its own error code. */
export class DestinationRefused extends Error {}

/**
 * The address to connect to for `host`, every address it resolves to checked;
 * null when private addresses are allowed (the client resolves as usual).
 * `what` names the receiver in the refusal ("the slack receiver", "the SMTP server").
 */
export async function checkedDestination(host: string, what: string, policy: DestinationPolicy): Promise<Pinned | null> {
  if (policy.allowPrivateAddresses) return null;
  const name = host.replace(/^\[|\]$/g, "");
  let addresses: { address: string; family: number }[];
  try {
    addresses = await (policy.resolve ?? systemResolve)(name);
  } catch (e) {
    throw new Error(`cannot resolve ${what}'s host ${name}: ${(e as { code?: string }).code ?? (e as Error).message}`);
  }
  if (addresses.length === 0) throw new Error(`cannot resolve ${what}'s host ${name}: no addresses`);
  for (const a of addresses) {
    const why = forbiddenAddressReason(a.address);
    if (why) throw new DestinationRefused(`${what}'s host ${name} resolves to ${a.address} (${why}); the proxy sends notifications there only with notifications.allow_private_addresses: true in its configuration`);
  }
  return addresses[0];
}
