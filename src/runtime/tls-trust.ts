/**
 * What a TLS client trusts: the web PKI plus, when given, more CAs (the
 * cluster's own, an operator's), so a proxy behind a public certificate, an
 * ingress with a company CA or its own self-issued one all verify the same way.
 *
 * Node's `ca` option replaces the root store, and building a context from
 * the ~145 root PEMs costs about 45 ms per connection on this machine. So on
 * Node the extra CAs are added to a context made from the default store,
 * about 1 ms, once per set of CAs. Deno's node:tls has no such store to add
 * to: there the roots travel as `ca`. Either way NODE_EXTRA_CA_CERTS is added
 * by hand: Node's copy of its default store leaves it out.
 */
import tls from "node:tls";
import { readFileSync } from "node:fs";

declare const Deno: object | undefined;

/** Options for node:tls / node:https (and `ws`); `key` names the trust set, for connection pools. */
export interface TlsTrust {
  key: string;
  options: { secureContext?: tls.SecureContext; ca?: string[] };
}

const cache = new Map<string, TlsTrust>();
const NONE: TlsTrust = { key: "", options: {} };

/** Trust the web PKI and `extra`; the default store alone when nothing is added. */
export function tlsTrust(extra: readonly string[] | undefined): TlsTrust {
  const pems = (extra ?? []).filter(Boolean);
  if (pems.length === 0) return NONE;
  const key = pems.join("\n");
  let trust = cache.get(key);
  if (!trust) cache.set(key, (trust = { key, options: typeof Deno === "undefined" ? { secureContext: nodeContext(pems) } : { ca: [...tls.rootCertificates, ...envExtraCas(), ...pems] } }));
  return trust;
}

function nodeContext(pems: string[]): tls.SecureContext {
  // Without `ca`, createSecureContext uses the default root store; addCACert then adds to a copy of it
  // (what createSecureContext itself does with each `ca` entry).
  const context = tls.createSecureContext();
  const native = (context as unknown as { context: { addCACert(pem: string): void } }).context;
  for (const pem of [...envExtraCas(), ...pems]) native.addCACert(pem);
  return context;
}

let extraFromEnv: string[] | undefined;

/** The certificates in NODE_EXTRA_CA_CERTS, read once. */
function envExtraCas(): string[] {
  if (extraFromEnv) return extraFromEnv;
  const file = process.env.NODE_EXTRA_CA_CERTS;
  let pems: string[] = [];
  if (file) {
    try {
      pems = pemCertificates(readFileSync(file, "utf8"));
    } catch {
      // An unreadable NODE_EXTRA_CA_CERTS adds nothing, as on Node (which warns).
    }
  }
  return (extraFromEnv = pems);
}

/** Splits a PEM bundle (an operator's CA file) into its certificates. */
export function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((p) => p + "\n") ?? [];
}
