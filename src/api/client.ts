import { AzgateError, fromErrorBody } from "../errors/index.ts";
import { request } from "../runtime/http.ts";
import { createProof, PROOF_SCHEME } from "../auth/proof.ts";
import { importPrivateKeyPem } from "../pki/keys.ts";
import { systemClock, type Clock } from "../util/clock.ts";
import { VERSION } from "../version.ts";
import { VERSION_HEADER } from "./version.ts";

export interface ApiTarget {
  /** https://host:port */
  baseUrl: string;
  /** The cluster's host CA: authenticates the cluster, and verifies the proxy's TLS when it serves its own certificate. */
  ca_pem?: string;
  /** More host CAs trusted alike: the old and the new while the host CA rotates (docs/rotation.md). */
  host_ca_pems?: string[];
  /** CAs for a TLS front (an ingress, an operator certificate), trusted besides the host CA and the web PKI. */
  proxy_ca_pems?: string[];
  /** The offline admin path: exactly this server certificate (SHA-256), nothing else. */
  cert_sha256?: string;
  insecure?: boolean;
  /** In-process transport (the offline admin path); HTTPS when absent. */
  fetch?: (req: Request) => Response | Promise<Response>;
}

export interface ApiCredentials {
  keyPem: string;
  certPem: string;
}

/**
 * How a signed-in client follows a rotation of the cluster's CAs
 * (client/rotation.ts): told the trust header of each answer, and asked for
 * a new target when the proxy's TLS certificate no longer verifies.
 */
export interface TrustFollower {
  /** The proxy's `x-azgate-trust` header (proxy/rotation-trust.ts trustHeader), after a call succeeded. */
  onTrust(header: string): Promise<void>;
  /** The TLS handshake failed on the CAs trusted: the target to retry with once, after learning what to trust. */
  onUntrustedTls(): Promise<ApiTarget>;
}

/** Calls the proxy API; with credentials, every call carries a fresh proof of possession. */
export class ApiClient {
  private key: Promise<CryptoKey> | null;
  constructor(
    private target: ApiTarget,
    private readonly creds?: ApiCredentials,
    /** Dates each call's proof; the command's start chose it (the system clock, or a test's). */
    private readonly clock: Clock = systemClock,
    private readonly follower?: TrustFollower,
  ) {
    this.key = creds ? importPrivateKeyPem(creds.keyPem) : null;
  }

  /** `maxBytes` bounds the answer read (an answer from a proxy not yet verified). */
  async call<T>(method: string, path: string, body?: unknown, opts: { timeoutMs?: number; signal?: AbortSignal; maxBytes?: number } = {}): Promise<T> {
    let result: { value: T; trust?: string };
    try {
      result = await this.send<T>(method, path, body, opts);
    } catch (e) {
      if (!this.follower || !isUntrustedTls(e)) throw e;
      this.target = await this.follower.onUntrustedTls();
      result = await this.send<T>(method, path, body, opts);
    }
    if (this.follower && result.trust) await this.follower.onTrust(result.trust);
    return result.value;
  }

  private async send<T>(method: string, path: string, body: unknown, opts: { timeoutMs?: number; signal?: AbortSignal; maxBytes?: number }): Promise<{ value: T; trust?: string }> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { accept: "application/json", [VERSION_HEADER]: VERSION };
    if (text !== undefined) headers["content-type"] = "application/json";
    if (this.creds && this.key) {
      const proof = await createProof({ key: await this.key, certPem: this.creds.certPem, method, pathAndQuery: path, body: text, now: this.clock.now() });
      headers.authorization = `${PROOF_SCHEME} ${proof}`;
    }
    let res: { status: number; body: string; trust?: string };
    try {
      if (this.target.fetch) {
        const r = await this.target.fetch(new Request(this.target.baseUrl + path, { method, headers, body: text }));
        res = { status: r.status, body: await r.text(), trust: r.headers.get(TRUST_HEADER) ?? undefined };
      } else {
        const r = await request(this.target.baseUrl + path, { method, headers, body: text, ca: trustedCas(this.target), certSha256: this.target.cert_sha256, insecure: this.target.insecure, timeoutMs: opts.timeoutMs, signal: opts.signal, maxBytes: opts.maxBytes });
        const trust = r.headers[TRUST_HEADER];
        res = { ...r, trust: typeof trust === "string" ? trust : undefined };
      }
    } catch (e) {
      throw connectionError(this.target.baseUrl, e);
    }
    let parsed: unknown;
    try {
      parsed = res.body ? JSON.parse(res.body) : {};
    } catch {
      throw new AzgateError("connection_failed", `${this.target.baseUrl} did not answer like an azgate proxy (HTTP ${res.status})`);
    }
    if (res.status >= 400) throw fromErrorBody(res.status, parsed);
    return { value: parsed as T, trust: res.trust };
  }
}

/** The answer header that carries the cluster's trust now (proxy/rotation-trust.ts). */
export const TRUST_HEADER = "x-azgate-trust";

/** The CAs a connection to the proxy trusts besides the web PKI: the cluster's host CA and any TLS front's. */
export function trustedCas(target: Pick<ApiTarget, "ca_pem" | "host_ca_pems" | "proxy_ca_pems">): string[] {
  return [...new Set([...(target.ca_pem ? [target.ca_pem] : []), ...(target.host_ca_pems ?? []), ...(target.proxy_ca_pems ?? [])])];
}

const TLS_UNTRUSTED = /certificate|self.signed|verify/i;

export function connectionError(url: string, e: unknown): AzgateError {
  const err = e as NodeJS.ErrnoException;
  const hint =
    err.code === "ECONNREFUSED" ? "nothing is listening there; is the proxy running?" :
    err.code === "ENOTFOUND" ? "the host name does not resolve" :
    TLS_UNTRUSTED.test(err.message ?? "") ? `its TLS certificate is not trusted (${err.message}); check --ca-pin, or pass the CA of the certificate it serves (an ingress's, an operator's) with --proxy-ca-file` :
    /wrong version number|packet length too long|EPROTO/i.test(`${err.code} ${err.message}`) ? "that port does not speak TLS (a plain HTTP port, or another service?); check the address and port of the azgate proxy" :
    err.code === "ECONNRESET" ? "the connection was reset; is something else (a firewall, another service) on that port?" :
    err.code === "ETIMEDOUT" ? "the connection timed out; check the address, and any firewall between here and the proxy" :
    err.message;
  return new AzgateError("connection_failed", `cannot reach the proxy at ${url}: ${hint}`, { cause: e });
}

/** True when a call failed because the proxy's TLS certificate did not verify (judged on the underlying error). */
export function isUntrustedTls(e: unknown): boolean {
  const err = e as AzgateError;
  return err?.code === "connection_failed" && TLS_UNTRUSTED.test((err.cause as Error | undefined)?.message ?? "");
}
