/**
 * SSO connector resources in Teleport's shapes (`kind: github|oidc|saml`),
 * so the seed guide's files load as written. Pure: schemas, the secret
 * fields, and how to hide them. Teleport fields azgate does not use are
 * accepted and kept; anything else is refused with the field's name.
 */
import { z } from "zod";
import { invalidRegexMessage, isRegexValue } from "../util/regex.ts";
import { parseDuration } from "../util/duration.ts";

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "name must be 1-64 letters, digits, '.', '_' or '-'");
const metadata = z.strictObject({
  name,
  description: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  revision: z.string().optional(),
  expires: z.string().optional(),
});
const url = (what: string) => z.string().url(`${what} must be a URL`);
const roles = z.array(z.string().min(1)).min(1, "roles: give at least one role");

/** A claim or attribute value: literal, glob (`*`), or a regular expression in ^...$ that must compile. */
const matchValue = z
  .string()
  .min(1)
  .superRefine((v, ctx) => {
    const invalid = isRegexValue(v) ? invalidRegexMessage(v) : null;
    if (invalid) ctx.addIssue({ code: "custom", message: invalid });
  });

/** azgate's own field: SSO users' certificates last no longer than this (and no longer than their roles allow). */
const maxSessionTtl = z
  .string()
  .refine((v) => isDuration(v), { message: 'max_session_ttl must be a duration such as "8h" or "30m"' })
  .optional();

function isDuration(v: string): boolean {
  try {
    return parseDuration(v) > 0;
  } catch {
    return false;
  }
}

const ignored = (names: string[]) => Object.fromEntries(names.map((n) => [n, z.unknown().optional()]));

export const githubSchema = z.strictObject({
  kind: z.literal("github"),
  version: z.enum(["v3"], { message: "version must be v3" }),
  metadata,
  spec: z.strictObject({
    display: z.string().optional(),
    client_id: z.string().min(1, "client_id is required"),
    client_secret: z.string().min(1, "client_secret is required"),
    redirect_url: url("redirect_url"),
    endpoint_url: url("endpoint_url").optional(),
    api_endpoint_url: url("api_endpoint_url").optional(),
    max_session_ttl: maxSessionTtl,
    teams_to_roles: z.array(z.strictObject({ organization: z.string().min(1), team: matchValue, roles })).min(1, "teams_to_roles: map at least one team to roles"),
    ...ignored(["teams_to_logins", "client_redirect_settings", "user_matchers"]),
  }),
});

export const oidcSchema = z.strictObject({
  kind: z.literal("oidc"),
  version: z.enum(["v2", "v3"], { message: "version must be v2 or v3" }),
  metadata,
  spec: z.strictObject({
    display: z.string().optional(),
    issuer_url: url("issuer_url"),
    client_id: z.string().min(1, "client_id is required"),
    client_secret: z.string().min(1, "client_secret is required"),
    redirect_url: z.union([url("redirect_url"), z.array(url("redirect_url")).min(1)]),
    scope: z.array(z.string().min(1)).optional(),
    prompt: z.string().optional(),
    acr_values: z.string().optional(),
    max_age: z.string().optional(),
    username_claim: z.string().optional(),
    allow_unverified_email: z.boolean().optional(),
    max_session_ttl: maxSessionTtl,
    claims_to_roles: z.array(z.strictObject({ claim: z.string().min(1), value: matchValue, roles })).min(1, "claims_to_roles: map at least one claim to roles"),
    ...ignored(["provider", "google_service_account_uri", "google_service_account", "google_admin_email", "client_redirect_settings", "mfa", "pkce_mode", "user_matchers"]),
  }),
});

const keyPair = z.strictObject({ private_key: z.string().min(1), cert: z.string().min(1) });

export const samlSchema = z
  .strictObject({
    kind: z.literal("saml"),
    version: z.enum(["v2"], { message: "version must be v2" }),
    metadata,
    spec: z.strictObject({
      display: z.string().optional(),
      acs: url("acs"),
      entity_descriptor: z.string().min(1).optional(),
      entity_descriptor_url: url("entity_descriptor_url").optional(),
      issuer: z.string().optional(),
      sso: url("sso").optional(),
      cert: z.string().optional(),
      audience: z.string().optional(),
      service_provider_issuer: z.string().optional(),
      signing_key_pair: keyPair.optional(),
      assertion_key_pair: keyPair.optional(),
      allow_idp_initiated: z.boolean().optional(),
      max_session_ttl: maxSessionTtl,
      attributes_to_roles: z.array(z.strictObject({ name: z.string().min(1), value: matchValue, roles })).min(1, "attributes_to_roles: map at least one attribute to roles"),
      ...ignored(["provider", "encryption_key_pair", "client_redirect_settings", "single_logout_url", "mfa", "force_authn", "preferred_request_binding", "user_matchers"]),
    }),
  })
  .refine((c) => c.spec.entity_descriptor || c.spec.entity_descriptor_url, { message: "give entity_descriptor or entity_descriptor_url", path: ["spec", "entity_descriptor"] });

export type GithubConnector = z.infer<typeof githubSchema>;
export type OidcConnector = z.infer<typeof oidcSchema>;
export type SamlConnector = z.infer<typeof samlSchema>;
export type Connector = GithubConnector | OidcConnector | SamlConnector;
export const CONNECTOR_KINDS = ["github", "oidc", "saml"] as const;
export type ConnectorKind = (typeof CONNECTOR_KINDS)[number];

/** The roles a connector can hand out (so they can be checked to exist). */
export function connectorRoles(c: Connector): string[] {
  const maps = c.kind === "github" ? c.spec.teams_to_roles : c.kind === "oidc" ? c.spec.claims_to_roles : c.spec.attributes_to_roles;
  return [...new Set(maps.flatMap((m) => m.roles))];
}

/** The same connector with its secrets removed (what `get` shows without --with-secrets). */
export function withoutSecrets(c: Connector): Connector {
  const copy = structuredClone(c) as Connector;
  if (copy.kind === "saml") {
    for (const pair of [copy.spec.signing_key_pair, copy.spec.assertion_key_pair]) if (pair) delete (pair as { private_key?: string }).private_key;
  } else {
    delete (copy.spec as { client_secret?: string }).client_secret;
  }
  return copy;
}
