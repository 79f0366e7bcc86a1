import { x509 } from "./x509.ts";
import { AzgateError } from "../errors/index.ts";
import type { Authority, CaKey } from "./authority.ts";
import { escapeDn } from "./authority.ts";
import { EC_ALG } from "./keys.ts";
import { IDENTITY_OID, decodeIdentity, encodeIdentity, type Identity } from "./identity.ts";
import { randomSerial } from "./serial.ts";

const CLOCK_SKEW_MS = 60_000;

/** Signs a leaf certificate for `publicKey` with the CA at `now`; never valid past the CA itself. */
async function signLeaf(opts: { ca: CaKey; publicKey: CryptoKey; subject: string; now: Date; notAfter: Date; extensions: x509.Extension[] }): Promise<x509.X509Certificate> {
  const notAfter = opts.notAfter.getTime() > opts.ca.cert.notAfter.getTime() ? opts.ca.cert.notAfter : opts.notAfter;
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${escapeDn(opts.subject)}`,
    issuer: opts.ca.cert.subject,
    notBefore: new Date(opts.now.getTime() - CLOCK_SKEW_MS),
    notAfter,
    signingKey: opts.ca.key,
    publicKey: opts.publicKey,
    signingAlgorithm: EC_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      await x509.AuthorityKeyIdentifierExtension.create(opts.ca.cert, false),
      ...opts.extensions,
    ],
  });
}

/** A client certificate (user, local admin, or host) binding a public key to an identity. */
export function issueIdentityCert(opts: { ca: Authority; publicKey: CryptoKey; identity: Identity; now: Date; notAfter: Date }): Promise<x509.X509Certificate> {
  return signLeaf({
    ...opts,
    subject: opts.identity.name,
    extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false), new x509.Extension(IDENTITY_OID, false, encodeIdentity(opts.identity))],
  });
}

/** The proxy's TLS server certificate when the operator gives none. */
export function issueServerCert(opts: { ca: CaKey; publicKey: CryptoKey; dnsNames: string[]; ips: string[]; now: Date; notAfter: Date }): Promise<x509.X509Certificate> {
  const names = [...opts.dnsNames.map((value) => ({ type: "dns" as const, value })), ...opts.ips.map((value) => ({ type: "ip" as const, value }))];
  return signLeaf({
    ...opts,
    subject: opts.dnsNames[0] ?? opts.ips[0] ?? "azgate",
    extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false), new x509.SubjectAlternativeNameExtension(names, false)],
  });
}

/**
 * A certificate signed by a CA that a rotation retired: refused as ca_retired,
 * with what the certificate says (it is ours, from before), so the refusal is
 * audited: a client or agent that missed the rotation, or a retired key in
 * other hands.
 */
export class RetiredCertificate extends AzgateError {
  constructor(
    message: string,
    readonly identity: Identity | null,
    readonly caPin: string,
  ) {
    super("ca_retired", message);
  }
}

function identityOrNull(cert: x509.X509Certificate): Identity | null {
  try {
    return identityOf(cert);
  } catch {
    return null;
  }
}

function retiredMessage(cert: x509.X509Certificate, ca: { pin: string; retired: string }, current: readonly string[]): string {
  const kind = identityOrNull(cert)?.kind;
  const what =
    kind === "host" ? `join this agent again: create a token with "azgate admin tokens add --type=app" and start the agent with --token <token> --ca-pin ${current[0] ?? "(see azgate admin status)"}` :
    kind === "local-admin" ? "the proxy writes new local admin credentials when its CA changes; run the command again" :
    "run azgate login again";
  return `this certificate is from the cluster's CA ${ca.pin}, retired by a rotation at ${ca.retired}; the cluster's CA is now ${current.join(" and ") || "another"}: ${what}`;
}

export function identityOf(cert: x509.X509Certificate): Identity {
  const ext = cert.getExtension(IDENTITY_OID);
  if (!ext) throw new AzgateError("cert_untrusted", "certificate carries no azgate identity");
  return decodeIdentity(ext.value);
}

/** A CA a rotation retired (pki/rotation.ts), and the pins in force now: said to whoever still holds one of its certificates. */
export interface RetiredCas {
  retired: readonly { cert: x509.X509Certificate; pin: string; retired: string }[];
  /** The pins of the CAs trusted now. */
  current: readonly string[];
}

/** Which of `cas` signed `cert`, or null. */
export async function issuerOf<T extends x509.X509Certificate>(cert: x509.X509Certificate, cas: readonly T[]): Promise<T | null> {
  for (const ca of cas) {
    if (cert.issuer !== ca.subject) continue;
    if (await cert.verify({ publicKey: ca.publicKey, signatureOnly: true })) return ca;
  }
  return null;
}

/**
 * Checks that `cert` was signed by one of `cas` and is valid now. Distinct
 * codes: a foreign or forged certificate is cert_untrusted, an old one
 * cert_expired, one from a CA a rotation retired ca_retired (saying what to do).
 */
export async function verifyIdentityCert(cert: x509.X509Certificate, cas: readonly x509.X509Certificate[], now: Date, retired?: RetiredCas): Promise<Identity> {
  return (await verifyIdentityCertIssuer(cert, cas, now, retired)).identity;
}

/** verifyIdentityCert, also saying which of `cas` signed it (a tunnel remembers it: a rotation may retire that CA). */
export async function verifyIdentityCertIssuer(cert: x509.X509Certificate, cas: readonly x509.X509Certificate[], now: Date, retired?: RetiredCas): Promise<{ identity: Identity; issuer: x509.X509Certificate }> {
  const issuer = await issuerOf(cert, cas);
  if (!issuer) {
    const gone = retired && (await issuerOf(cert, retired.retired.map((r) => r.cert)));
    if (gone) {
      const ca = retired!.retired.find((r) => r.cert === gone)!;
      throw new RetiredCertificate(retiredMessage(cert, ca, retired!.current), identityOrNull(cert), ca.pin);
    }
    throw new AzgateError("cert_untrusted", "certificate was not issued by this cluster; run azgate login again");
  }
  if (now.getTime() < cert.notBefore.getTime() - CLOCK_SKEW_MS) throw new AzgateError("cert_untrusted", "certificate is not valid yet; check this machine's clock");
  if (now.getTime() > cert.notAfter.getTime()) {
    throw new AzgateError("cert_expired", `your session expired at ${cert.notAfter.toISOString()}; run azgate login again`);
  }
  return { identity: identityOf(cert), issuer };
}
