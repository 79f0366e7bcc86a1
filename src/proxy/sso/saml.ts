/**
 * SAML 2.0, service-provider initiated, with @node-saml/node-saml: signed
 * assertions are required; signature, audience, time window and
 * InResponseTo are checked by the library, the recipient here. Replay: a
 * response must answer an outstanding request, and the library deletes each
 * request id on first use (kept in the backend, so every replica agrees).
 * Attributes become traits and `attributes_to_roles` picks the roles.
 */
import { SAML, type CacheProvider, type Profile } from "@node-saml/node-saml";
import { DOMParser } from "@xmldom/xmldom";
import { AzgateError } from "../../errors/index.ts";
import type { SamlConnector } from "../../resources/connector.ts";
import { claimsToTraits, rolesFromTraits } from "../../sso/mapping.ts";
import { certPem, parseIdpMetadata, type IdpMetadata } from "../../sso/saml-metadata.ts";
import type { ProxyContext } from "../context.ts";
import { KEYS, secretHash } from "../keys.ts";
import type { SsoIdentity } from "./finish.ts";
import { ttlCache } from "../../util/ttl-cache.ts";
import { systemClock } from "../../util/clock.ts";

const ASSERTION = "urn:oasis:names:tc:SAML:2.0:assertion";
const CLOCK_SKEW_MS = 60_000;
/** Metadata fetched from entity_descriptor_url, for 5 minutes. */
// The IdP's documents, refreshed every 5 minutes: a cache, not an access decision, so the machine's clock.
const fetched = ttlCache<IdpMetadata>(5 * 60_000, systemClock);

async function idpMetadata(c: SamlConnector): Promise<IdpMetadata> {
  if (c.spec.entity_descriptor) return parse(c, c.spec.entity_descriptor);
  const url = c.spec.entity_descriptor_url!;
  return fetched(JSON.stringify([url, c.spec.issuer, c.spec.sso]), async () => {
    const res = await fetch(url).catch((e: Error) => {
      throw new AzgateError("sso_failed", `cannot fetch the SAML metadata from ${url}: ${e.message}`);
    });
    if (!res.ok) throw new AzgateError("sso_failed", `cannot fetch the SAML metadata from ${url}: HTTP ${res.status}`);
    return parse(c, await res.text());
  });
}

function parse(c: SamlConnector, xml: string): IdpMetadata {
  try {
    const m = parseIdpMetadata(xml);
    // Fields set on the connector win over the metadata, as in Teleport.
    return { entityId: c.spec.issuer ?? m.entityId, ssoUrl: c.spec.sso ?? m.ssoUrl, signingCerts: m.signingCerts };
  } catch (e) {
    throw new AzgateError("sso_failed", `saml connector "${c.metadata.name}": ${(e as Error).message}`);
  }
}

/** Outstanding request ids live in the backend, so any proxy replica can take the response. */
function requestCache(ctx: ProxyContext, ttlMs: number): CacheProvider {
  return {
    async saveAsync(key, value) {
      await ctx.backend.put(KEYS.samlRequest(secretHash(key)), value, { expires: new Date(ctx.clock.now() + ttlMs) });
      return { value, createdAt: ctx.clock.now() };
    },
    async getAsync(key) {
      return ((await ctx.backend.get<string>(KEYS.samlRequest(secretHash(key))))?.value as string) ?? null;
    },
    async removeAsync(key) {
      if (key) await ctx.backend.delete(KEYS.samlRequest(secretHash(key)));
      return key;
    },
  };
}

async function client(ctx: ProxyContext, c: SamlConnector, requestId?: string): Promise<SAML> {
  const idp = await idpMetadata(c);
  const ttlMs = ctx.settings.ssoLoginTimeoutMs;
  return new SAML({
    callbackUrl: c.spec.acs,
    entryPoint: idp.ssoUrl,
    issuer: c.spec.service_provider_issuer ?? c.spec.acs,
    audience: c.spec.audience ?? c.spec.acs,
    idpIssuer: idp.entityId || undefined,
    idpCert: idp.signingCerts.map(certPem),
    privateKey: c.spec.signing_key_pair?.private_key,
    wantAssertionsSigned: true,
    wantAuthnResponseSigned: false,
    acceptedClockSkewMs: CLOCK_SKEW_MS,
    validateInResponseTo: "always" as never,
    requestIdExpirationPeriodMs: ttlMs,
    cacheProvider: requestCache(ctx, ttlMs),
    generateUniqueId: requestId ? () => requestId : undefined,
    identifierFormat: null,
    disableRequestedAuthnContext: true,
  });
}

export async function samlStart(ctx: ProxyContext, c: SamlConnector, relayState: string): Promise<{ url: string; protocol: { saml_request_id: string } }> {
  const requestId = `_${crypto.randomUUID()}`;
  const saml = await client(ctx, c, requestId);
  return { url: await saml.getAuthorizeUrlAsync(relayState, undefined, {}), protocol: { saml_request_id: requestId } };
}

/** The POST to the ACS: validate, check it answers this attempt's request and recipient; map attributes. */
export async function samlAcs(ctx: ProxyContext, c: SamlConnector, samlResponse: string, expectedRequestId: string): Promise<SsoIdentity> {
  const saml = await client(ctx, c);
  let profile: Profile | null;
  try {
    ({ profile } = await saml.validatePostResponseAsync({ SAMLResponse: samlResponse }));
  } catch (e) {
    throw new AzgateError("sso_failed", `the SAML response was refused: ${(e as Error).message}`);
  }
  if (!profile) throw new AzgateError("sso_failed", "the SAML response carries no assertion");
  const assertion = readAssertion(profile.getAssertionXml?.() ?? "");
  if (assertion.inResponseTo !== expectedRequestId) throw new AzgateError("sso_failed", "the SAML assertion answers another login request");
  if (assertion.recipient !== c.spec.acs) throw new AzgateError("sso_failed", `the SAML assertion is for recipient ${assertion.recipient || "(none)"}, not ${c.spec.acs}`);

  const raw = profile.nameID || String(profile.email ?? profile.mail ?? "");
  if (!raw) throw new AzgateError("sso_failed", "the SAML assertion names no user (no NameID, email or mail)");
  const traits = claimsToTraits((profile.attributes as Record<string, unknown>) ?? {});
  return { user: raw, subject: `saml:${profile.issuer ?? ""}:${profile.nameID ?? raw}`, roles: rolesFromTraits(c.spec.attributes_to_roles, traits), traits };
}

/** The parts of the (already verified) assertion node-saml does not check for us. */
function readAssertion(xml: string): { inResponseTo?: string; recipient?: string } {
  const doc = new DOMParser().parseFromString(xml, "text/xml");
  const data = doc.documentElement!.getElementsByTagNameNS(ASSERTION, "SubjectConfirmationData")[0];
  return { inResponseTo: data?.getAttribute("InResponseTo") ?? undefined, recipient: data?.getAttribute("Recipient") ?? undefined };
}
