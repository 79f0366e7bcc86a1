/**
 * The workstation's local CA for TLS interception: made per app session,
 * valid no longer than the app certificate, key stored 0600, and
 * name-constrained to the hosts it intercepts (Azure's API hosts and the
 * token endpoints). Leaf certificates are minted per host name on first use,
 * only for intercepted names, and a bounded number are cached.
 */
import tls from "node:tls";
import { x509 } from "../pki/x509.ts";
import { createSelfSignedCa, type CaKey } from "../pki/authority.ts";
import { issueServerCert } from "../pki/certificate.ts";
import { generateKeyPair, importPrivateKeyPem, privateKeyToPem } from "../pki/keys.ts";
import { isAzureEndpoint } from "../azure/endpoints.ts";
import { cloudByName, type CloudName } from "../azure/clouds.ts";
import { IDENTITY_HOST, MSI_HOST } from "./session-env.ts";
import type { Clock } from "../util/clock.ts";

/** Names the local CA of a session in `cloud` signs for: the token hosts and that cloud's API hosts. */
export const isLocalCaName = (name: string, cloud: CloudName = "Azure") => name === MSI_HOST || name === IDENTITY_HOST || isAzureEndpoint(name, cloud);

export interface LocalCaFiles {
  certPem: string;
  keyPem: string;
}

/** What the local CA may sign for: the intercepted names, and nothing else (name constraints). */
export const localCaNames = (cloud: CloudName = "Azure") => [MSI_HOST, IDENTITY_HOST, ...cloudByName(cloud).hostSuffixes];

/** Leaf contexts kept at once; the least recently used goes first. */
export const LEAF_CACHE_SIZE = 64;

export async function createLocalCa(validity: { now: Date; notAfter: Date }, cloud: CloudName = "Azure"): Promise<LocalCaFiles> {
  const ca = await createSelfSignedCa("CN=azgate local CA, O=azgate", validity, localCaNames(cloud));
  return { certPem: ca.cert.toString("pem") + "\n", keyPem: await privateKeyToPem(ca.key) };
}

/** Mints and caches a TLS context per host name. */
export class LeafMinter {
  private readonly contexts = new Map<string, Promise<tls.SecureContext>>();
  private ca: Promise<CaKey> | null = null;
  private leafKey: Promise<{ pair: CryptoKeyPair; pem: string }> | null = null;

  constructor(
    private readonly files: LocalCaFiles,
    /** Dates the leaves it mints. */
    private readonly clock: Clock,
    private readonly cloud: CloudName = "Azure",
  ) {}

  context(host: string): Promise<tls.SecureContext> {
    const name = host.toLowerCase();
    if (!isLocalCaName(name, this.cloud)) return Promise.reject(new Error(`azgate's local CA does not sign for ${name}`));
    let ctx = this.contexts.get(name);
    if (ctx) this.contexts.delete(name);
    else ctx = this.mint(name);
    this.contexts.set(name, ctx);
    while (this.contexts.size > LEAF_CACHE_SIZE) this.contexts.delete(this.contexts.keys().next().value!);
    return ctx;
  }

  /** Host names with a leaf cached now (for tests). */
  get cached(): string[] {
    return [...this.contexts.keys()];
  }

  private async mint(host: string): Promise<tls.SecureContext> {
    this.ca ??= importPrivateKeyPem(this.files.keyPem).then((key) => ({ cert: new x509.X509Certificate(this.files.certPem), key }));
    // One leaf key for all hosts of this session; each host gets its own certificate, ending with the CA.
    this.leafKey ??= generateKeyPair().then(async (pair) => ({ pair, pem: await privateKeyToPem(pair.privateKey) }));
    const [ca, { pair, pem }] = await Promise.all([this.ca, this.leafKey]);
    const cert = await issueServerCert({ ca, publicKey: pair.publicKey, dnsNames: [host], ips: [], now: this.clock.date(), notAfter: ca.cert.notAfter });
    return tls.createSecureContext({ key: pem, cert: cert.toString("pem") + "\n" + this.files.certPem });
  }
}
