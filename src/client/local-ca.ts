/**
 * The workstation's local CA for TLS interception: made per app session,
 * valid no longer than the app certificate, key stored 0600. Leaf
 * certificates are minted per host name on first use and cached.
 */
import tls from "node:tls";
import { x509 } from "../pki/x509.ts";
import { EC_ALG, generateKeyPair, importPrivateKeyPem, privateKeyToPem } from "../pki/keys.ts";
import { randomSerial } from "../pki/serial.ts";

export interface LocalCaFiles {
  certPem: string;
  keyPem: string;
}

export async function createLocalCa(notAfter: Date): Promise<LocalCaFiles> {
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: "CN=azgate local CA, O=azgate",
    notBefore: new Date(Date.now() - 60_000),
    notAfter,
    keys,
    signingAlgorithm: EC_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString("pem") + "\n", keyPem: await privateKeyToPem(keys.privateKey) };
}

/** Mints and caches a TLS context per host name. */
export class LeafMinter {
  private readonly contexts = new Map<string, Promise<tls.SecureContext>>();
  private leafKey: Promise<{ pair: CryptoKeyPair; pem: string }> | null = null;

  constructor(private readonly ca: LocalCaFiles) {}

  context(host: string): Promise<tls.SecureContext> {
    const name = host.toLowerCase();
    let ctx = this.contexts.get(name);
    if (!ctx) {
      ctx = this.mint(name);
      this.contexts.set(name, ctx);
    }
    return ctx;
  }

  private async mint(host: string): Promise<tls.SecureContext> {
    // One leaf key for all hosts of this session; each host gets its own certificate.
    this.leafKey ??= generateKeyPair().then(async (pair) => ({ pair, pem: await privateKeyToPem(pair.privateKey) }));
    const { pair, pem } = await this.leafKey;
    const caCert = new x509.X509Certificate(this.ca.certPem);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: `CN=${host}`,
      issuer: caCert.subject,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: caCert.notAfter,
      signingKey: await importPrivateKeyPem(this.ca.keyPem),
      publicKey: pair.publicKey,
      signingAlgorithm: EC_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension([{ type: "dns", value: host }], false),
        await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
      ],
    });
    return tls.createSecureContext({ key: pem, cert: cert.toString("pem") + "\n" + this.ca.certPem });
  }
}
