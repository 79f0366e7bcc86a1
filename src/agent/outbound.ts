/**
 * The agent's outbound HTTPS: every connection to Azure (forwarded requests,
 * Entra token fetches, ARM lookups) goes through here.
 *
 * - Forwarded requests resolve the target name once, refuse it if any address
 *   is forbidden (address-policy.ts), and connect to the checked address, so a
 *   second DNS answer cannot swap in another (DNS rebinding).
 * - `connectTo` (the emulator, like curl's --connect-to) sends every connection
 *   to one address with a given CA, keeping the host name for SNI and Host.
 *   The operator chose that address, so it is exempt from the checks.
 */
import dns from "node:dns";
import { TargetRefused } from "../errors/index.ts";
import { forbiddenAddressReason } from "../net/address-policy.ts";
import { closeHttpsClients, prepareHttpsRequest, type HttpsResponse, type PreparedHttpsRequest } from "../runtime/index.ts";

export interface OutboundOptions {
  connectTo?: { host: string; port: number };
  /** CA PEM to trust instead of the system store (with connectTo: the emulator's CA). */
  caPem?: string;
  /** DNS resolution; tests replace it, as DNS for Azure names cannot run here. */
  resolve?: (host: string) => Promise<{ address: string; family: number }[]>;
}

interface SendOptions {
  method: string;
  headers: [string, string][];
  body?: ReadableStream<Uint8Array> | null;
  signal?: AbortSignal;
  /** Which pool of kept connections (runtime/https-client.ts). */
  pool?: string;
}

interface Pinned {
  address: string;
  family: number;
  port: number;
}

const systemResolve = async (host: string) => dns.promises.lookup(host, { all: true, verbatim: true });

export class Outbound {
  constructor(private readonly opts: OutboundOptions = {}) {}

  get connectTo() {
    return this.opts.connectTo;
  }

  /** A forwarded request's target: every address `host` resolves to must pass the address policy (unless connect-to applies). */
  pinChecked(host: string, port: number): Promise<Pinned> {
    return this.pin(host, port, true);
  }

  /** Entra ID and ARM for the agent's own token fetches: hosts the agent chose, not a client. */
  pinTrusted(host: string, port: number): Promise<Pinned> {
    return this.pin(host, port, false);
  }

  private async pin(host: string, port: number, checked: boolean): Promise<Pinned> {
    if (this.opts.connectTo) return { address: this.opts.connectTo.host, family: this.opts.connectTo.host.includes(":") ? 6 : 4, port: this.opts.connectTo.port };
    let addresses: { address: string; family: number }[];
    try {
      addresses = await (this.opts.resolve ?? systemResolve)(host);
    } catch (e) {
      throw new Error(`cannot resolve ${host}: ${(e as Error).message}`);
    }
    if (addresses.length === 0) throw new Error(`cannot resolve ${host}: no addresses`);
    if (checked) {
      for (const a of addresses) {
        const why = forbiddenAddressReason(a.address);
        if (why) throw new TargetRefused(`${host} resolves to ${a.address} (${why}); the agent does not forward there`);
      }
    }
    return { ...addresses[0], port };
  }

  /**
   * The data path: streams a request to `url` at a pinned address and the
   * response back, with backpressure. Redirects are never followed: the
   * caller gets the 3xx as it is.
   */
  send(url: URL, pinned: Pinned, opts: SendOptions): Promise<HttpsResponse> {
    return this.prepare(url, pinned, opts).send();
  }

  /** The same request built but not sent (runtime/https-client.ts): nothing reaches the target before its send(). */
  prepare(url: URL, pinned: Pinned, opts: SendOptions): PreparedHttpsRequest {
    return prepareHttpsRequest({ url, method: opts.method, headers: opts.headers, body: opts.body, connect: { host: pinned.address, port: pinned.port }, caPem: this.opts.caPem, signal: opts.signal, pool: opts.pool });
  }

  close(): void {
    void closeHttpsClients();
  }
}
