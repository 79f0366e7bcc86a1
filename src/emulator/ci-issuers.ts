/**
 * CI systems' OIDC issuers, as the emulator plays them: GitHub Actions'
 * (https://token.actions.githubusercontent.com), Azure DevOps' (one issuer
 * per organisation, https://vstoken.dev.azure.com/ORG, sharing one key set)
 * and GitLab's (https://gitlab.com), each with its discovery document and
 * JWKS at the real paths, so the proxy reads them as it would the real ones
 * (through its issuer connect-to). The AKS-style issuer (workload-issuer.ts)
 * plays Kubernetes. Keys rotate on demand, and a key that is never published
 * signs tokens an issuer would not vouch for (tests).
 */
import { Hono } from "hono";
import { SignJWT } from "jose";
import { newSigningKey, type SigningKey } from "./keys.ts";

export const GITHUB_ISSUER = "https://token.actions.githubusercontent.com";
export const GITLAB_ISSUER = "https://gitlab.com";
export const ADO_HOST = "vstoken.dev.azure.com";
export const ADO_AUDIENCE = "api://AzureADTokenExchange";
/** The emulated Azure DevOps organisation (its issuer is https://vstoken.dev.azure.com/THIS). */
export const ADO_ORGANIZATION_ID = "0ca3ddd9-0000-4000-8000-00000000ad00";

export interface SignOptions {
  audience: string;
  /** The issuer to name, where one key set serves several (Azure DevOps' organisations). */
  issuer?: string;
  /** Seconds since the epoch of iat and nbf (the machine's clock when absent: the emulator plays the CI's). */
  now?: number;
  ttlSeconds?: number;
  /** Sign with this key instead of the current one (one never published, say). */
  key?: SigningKey;
  jti?: string;
}

export class OidcIssuer {
  private published: SigningKey[];
  private current: SigningKey;
  /** How many times its key set was read (tests see a rotation's one refetch). */
  jwksReads = 0;

  constructor(
    readonly issuer: string,
    readonly jwksUri: string,
    key: SigningKey,
    private readonly name: string,
  ) {
    this.published = [key];
    this.current = key;
  }

  static async create(issuer: string, jwksUri: string, name: string): Promise<OidcIssuer> {
    return new OidcIssuer(issuer, jwksUri, await newSigningKey(`${name}-1`), name);
  }

  sign(claims: Record<string, unknown>, o: SignOptions): Promise<string> {
    const now = o.now ?? Math.floor(Date.now() / 1000);
    const key = o.key ?? this.current;
    return new SignJWT({ ...claims, jti: o.jti ?? crypto.randomUUID() })
      .setProtectedHeader({ alg: "RS256", kid: key.kid, typ: "JWT" })
      .setIssuer(o.issuer ?? this.issuer)
      .setAudience(o.audience)
      .setIssuedAt(now)
      .setNotBefore(now - 5)
      .setExpirationTime(now + (o.ttlSeconds ?? 300))
      .sign(key.privateKey);
  }

  /** A new key, published beside the old ones and used from now on (the old ones keep verifying). */
  async rotate(): Promise<SigningKey> {
    this.current = await newSigningKey(`${this.name}-${this.published.length + 1}`);
    this.published.push(this.current);
    return this.current;
  }

  /** A key this issuer never publishes. */
  unpublishedKey(): Promise<SigningKey> {
    return newSigningKey(`${this.name}-unpublished-${crypto.randomUUID().slice(0, 8)}`);
  }

  discovery(issuer = this.issuer) {
    return { issuer, jwks_uri: this.jwksUri, response_types_supported: ["id_token"], subject_types_supported: ["public", "pairwise"], id_token_signing_alg_values_supported: ["RS256"], claims_supported: ["sub", "aud", "exp", "iat", "iss", "jti", "nbf"] };
  }

  jwks() {
    this.jwksReads++;
    return { keys: this.published.map((k) => k.jwk) };
  }
}

export interface CiIssuers {
  github: OidcIssuer;
  gitlab: OidcIssuer;
  /** One key set; sign with `issuer: adoIssuer(org)`. */
  azureDevops: OidcIssuer;
  /** Hosts and their apps: discovery and keys at the real paths. */
  hosts: Record<string, Hono>;
}

export const adoIssuer = (organizationId: string) => `https://${ADO_HOST}/${organizationId}`;

export async function startCiIssuers(): Promise<CiIssuers> {
  const github = await OidcIssuer.create(GITHUB_ISSUER, `${GITHUB_ISSUER}/.well-known/jwks`, "github-actions");
  const gitlab = await OidcIssuer.create(GITLAB_ISSUER, `${GITLAB_ISSUER}/oauth/discovery/keys`, "gitlab");
  const azureDevops = await OidcIssuer.create(adoIssuer(ADO_ORGANIZATION_ID), `https://${ADO_HOST}/.well-known/jwks`, "azure-devops");
  const served = (issuer: OidcIssuer, keysPath: string) =>
    new Hono().get("/.well-known/openid-configuration", (c) => c.json(issuer.discovery())).get(keysPath, (c) => c.json(issuer.jwks()));
  const ado = new Hono()
    .get("/.well-known/jwks", (c) => c.json(azureDevops.jwks()))
    // Every organisation's issuer is its own path; its key set is the host's one.
    .get("/:org/.well-known/openid-configuration", (c) => c.json(azureDevops.discovery(adoIssuer(c.req.param("org")))));
  return {
    github,
    gitlab,
    azureDevops,
    hosts: { "token.actions.githubusercontent.com": served(github, "/.well-known/jwks"), "gitlab.com": served(gitlab, "/oauth/discovery/keys"), [ADO_HOST]: ado },
  };
}
