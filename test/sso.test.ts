/**
 * The pure parts of SSO: claims to traits, the connectors' role mappings,
 * SAML metadata, and which loopback URLs may receive a login's code.
 */
import { describe, expect, it } from "vitest";
import { claimsToTraits, rolesFromTeams, rolesFromTraits, ssoUserName } from "../src/sso/mapping.ts";
import { traitsProblem } from "../src/resources/user.ts";
import { parseIdpMetadata } from "../src/sso/saml-metadata.ts";
import { checkClientRedirect } from "../src/proxy/sso/attempt.ts";
import { parseResources } from "../src/resources/parse.ts";

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

  it("turns an IdP's name into a user name, or refuses one that cannot be", () => {
    expect(ssoUserName("alice@example.com")).toBe("alice@example.com");
    expect(ssoUserName("Alice Smith")).toBe("Alice_Smith");
    expect(ssoUserName("  ")).toBeNull();
    expect(ssoUserName("-leading")).toBeNull();
    // Too long is refused, not cut (cutting made two people one user).
    expect(ssoUserName("a".repeat(129))).toBeNull();
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
