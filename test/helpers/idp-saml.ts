/**
 * A SAML identity provider on loopback, built on samlify in IdP mode: it
 * publishes metadata, takes the SP's AuthnRequest (HTTP-Redirect), shows a
 * login page that checks a password, and posts a signed assertion with the
 * account's attributes to the ACS. `misbehave` makes the next responses
 * wrong in one way, for the refusal tests.
 */
import "reflect-metadata";
import { Hono } from "hono";
import { html } from "hono/html";
import * as samlify from "samlify";
import { x509 } from "../../src/pki/x509.ts";
import { serve } from "../../src/runtime/index.ts";

// The SP's requests come from azgate under test; their XML schema is not what is tested here.
samlify.setSchemaValidator({ validate: async () => "skipped by the test IdP" });

export type Misbehaviour = "none" | "unsigned" | "tampered" | "other-audience" | "other-recipient" | "expired";

export interface SamlAccount {
  password: string;
  attributes: Record<string, string[]>;
}

export interface SamlIdp {
  metadataUrl: string;
  metadataXml: string;
  misbehave: Misbehaviour;
  /** Every SAMLResponse (base64) this IdP posted, newest last. */
  posted: { samlResponse: string; relayState: string }[];
  close(): Promise<void>;
}

async function signingKeyPair(): Promise<{ certPem: string; keyPem: string }> {
  const alg = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256", publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
  const keys = (await crypto.subtle.generateKey(alg, true, ["sign", "verify"])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({ serialNumber: "01", name: "CN=test saml idp", notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000), keys, signingAlgorithm: alg });
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey("pkcs8", keys.privateKey)).toString("base64");
  return { certPem: cert.toString("pem"), keyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join("\n")}\n-----END PRIVATE KEY-----\n` };
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

export async function startSamlIdp(o: { acs: string; spEntityId?: string; accounts: Record<string, SamlAccount> }): Promise<SamlIdp> {
  const { certPem, keyPem } = await signingKeyPair();
  const app = new Hono();
  const server = await serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 });
  const base = `http://127.0.0.1:${server.port}`;
  const spEntityId = o.spEntityId ?? o.acs;
  const idp = samlify.IdentityProvider({
    entityID: `${base}/metadata`,
    signingCert: certPem,
    privateKey: keyPem,
    nameIDFormat: ["urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"],
    singleSignOnService: [{ Binding: "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect", Location: `${base}/sso` }],
  });
  const sp = samlify.ServiceProvider({
    entityID: spEntityId,
    wantAssertionsSigned: true,
    assertionConsumerService: [{ Binding: "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST", Location: o.acs }],
  });
  const state: SamlIdp = { metadataUrl: `${base}/metadata`, metadataXml: idp.getMetadata(), misbehave: "none", posted: [], close: () => server.close() };

  app.get("/metadata", (c) => c.body(state.metadataXml, 200, { "content-type": "application/samlmetadata+xml" }));

  app.get("/sso", async (c) => {
    const { extract } = await idp.parseLoginRequest(sp, "redirect", { query: c.req.query(), octetString: "" } as never);
    return c.html(loginPage(String(extract.request?.id ?? ""), c.req.query("RelayState") ?? "", ""));
  });

  app.post("/sso", async (c) => {
    const form = await c.req.parseBody();
    const get = (k: string) => String(form[k] ?? "");
    const account = o.accounts[get("username")];
    if (!account || account.password !== get("password")) return c.html(loginPage(get("request_id"), get("relay_state"), "wrong user name or password"), 401);
    const xml = await signedResponse(get("request_id"), get("username"), account);
    const samlResponse = Buffer.from(xml).toString("base64");
    state.posted.push({ samlResponse, relayState: get("relay_state") });
    return c.html(html`<!doctype html><html><body><form method="post" action="${o.acs}">
      <input type="hidden" name="SAMLResponse" value="${samlResponse}"><input type="hidden" name="RelayState" value="${get("relay_state")}">
      <button type="submit" id="continue">Continue</button></form></body></html>`);
  });

  async function signedResponse(requestId: string, user: string, account: SamlAccount): Promise<string> {
    // "expired": issued 20 minutes ago and valid for 5.
    const now = new Date(Date.now() - (state.misbehave === "expired" ? 20 * 60_000 : 0));
    const later = new Date(now.getTime() + 5 * 60_000).toISOString();
    const attributes = Object.entries(account.attributes)
      .map(([name, values]) => `<saml:Attribute Name="${esc(name)}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">${values.map((v) => `<saml:AttributeValue xsi:type="xs:string">${esc(v)}</saml:AttributeValue>`).join("")}</saml:Attribute>`)
      .join("");
    const { context } = await idp.createLoginResponse(sp, { extract: { request: { id: requestId } } }, "post", { email: user }, (template: string) => {
      const id = `_${crypto.randomUUID()}`;
      const filled = template
        .replace("{AuthnStatement}", `<saml:AuthnStatement AuthnInstant="${now.toISOString()}" SessionIndex="_${crypto.randomUUID()}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:Password</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>`)
        .replace("{AttributeStatement}", `<saml:AttributeStatement>${attributes}</saml:AttributeStatement>`);
      const values = {
        ID: id,
        AssertionID: `_${crypto.randomUUID()}`,
        Destination: o.acs,
        Audience: state.misbehave === "other-audience" ? "urn:example:another-service" : spEntityId,
        SubjectRecipient: state.misbehave === "other-recipient" ? "https://elsewhere.example.com/acs" : o.acs,
        Issuer: `${base}/metadata`,
        IssueInstant: now.toISOString(),
        StatusCode: "urn:oasis:names:tc:SAML:2.0:status:Success",
        ConditionsNotBefore: now.toISOString(),
        ConditionsNotOnOrAfter: later,
        SubjectConfirmationDataNotOnOrAfter: later,
        NameIDFormat: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        NameID: user,
        InResponseTo: requestId,
      };
      return { id, context: samlify.SamlLib.replaceTagsByValue(filled, values) };
    });
    let xml = Buffer.from(context, "base64").toString("utf8");
    if (state.misbehave === "unsigned") xml = xml.replace(/<ds:Signature[\s\S]*?<\/ds:Signature>/g, "");
    // A value changed after signing: e.g. a group the user is not in.
    if (state.misbehave === "tampered") xml = xml.replace(/(<saml:Attribute Name="groups"[^>]*><saml:AttributeValue[^>]*>)[^<]*/, "$1azure-admins");
    return xml;
  }

  return state;
}

function loginPage(requestId: string, relayState: string, error: string) {
  return html`<!doctype html><html><head><title>Test SAML IdP</title></head><body><h1>Sign in</h1>
    ${error ? html`<p id="error">${error}</p>` : ""}
    <form method="post" action="/sso"><input type="hidden" name="request_id" value="${requestId}"><input type="hidden" name="relay_state" value="${relayState}">
    <label>User <input name="username"></label><label>Password <input name="password" type="password"></label>
    <button type="submit" id="sign-in">Sign in</button></form></body></html>`;
}
