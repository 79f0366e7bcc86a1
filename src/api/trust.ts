import { x509 } from "../pki/x509.ts";
import { AzgateError } from "../errors/index.ts";
import { caPin, normalizePin } from "../pki/pin.ts";
import { ApiClient, isUntrustedTls, type ApiTarget } from "./client.ts";
import type { PingResponse } from "./types.ts";

export const DEFAULT_PROXY_PORT = 3080;

export function proxyBaseUrl(proxy: string): string {
  const hasPort = /:\d+$/.test(proxy);
  return `https://${hasPort ? proxy : `${proxy}:${DEFAULT_PROXY_PORT}`}`;
}

/**
 * Decides how to verify a proxy, in order: --insecure; the CA saved at an
 * earlier login; the web PKI (a public certificate); else the proxy's own CA,
 * accepted only if it matches --ca-pin or the user confirms its pin. The
 * CA is then used for a verified request, so the TLS certificate must chain
 * to the pinned CA and name the host.
 */
export async function establishTrust(opts: {
  proxy: string;
  caPin?: string;
  insecure?: boolean;
  knownCaPem?: string;
  confirm?: (pin: string, cluster: string) => Promise<boolean>;
}): Promise<{ target: ApiTarget; ping: PingResponse }> {
  const baseUrl = proxyBaseUrl(opts.proxy);
  // A malformed pin is the caller's mistake: said before anything is dialled.
  const wantPin = opts.caPin ? normalizePin(opts.caPin) : undefined;
  const ping = (t: ApiTarget) => new ApiClient(t).call<PingResponse>("GET", "/v1/ping");
  if (opts.insecure) {
    const target = { baseUrl, insecure: true };
    return { target, ping: await ping(target) };
  }
  if (opts.knownCaPem && !opts.caPin) {
    const target = { baseUrl, ca_pem: opts.knownCaPem };
    try {
      return { target, ping: await ping(target) };
    } catch (e) {
      if (!isUntrustedTls(e)) throw e;
      throw new AzgateError(
        "cert_untrusted",
        `the proxy ${opts.proxy} no longer presents a certificate from the CA trusted at your last login; if the cluster was rebuilt, log in again with --ca-pin`,
      );
    }
  }
  if (!opts.caPin) {
    try {
      const target = { baseUrl };
      return { target, ping: await ping(target) };
    } catch (e) {
      if (!isUntrustedTls(e)) throw e;
    }
  }
  const unverified = await ping({ baseUrl, insecure: true });
  const offered = await Promise.all(unverified.host_ca_pems.map(async (pem) => ({ pem, pin: await caPin(new x509.X509Certificate(pem)) })));
  let chosen: { pem: string; pin: string } | undefined;
  if (opts.caPin) {
    const want = wantPin!;
    chosen = offered.find((o) => o.pin === want);
    if (!chosen) {
      throw new AzgateError(
        "cert_untrusted",
        `CA pin mismatch: the proxy at ${opts.proxy} presented ${offered.map((o) => o.pin).join(", ")}, expected ${want}; check the pin with "azgate admin status" on the proxy host`,
      );
    }
  } else if (opts.confirm && offered[0] && (await opts.confirm(offered[0].pin, unverified.cluster_name))) {
    chosen = offered[0];
  } else {
    throw new AzgateError(
      "trust_required",
      `cannot verify the proxy at ${opts.proxy}: pass --ca-pin ${offered[0]?.pin ?? "sha256:..."} (check it with "azgate admin status" on the proxy host), or --insecure for a throwaway demo`,
    );
  }
  const target = { baseUrl, ca_pem: chosen.pem };
  return { target, ping: await ping(target) };
}
