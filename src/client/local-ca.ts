/**
 * The workstation's local CA for TLS interception: made per app session,
 * valid no longer than the app certificate, key stored 0600. Leaf
 * certificates are minted per host name on first use and cached.
 */
import tls from "node:tls";
import { x509 } from "../pki/x509.ts";
import { createSelfSignedCa, type CaKey } from "../pki/authority.ts";
import { issueServerCert } from "../pki/certificate.ts";
import { generateKeyPair, importPrivateKeyPem, privateKeyToPem } from "../pki/keys.ts";

export interface LocalCaFiles {
  certPem: string;
  keyPem: string;
}

export async function createLocalCa(notAfter: Date): Promise<LocalCaFiles> {
  const ca = await createSelfSignedCa("CN=azgate local CA, O=azgate", notAfter);
  return { certPem: ca.cert.toString("pem") + "\n", keyPem: await privateKeyToPem(ca.key) };
}

/** Mints and caches a TLS context per host name. */
export class LeafMinter {
  private readonly contexts = new Map<string, Promise<tls.SecureContext>>();
  private ca: Promise<CaKey> | null = null;
  private leafKey: Promise<{ pair: CryptoKeyPair; pem: string }> | null = null;

  constructor(private readonly files: LocalCaFiles) {}

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
    this.ca ??= importPrivateKeyPem(this.files.keyPem).then((key) => ({ cert: new x509.X509Certificate(this.files.certPem), key }));
    // One leaf key for all hosts of this session; each host gets its own certificate, ending with the CA.
    this.leafKey ??= generateKeyPair().then(async (pair) => ({ pair, pem: await privateKeyToPem(pair.privateKey) }));
    const [ca, { pair, pem }] = await Promise.all([this.ca, this.leafKey]);
    const cert = await issueServerCert({ ca, publicKey: pair.publicKey, dnsNames: [host], ips: [], notAfter: ca.cert.notAfter });
    return tls.createSecureContext({ key: pem, cert: cert.toString("pem") + "\n" + this.files.certPem });
  }
}
