/**
 * What a SAML identity provider's metadata says that a service provider
 * needs: its entity id, where to send the browser (HTTP-Redirect binding),
 * and the certificates its signatures verify with. Pure.
 */
import { DOMParser, type Element } from "@xmldom/xmldom";

const MD = "urn:oasis:names:tc:SAML:2.0:metadata";
const DS = "http://www.w3.org/2000/09/xmldsig#";
const REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";

export interface IdpMetadata {
  entityId: string;
  ssoUrl: string;
  /** Base64 DER of each signing certificate. */
  signingCerts: string[];
}

export function parseIdpMetadata(xml: string): IdpMetadata {
  let doc;
  try {
    doc = new DOMParser().parseFromString(xml, "text/xml");
  } catch (e) {
    throw new Error(`entity_descriptor is not XML: ${(e as Error).message}`);
  }
  const root = doc.documentElement;
  if (!root || root.namespaceURI !== MD || root.localName !== "EntityDescriptor") throw new Error("entity_descriptor must be a SAML metadata EntityDescriptor");
  const idp = root.getElementsByTagNameNS(MD, "IDPSSODescriptor")[0];
  if (!idp) throw new Error("entity_descriptor has no IDPSSODescriptor");
  const sso = [...elements(idp, MD, "SingleSignOnService")].find((e) => e.getAttribute("Binding") === REDIRECT);
  if (!sso?.getAttribute("Location")) throw new Error("entity_descriptor has no SingleSignOnService with the HTTP-Redirect binding");
  const signingCerts = [...elements(idp, MD, "KeyDescriptor")]
    .filter((k) => !k.getAttribute("use") || k.getAttribute("use") === "signing")
    .flatMap((k) => [...elements(k, DS, "X509Certificate")].map((c) => (c.textContent ?? "").replace(/\s+/g, "")))
    .filter(Boolean);
  if (signingCerts.length === 0) throw new Error("entity_descriptor has no signing certificate");
  return { entityId: root.getAttribute("entityID") ?? "", ssoUrl: sso.getAttribute("Location")!, signingCerts };
}

function elements(parent: Element, ns: string, name: string): Element[] {
  return Array.from(parent.getElementsByTagNameNS(ns, name) as unknown as ArrayLike<Element>);
}

/** One certificate of the assertion, as PEM (what node-saml verifies with). */
export function certPem(base64Der: string): string {
  return `-----BEGIN CERTIFICATE-----\n${base64Der.match(/.{1,64}/g)!.join("\n")}\n-----END CERTIFICATE-----`;
}
