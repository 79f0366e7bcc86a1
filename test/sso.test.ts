/**
 * The pure parts of SSO: claims to traits, the connectors' role mappings,
 * SAML metadata, and which loopback URLs may receive a login's code; and,
 * on real state in process, how a login's user name is taken (the protocols
 * themselves run against real identity providers in test/e2e/sso-*).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { claimsToTraits, rolesFromTeams, rolesFromTraits, ssoUserName } from "../src/sso/mapping.ts";
import { traitsProblem } from "../src/resources/user.ts";
import { parseIdpMetadata } from "../src/sso/saml-metadata.ts";
import { checkClientRedirect } from "../src/proxy/sso/attempt.ts";
import { parseResources } from "../src/resources/parse.ts";
import { openState, settingsFrom } from "../src/proxy/state.ts";
import { configSchema } from "../src/config/schema.ts";
import type { ProxyContext } from "../src/proxy/context.ts";
import { newAttemptId, pendingAttempt, saveAttempt } from "../src/proxy/sso/attempt.ts";
import { finishSsoLogin, type SsoEnd } from "../src/proxy/sso/finish.ts";
import { oidcIdentity } from "../src/proxy/sso/oidc.ts";
import { oidcSchema, type OidcConnector } from "../src/resources/connector.ts";
import { KEYS } from "../src/proxy/keys.ts";
import type { User } from "../src/resources/user.ts";
import { tempDir } from "./helpers/azgate.ts";
import { FakeClock } from "./helpers/fake-clock.ts";

describe("claims and attributes to traits and roles", () => {
  it("keeps strings, numbers and booleans as lists of strings and drops what a template cannot use", () => {
    expect(claimsToTraits({ groups: ["a", "b"], email: "x@example.com", level: 3, admin: false, address: { street: "s" }, none: null, mixed: ["ok", { no: 1 }] })).toEqual({
      groups: ["a", "b"],
      email: ["x@example.com"],
      level: ["3"],
      admin: ["false"],
      mixed: ["ok"],
    });
  });

  it("matches a rule by literal, glob or regular expression, in rule order without repeats", () => {
    const rules = [
      { name: "groups", value: "admins", roles: ["editor", "access"] },
      { name: "groups", value: "azure-*", roles: ["azure-cli-access"] },
      { name: "dept", value: "^(eng|ops)$", roles: ["access"] },
    ];
    expect(rolesFromTraits(rules, { groups: ["admins", "azure-readers"], dept: ["eng"] })).toEqual(["editor", "access", "azure-cli-access"]);
    expect(rolesFromTraits(rules, { groups: ["administrators"], dept: ["engineering"] })).toEqual([]);
    expect(rolesFromTraits(rules, {})).toEqual([]);
  });

  it("maps GitHub teams by organization and team, case-insensitively, and never across organizations", () => {
    const rules = [{ organization: "Octocats", team: "azure-admins", roles: ["azure-cli-access"] }];
    expect(rolesFromTeams(rules, [{ organization: "octocats", team: "Azure-Admins" }])).toEqual(["azure-cli-access"]);
    expect(rolesFromTeams(rules, [{ organization: "other-org", team: "azure-admins" }])).toEqual([]);
  });

  it("takes an IdP's name as it is when it is a user name, and refuses it otherwise: never cleaned or cut (two people would become one name)", () => {
    expect(ssoUserName("alice@example.com")).toBe("alice@example.com");
    expect(ssoUserName("ops_lead@example.com")).toBe("ops_lead@example.com");
    for (const bad of ["ops/lead@example.com", "Alice Smith", " alice", "DOMAIN\\alice", "  ", "-leading", "a".repeat(129), "a\u0000b"]) expect(ssoUserName(bad), bad).toBeNull();
  });

  it("bounds what claims become traits: a 300 kB claim cannot reach a certificate", () => {
    const traits = claimsToTraits({ huge: "x".repeat(300_000), groups: Array.from({ length: 1000 }, (_, i) => `g${i}`), ok: "fine", ...Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`c${i}`, "v"])) });
    expect(traits.huge).toBeUndefined();
    expect(traits.groups).toHaveLength(256);
    expect(traits.ok).toEqual(["fine"]);
    expect(Object.keys(traits).length).toBeLessThanOrEqual(128);
    expect(JSON.stringify(traits).length).toBeLessThan(64 * 1024);
  });

  it("drops claim values and names with control characters (a NUL would fail the login on PostgreSQL): the traits any user may hold", () => {
    const traits = claimsToTraits({ groups: ["ops", "ops\u0000admin", "dev\u001b[2J"], "bad\u0000name": "v", fine: "ok" });
    expect(traits).toEqual({ groups: ["ops"], fine: ["ok"] });
    expect(traitsProblem(traits)).toBeNull();
  });
});

const METADATA = (body: string) =>
  `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.example.com/metadata">${body}</md:EntityDescriptor>`;
const KEY = `<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>MIIB
  AAAA</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>ENCR</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>`;
const REDIRECT_SSO = `<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.example.com/post"/><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.com/sso"/>`;

describe("SAML metadata", () => {
  it("reads the entity id, the HTTP-Redirect SSO location and the signing certificates only", () => {
    expect(parseIdpMetadata(METADATA(`<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">${KEY}${REDIRECT_SSO}</md:IDPSSODescriptor>`))).toEqual({
      entityId: "https://idp.example.com/metadata",
      ssoUrl: "https://idp.example.com/sso",
      signingCerts: ["MIIBAAAA"],
    });
  });

  it("says what is missing", () => {
    expect(() => parseIdpMetadata("<html/>")).toThrow(/must be a SAML metadata EntityDescriptor/);
    expect(() => parseIdpMetadata(METADATA(""))).toThrow(/no IDPSSODescriptor/);
    expect(() => parseIdpMetadata(METADATA(`<md:IDPSSODescriptor>${KEY}</md:IDPSSODescriptor>`))).toThrow(/no SingleSignOnService with the HTTP-Redirect binding/);
    expect(() => parseIdpMetadata(METADATA(`<md:IDPSSODescriptor>${REDIRECT_SSO}</md:IDPSSODescriptor>`))).toThrow(/no signing certificate/);
  });
});

describe("where a login's code may go", () => {
  it("accepts only the CLI's own loopback callback over http", () => {
    expect(checkClientRedirect("http://127.0.0.1:43123/callback")).toBe("http://127.0.0.1:43123/callback");
    expect(checkClientRedirect("http://[::1]:43123/callback")).toBe("http://[::1]:43123/callback");
    const bads = ["https://evil.example.com/callback", "http://example.com/callback", "http://user:pw@127.0.0.1:1/callback", "javascript:alert(1)", "not a url"];
    // Another local service's path or port-less address, a name that DNS may resolve elsewhere, extra query.
    bads.push("http://127.0.0.1:8080/anything", "http://127.0.0.1/callback", "http://localhost:43123/callback", "http://127.0.0.1:43123/callback?next=/admin", "http://127.0.0.1:43123/callback/../x");
    for (const bad of bads) {
      expect(() => checkClientRedirect(bad), bad).toThrow(/redirect_url must be/);
    }
  });
});

describe("connector max_session_ttl", () => {
  const oidc = (ttl: string) =>
    `kind: oidc\nversion: v3\nmetadata: {name: corp}\nspec:\n  issuer_url: https://idp.example.com\n  client_id: a\n  client_secret: b\n  redirect_url: https://proxy.example.com/v1/webapi/oidc/callback\n  max_session_ttl: "${ttl}"\n  claims_to_roles: [{claim: groups, value: x, roles: [access]}]\n`;
  it("takes a duration and names the field when it is not one", () => {
    expect(parseResources(oidc("8h"), "c.yaml").resources[0]).toMatchObject({ spec: { max_session_ttl: "8h" } });
    expect(() => parseResources(oidc("a while"), "c.yaml")).toThrow(/max_session_ttl must be a duration/);
  });
});

describe("SSO user names on real state: whoever signs in first blocks nobody", () => {
  let ctx: ProxyContext;
  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ ctx, close } = await openState(tempDir("azgate-sso-"), { clusterName: "sso", settings: settingsFrom(configSchema.parse({})), purpose: "sso names test", clock: new FakeClock() }));
  });
  afterAll(async () => close?.());

  const corp = (usernameClaim?: string): OidcConnector =>
    oidcSchema.parse({ kind: "oidc", version: "v3", metadata: { name: "corp" }, spec: { issuer_url: "https://idp.example.com", client_id: "azgate", client_secret: "s", redirect_url: "https://proxy.example.com/v1/webapi/oidc/callback", ...(usernameClaim ? { username_claim: usernameClaim } : {}), claims_to_roles: [{ claim: "groups", value: "azure-*", roles: ["access"] }] } });
  const person = (sub: string, claims: Record<string, unknown>) => ({ iss: "https://idp.example.com", sub, email_verified: true, groups: ["azure-users"], ...claims });
  /** One web sign-in through connector `c`, from the IdP's verified claims to the end finishSsoLogin makes of it. */
  async function signIn(c: OidcConnector, claims: Record<string, unknown>): Promise<SsoEnd> {
    const id = newAttemptId();
    await saveAttempt(ctx, id, { kind: "oidc", connector: "corp", public_key_pem: "", client_redirect: "", secret_hash: "", protocol: {}, remote_addr: "203.0.113.7", web: { browser_hash: "00" } });
    return finishSsoLogin(ctx, c, await pendingAttempt(ctx, id, "oidc"), oidcIdentity(c, claims));
  }
  const nameOf = (end: SsoEnd) => ("web" in end ? end.web.name : end.identity.name);
  const failures = async (subject: string) => (await ctx.audit.search({ event: "user.login" })).filter((e) => e.subject === subject && e.success === false);
  const boundTo = async (name: string) => (await ctx.backend.get<User>(KEYS.user(name)))?.value.spec.created_by?.connector?.subject;

  it.each([
    ["the name azgate cannot take signs in first", "a.example"],
    ["the name azgate can take signs in first", "b.example"],
  ])("ops/lead@ and ops_lead@: %s; either way ops_lead@ signs in as itself and ops/lead@ is refused with what the admin changes, audited", async (order, domain) => {
    const slash = person(`sub-slash-${domain}`, { email: `ops/lead@${domain}` });
    const underscore = person(`sub-underscore-${domain}`, { email: `ops_lead@${domain}` });
    const attempts = order.includes("cannot") ? [slash, underscore, slash] : [underscore, slash, underscore];
    for (const claims of attempts) {
      if (claims === underscore) {
        expect(nameOf(await signIn(corp(), claims))).toBe(`ops_lead@${domain}`);
      } else {
        await expect(signIn(corp(), claims)).rejects.toMatchObject({
          code: "sso_failed",
          message: expect.stringContaining(`oidc connector "corp" names this user "ops/lead@${domain}", which is not an azgate user name`),
        });
        await expect(signIn(corp(), claims)).rejects.toThrow(`Ask an administrator to set connector "corp"'s username_claim (now "email") to a claim whose values are such names`);
      }
    }
    // The name is the person's whose name it is, whatever the order; the other person left no record.
    expect(await boundTo(`ops_lead@${domain}`)).toBe(`oidc:https://idp.example.com:sub-underscore-${domain}`);
    expect(await failures(`oidc:https://idp.example.com:sub-underscore-${domain}`)).toEqual([]);
    const refused = await failures(`oidc:https://idp.example.com:sub-slash-${domain}`);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]).toMatchObject({ event: "user.login", idp_user: `ops/lead@${domain}`, connector: "corp", method: "oidc", via: "web", remote_addr: "203.0.113.7", error: "the identity provider's user name is not an azgate user name" });
    expect(refused[0].user).toBeUndefined();
  });

  it("once username_claim names each person as azgate allows, both sign in, each as themselves and bound to their own subject", async () => {
    const one = person("sub-one", { email: "ops/lead@c.example", preferred_username: "ops.lead" });
    const two = person("sub-two", { email: "ops_lead@c.example", preferred_username: "ops_lead" });
    expect(nameOf(await signIn(corp("preferred_username"), one))).toBe("ops.lead");
    expect(nameOf(await signIn(corp("preferred_username"), two))).toBe("ops_lead");
    expect(nameOf(await signIn(corp("preferred_username"), one))).toBe("ops.lead");
    expect(await boundTo("ops.lead")).toBe("oidc:https://idp.example.com:sub-one");
    expect(await boundTo("ops_lead")).toBe("oidc:https://idp.example.com:sub-two");
    // The one conflict left, the very same name for two people, is still refused and never merged, with what to change.
    await expect(signIn(corp("preferred_username"), person("sub-three", { preferred_username: "ops.lead" }))).rejects.toMatchObject({
      code: "already_exists",
      message: expect.stringContaining(`the user name "ops.lead" is in use by another person's sign-in (oidc connector "corp"); ask an administrator to set connector "corp"'s username_claim (now "preferred_username") to a claim whose values are names unique to each person`),
    });
    expect(await boundTo("ops.lead")).toBe("oidc:https://idp.example.com:sub-one");
    expect(await failures("oidc:https://idp.example.com:sub-three")).toEqual([expect.objectContaining({ user: "ops.lead", error: "user name held by another SSO identity" })]);
  });
});
