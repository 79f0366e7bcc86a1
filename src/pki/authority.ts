import { x509 } from "./x509.ts";
import * as asn1 from "@peculiar/asn1-x509";
import { AsnConvert } from "@peculiar/asn1-schema";
import { EC_ALG, generateKeyPair, importPrivateKeyPem, privateKeyToPem } from "./keys.ts";
import { randomSerial } from "./serial.ts";
import type { RotationState } from "./rotation.ts";

export type AuthorityType = "user" | "host";

/** A CA certificate and its signing key. */
export interface CaKey {
  cert: x509.X509Certificate;
  key: CryptoKey;
}

export interface Authority extends CaKey {
  type: AuthorityType;
}

/**
 * How an authority is kept in the backend (the backend dir is 0700, files
 * 0600): the CA in force and, while it rotates (pki/rotation.ts), the new one
 * and the phase, in one record so a phase and its keys change together.
 */
export interface StoredAuthority {
  type: AuthorityType;
  /** The CA in force; during a rotation, the old one. */
  cert_pem: string;
  key_pem: string;
  /** During a rotation: the new CA. */
  next?: { cert_pem: string; key_pem: string };
  /** The rotation's phase (absent: standby, never rotated). */
  rotation?: RotationState;
  /** CAs that rotations retired, newest first (certificates only, no keys): what they signed is refused as ca_retired. */
  retired?: { cert_pem: string; retired: string }[];
}

const TEN_YEARS_MS = 10 * 365 * 86_400_000;

/**
 * A cluster authority made at `now`, valid for ten years. A rotation's new CA
 * (`generation` 1 and on) carries it in its name, so the old and the new CA
 * are told apart by name as well as by key.
 */
export async function createAuthority(type: AuthorityType, clusterName: string, now: Date, generation = 0): Promise<Authority> {
  const name = `CN=${escapeDn(clusterName)}, O=azgate ${type} CA${generation > 0 ? `, OU=generation ${generation}` : ""}`;
  return { type, ...(await createSelfSignedCa(name, { now, notAfter: new Date(now.getTime() + TEN_YEARS_MS) })) };
}

/**
 * A CA that signs leaves only (path length 0): the cluster's authorities and
 * the workstation's local CA. `permittedDns`, when given, name-constrains it
 * (RFC 5280 4.2.1.10, critical): certificates it signs are valid for those
 * DNS names and their subdomains only, and for no IP address, so a stolen
 * local CA key cannot impersonate any other site to the clients that trust it.
 */
export async function createSelfSignedCa(name: string, validity: { now: Date; notAfter: Date }, permittedDns?: readonly string[]): Promise<CaKey> {
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name,
    // Back-dated a minute: a client whose clock is a little behind still accepts it.
    notBefore: new Date(validity.now.getTime() - 60_000),
    notAfter: validity.notAfter,
    keys,
    signingAlgorithm: EC_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ...(permittedDns ? [nameConstraints(permittedDns)] : []),
    ],
  });
  return { cert, key: keys.privateKey };
}

export async function storeAuthority(a: Authority): Promise<StoredAuthority> {
  return { type: a.type, cert_pem: a.cert.toString("pem") + "\n", key_pem: await privateKeyToPem(a.key) };
}

/** The CA in force (during a rotation, the old one; `next` is the new one). */
export async function loadAuthority(s: Pick<StoredAuthority, "type" | "cert_pem" | "key_pem">): Promise<Authority> {
  return { type: s.type, cert: new x509.X509Certificate(s.cert_pem), key: await importPrivateKeyPem(s.key_pem) };
}

export function escapeDn(value: string): string {
  return value.replace(/([,+"\\<>;=])/g, "\\$1");
}

function nameConstraints(dns: readonly string[]): x509.Extension {
  const ipAll = (cidr: string) => new asn1.GeneralSubtree({ base: new asn1.GeneralName({ iPAddress: cidr }) });
  const value = new asn1.NameConstraints({
    permittedSubtrees: new asn1.GeneralSubtrees(dns.map((d) => new asn1.GeneralSubtree({ base: new asn1.GeneralName({ dNSName: d }) }))),
    // Every IPv4 and IPv6 address (address and mask all zero) is excluded.
    excludedSubtrees: new asn1.GeneralSubtrees([ipAll("0.0.0.0/0"), ipAll("::/0")]),
  });
  return new x509.Extension(asn1.id_ce_nameConstraints, true, AsnConvert.serialize(value));
}
