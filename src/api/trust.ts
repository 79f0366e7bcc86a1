import { readFileSync } from "node:fs";
import path from "node:path";
import { pemCertificates } from "../runtime/tls-trust.ts";
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
 * Decides how to trust a proxy, as Teleport does. Two questions, kept apart:
 *
 * - Is this TLS connection to the proxy's address genuine? Verified by the
 *   web PKI, by an operator's CA (`proxyCaPems`: an ingress or `proxy.tls`),
 *   or by the cluster's own host CA when the proxy serves its self-issued
 *   certificate.
 * - Is this the cluster we mean? The host CA it hands out (in /v1/ping, read
 *   over the verified connection) must match --ca-pin, the CA remembered
 *   from an earlier login, or what the user confirms at the prompt.
 *
 * --insecure skips both (throwaway demos).
 */
export async function establishTrust(opts: {
  proxy: string;
  /** One pin, or several (an agent's list while the cluster's CA rotates): any may match. */
  caPin?: string | string[];
  insecure?: boolean;
  knownCaPem?: string;
  /** CAs of a TLS front (--proxy-ca-file). */
  proxyCaPems?: string[];
  confirm?: (pin: string, cluster: string) => Promise<boolean>;
}): Promise<{ target: ApiTarget; ping: PingResponse }> {
  const baseUrl = proxyBaseUrl(opts.proxy);
  // Loaded here: the everyday commands use this module's small helpers and never parse a certificate.
  const { x509 } = await import("../pki/x509.ts");
  // A malformed pin is the caller's mistake: said before anything is dialled.
  const pins = [opts.caPin ?? []].flat();
  const wantPins = pins.length ? pins.map(normalizePin) : opts.knownCaPem ? [await caPin(new x509.X509Certificate(opts.knownCaPem))] : [];
  const front = opts.proxyCaPems?.length ? opts.proxyCaPems : undefined;
  const ping = (t: ApiTarget) => new ApiClient(t).call<PingResponse>("GET", "/v1/ping");
  if (opts.insecure) {
    const target = { baseUrl, insecure: true };
    return { target, ping: await ping(target) };
  }
  // 1. The connection verifies with what this client already trusts (web PKI, operator CA, the CA remembered from an earlier login): the ping is authentic.
  let verified: PingResponse | undefined;
  try {
    verified = await ping({ baseUrl, ca_pem: pins.length ? undefined : opts.knownCaPem, proxy_ca_pems: front });
  } catch (e) {
    if (!isUntrustedTls(e)) throw e;
  }
  // 2. Otherwise only the cluster's own CA can verify it: learn the CA, then verify with it.
  const seen = verified ?? (await ping({ baseUrl, insecure: true }));
  const chosen = await chooseCa(opts, await offeredCas(seen), { wantPins, cluster: seen.cluster_name, tlsVerified: verified !== undefined });
  const target: ApiTarget = { baseUrl, ca_pem: chosen?.pem, proxy_ca_pems: front };
  if (verified) return { target, ping: verified };
  try {
    return { target, ping: await ping(target) };
  } catch (e) {
    if (!isUntrustedTls(e)) throw e;
    throw new AzgateError(
      "cert_untrusted",
      `the proxy at ${opts.proxy} hands out the expected CA, but its TLS certificate is not from that CA, nor from a CA this machine trusts; if an ingress or an operator certificate (proxy.tls) serves it, pass that certificate's CA with --proxy-ca-file (or AZGATE_PROXY_CA_FILE)`,
    );
  }
}

interface OfferedCa {
  pem: string;
  pin: string;
}

async function offeredCas(ping: PingResponse): Promise<OfferedCa[]> {
  const { x509 } = await import("../pki/x509.ts");
  return Promise.all(ping.host_ca_pems.map(async (pem) => ({ pem, pin: await caPin(new x509.X509Certificate(pem)) })));
}

/** The host CA this client accepts the cluster by; undefined when a verified connection alone is enough (no pin, nothing remembered). */
async function chooseCa(
  opts: { proxy: string; caPin?: string | string[]; confirm?: (pin: string, cluster: string) => Promise<boolean> },
  offered: OfferedCa[],
  { wantPins, cluster, tlsVerified }: { wantPins: string[]; cluster: string; tlsVerified: boolean },
): Promise<OfferedCa | undefined> {
  if (wantPins.length) {
    const match = offered.find((o) => wantPins.includes(o.pin));
    if (match) return match;
    if (opts.caPin) {
      throw new AzgateError(
        "cert_untrusted",
        `CA pin mismatch: the proxy at ${opts.proxy} presented ${offered.map((o) => o.pin).join(", ")}, expected ${wantPins.join(" or ")}; check the pin with "azgate admin status" on the proxy host`,
      );
    }
    throw new AzgateError(
      "cert_untrusted",
      `the proxy ${opts.proxy} no longer presents the CA trusted at your last login; if the cluster was rebuilt, log in again with --ca-pin`,
    );
  }
  // A certificate the web PKI or the operator's CA vouches for names the proxy: its CA comes with it.
  if (tlsVerified) return offered[0];
  if (opts.confirm && offered[0] && (await opts.confirm(offered[0].pin, cluster))) return offered[0];
  throw new AzgateError(
    "trust_required",
    `cannot verify the proxy at ${opts.proxy}: pass --ca-pin ${offered[0]?.pin ?? "sha256:..."} (check it with "azgate admin status" on the proxy host), or --insecure for a throwaway demo`,
  );
}

/** The env var that names a TLS front's CA file for every command (as --proxy-ca-file does for one). */
export const PROXY_CA_FILE_ENV = "AZGATE_PROXY_CA_FILE";

/** Reads an operator's CA bundle (--proxy-ca-file, AZGATE_PROXY_CA_FILE, agent.proxy_ca_file). */
export function readProxyCaFile(file: string, what = "--proxy-ca-file"): string[] {
  let text: string;
  try {
    text = readFileSync(path.resolve(file), "utf8");
  } catch (e) {
    throw new AzgateError("bad_parameter", `${what}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
  const pems = pemCertificates(text);
  if (pems.length === 0) throw new AzgateError("bad_parameter", `${what}: ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return pems;
}

/** The front CA a command trusts: its --proxy-ca-file, else AZGATE_PROXY_CA_FILE, else none. */
export function proxyCaFromArgs(flag: string | undefined, env: Record<string, string | undefined> = process.env): string[] | undefined {
  if (flag) return readProxyCaFile(flag);
  const fromEnv = env[PROXY_CA_FILE_ENV];
  return fromEnv ? readProxyCaFile(fromEnv, PROXY_CA_FILE_ENV) : undefined;
}
