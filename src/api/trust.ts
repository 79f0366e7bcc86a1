import { readFileSync } from "node:fs";
import path from "node:path";
import { pemCertificates } from "../runtime/tls-trust.ts";
import { AzgateError } from "../errors/index.ts";
import { caPin, normalizePin, pemPin } from "../pki/pin.ts";
import { ApiClient, isUntrustedTls, type ApiTarget } from "./client.ts";
import type { PingResponse } from "./types.ts";
import type { CaEndorsement } from "../pki/endorsement.ts";

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
  /** The host CAs remembered from an earlier login or join (two while the cluster's CA rotates): any may match. */
  knownCaPems?: string[];
  /** CAs of a TLS front (--proxy-ca-file). */
  proxyCaPems?: string[];
  confirm?: (pin: string, cluster: string) => Promise<boolean>;
}): Promise<{ target: ApiTarget; ping: PingResponse }> {
  const baseUrl = proxyBaseUrl(opts.proxy);
  // Loaded here: the everyday commands use this module's small helpers and never parse a certificate.
  const { x509 } = await import("../pki/x509.ts");
  // A malformed pin is the caller's mistake: said before anything is dialled.
  const pins = [opts.caPin ?? []].flat();
  const known = opts.knownCaPems?.length ? opts.knownCaPems : undefined;
  const wantPins = pins.length ? pins.map(normalizePin) : known ? await Promise.all(known.map((pem) => caPin(new x509.X509Certificate(pem)))) : [];
  const front = opts.proxyCaPems?.length ? opts.proxyCaPems : undefined;
  const ping = (t: ApiTarget) => readPing(t, opts.proxy);
  if (opts.insecure) {
    const target = { baseUrl, insecure: true };
    return { target, ping: await ping(target) };
  }
  // 1. The connection verifies with what this client already trusts (web PKI, operator CA, the CA remembered from an earlier login): the ping is authentic.
  let verified: PingResponse | undefined;
  try {
    verified = await ping({ baseUrl, host_ca_pems: pins.length ? undefined : known, proxy_ca_pems: front });
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

/**
 * The host CAs a peer trusts after hearing what the cluster offers now (a
 * trust call, /v1/ping, a join's answer), in the order offered: those it
 * trusted already, those it pinned (an agent's pre-trusted next pin, Helm's
 * caPin list), and those one of these vouches for (pki/endorsement.ts).
 * Nothing else: an offer of only unknown CAs leaves nothing trusted, and the
 * caller refuses (rotatedAwayMessage says what to do).
 */
export async function followHostCas(opts: { known: readonly string[]; offered: readonly string[]; endorsements?: readonly CaEndorsement[]; pins?: readonly string[]; cluster: string; now: Date }): Promise<string[]> {
  // Loaded here, as in establishTrust: the everyday commands import this module and never parse a certificate.
  const [{ x509 }, { endorsedCa }] = await Promise.all([import("../pki/x509.ts"), import("../pki/endorsement.ts")]);
  const parsed = async (pem: string) => {
    const cert = new x509.X509Certificate(pem);
    return { pem, cert, pin: await caPin(cert) };
  };
  const known = await Promise.all(opts.known.map(parsed));
  const offered = await Promise.all(opts.offered.map(parsed));
  const anchors = new Set([...known.map((k) => k.pin), ...(opts.pins ?? []).map(normalizePin)]);
  const trusted = new Set(offered.filter((o) => anchors.has(o.pin)).map((o) => o.pin));
  // A CA offered and vouched for by one already trusted (before, or just now) is trusted too.
  for (let added = true; added; ) {
    added = false;
    const vouchers = [...known.map((k) => k.cert), ...offered.filter((o) => trusted.has(o.pin)).map((o) => o.cert)];
    for (const e of opts.endorsements ?? []) {
      const ca = await endorsedCa(e, vouchers, opts.cluster, opts.now);
      const pin = ca && (await caPin(ca));
      if (pin && !trusted.has(pin) && offered.some((o) => o.pin === pin)) {
        trusted.add(pin);
        added = true;
      }
    }
  }
  return offered.filter((o) => trusted.has(o.pin)).map((o) => o.pem);
}

/**
 * /v1/ping, often read before whoever answers is verified: bounded, and the
 * fields that decide trust checked (api/control.ts pingTrust), so a man in the
 * middle can neither make the client read without end nor put text of his
 * own (a cluster name with control characters) in its prompts and messages.
 */
async function readPing(t: ApiTarget, proxy: string): Promise<PingResponse> {
  const { pingTrust, PING_MAX_BYTES } = await import("./control.ts");
  const answer = pingTrust.safeParse(await new ApiClient(t).call<unknown>("GET", "/v1/ping", undefined, { maxBytes: PING_MAX_BYTES }));
  if (!answer.success) throw new AzgateError("cert_untrusted", `the proxy at ${proxy} did not answer /v1/ping as an azgate proxy does (${answer.error.issues[0]?.path.join(".")}: ${answer.error.issues[0]?.message})`);
  return answer.data as unknown as PingResponse;
}

/**
 * Why a peer that trusts `knownPins` cannot go on with a proxy that offers
 * `ping`'s CAs, and what to do: when one of its pins was retired by a
 * rotation, "while you were away" with the new pin and `command` (to be
 * checked with the cluster's administrator first: an unauthenticated ping
 * says it); else that this is another cluster's CA.
 */
export function rotatedAwayMessage(ping: Pick<PingResponse, "ca_pins" | "retired_ca_pins" | "cluster_name">, knownPins: readonly string[], proxy: string, command: (pin: string) => string): { code: "ca_retired" | "cert_untrusted"; message: string } {
  const offered = ping.ca_pins.join(" and ");
  const retired = (ping.retired_ca_pins ?? []).find((r) => knownPins.includes(r.pin));
  if (retired) {
    return {
      code: "ca_retired",
      message: `the host CA of cluster "${ping.cluster_name}" that this machine trusts (${retired.pin}) was retired by a rotation at ${retired.retired}, while it was away; the proxy at ${proxy} now presents ${offered}. Check that pin with the cluster's administrator ("azgate admin status" on the proxy host), then: ${command(ping.ca_pins[0])}`,
    };
  }
  return { code: "cert_untrusted", message: `the proxy at ${proxy} presents ${offered}, not the CA this machine trusts (${knownPins.join(", ") || "none"}); if the cluster was rebuilt or its CA rotated, check the new pin with its administrator, then: ${command(ping.ca_pins[0])}` };
}

/**
 * What a peer that trusts `known` host CAs trusts now, read from /v1/ping
 * (over a connection verified by them when it still is, else unverified: the
 * endorsements prove themselves): how a workstation or an agent that missed
 * the trust calls (it was away) catches up with a rotation. An unverified
 * answer only adds to what is trusted, never takes away (whoever gave it may
 * not be the proxy). Refuses, saying what to do (`command`), when nothing
 * offered can be trusted.
 */
export async function learnHostCas(opts: {
  baseUrl: string;
  proxy: string;
  known: readonly string[];
  pins?: readonly string[];
  proxyCaPems?: string[];
  cluster: string;
  command: (pin: string) => string;
  now: Date;
  /** The refusal when the proxy is another cluster altogether (an agent's data dir says what to do about it). */
  otherCluster?: (name: string) => AzgateError;
}): Promise<{ trusted: string[]; ping: PingResponse }> {
  const ping = (t: ApiTarget) => readPing(t, opts.proxy);
  let seen: PingResponse;
  let verified = true;
  try {
    seen = await ping({ baseUrl: opts.baseUrl, host_ca_pems: [...opts.known], proxy_ca_pems: opts.proxyCaPems });
  } catch (e) {
    if (!isUntrustedTls(e)) throw e;
    seen = await ping({ baseUrl: opts.baseUrl, insecure: true });
    verified = false;
  }
  let trusted = await followHostCas({ known: opts.known, offered: seen.host_ca_pems, endorsements: seen.ca_endorsements, pins: opts.pins, cluster: opts.cluster, now: opts.now });
  const knownPins = opts.known.map(pemPin);
  // Unverified: what it trusted stays, first (whoever answered does not reorder it either), and what is vouched for is added.
  if (!verified && trusted.length) trusted = [...opts.known, ...trusted.filter((t) => !knownPins.includes(pemPin(t)))];
  if (seen.cluster_name !== opts.cluster) throw opts.otherCluster?.(seen.cluster_name) ?? new AzgateError("cert_untrusted", `the proxy at ${opts.proxy} is cluster "${seen.cluster_name}", not "${opts.cluster}"`);
  if (trusted.length === 0) {
    const why = rotatedAwayMessage(seen, knownPins, opts.proxy, opts.command);
    throw new AzgateError(why.code, why.message);
  }
  return { trusted, ping: seen };
}
