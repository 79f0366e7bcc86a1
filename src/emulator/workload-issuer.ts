import { SignJWT } from "jose";
import { writeFileAtomic } from "../runtime/index.ts";
import type { SigningKey } from "./keys.ts";

export const TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange";

/**
 * The AKS OIDC issuer: signs projected service-account tokens as the kubelet
 * would (subject system:serviceaccount:NS:NAME, audience api://AzureADTokenExchange).
 */
export class WorkloadIssuer {
  constructor(
    readonly issuer: string,
    readonly key: SigningKey,
  ) {}

  sign(opts: { namespace: string; serviceAccount: string; ttlSeconds?: number; audience?: string; now?: number }): Promise<string> {
    const now = Math.floor((opts.now ?? Date.now()) / 1000);
    return new SignJWT({ "kubernetes.io": { namespace: opts.namespace, serviceaccount: { name: opts.serviceAccount } } })
      .setProtectedHeader({ alg: "RS256", kid: this.key.kid })
      .setIssuer(this.issuer)
      .setSubject(`system:serviceaccount:${opts.namespace}:${opts.serviceAccount}`)
      .setAudience(opts.audience ?? TOKEN_EXCHANGE_AUDIENCE)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + (opts.ttlSeconds ?? 3600))
      .sign(this.key.privateKey);
  }

  /** Writes a token file like the projected volume, and rewrites it before expiry (80% of its life, as the kubelet does). */
  async project(file: string, opts: { namespace: string; serviceAccount: string; ttlSeconds?: number }): Promise<{ stop: () => void }> {
    const ttl = opts.ttlSeconds ?? 3600;
    const write = async () => writeFileAtomic(file, await this.sign({ ...opts, ttlSeconds: ttl }), 0o600);
    await write();
    const timer = setInterval(() => void write().catch((e) => console.error("[emulator] token rotation failed:", e)), ttl * 800);
    timer.unref?.();
    return { stop: () => clearInterval(timer) };
  }

  discovery() {
    return {
      issuer: this.issuer,
      jwks_uri: new URL("openid/v1/jwks", this.issuer).toString(),
      response_types_supported: ["id_token"],
      subject_types_supported: ["public"],
      id_token_signing_alg_values_supported: ["RS256"],
    };
  }

  jwks() {
    return { keys: [this.key.jwk] };
  }
}
