/**
 * What a TLS client trusts. Node's `ca` option replaces the default root
 * store, so trusting one more CA (the cluster's own, an operator's) means
 * passing the web PKI's roots along with it: a proxy behind a public
 * certificate, an ingress with a company CA or its own self-issued one all
 * verify with the same call. NODE_EXTRA_CA_CERTS stays trusted too.
 */
import tls from "node:tls";
import { readFileSync } from "node:fs";

const cache = new Map<string, string[]>();
let extraFromEnv: string[] | undefined;

function envExtraCas(): string[] {
  if (extraFromEnv) return extraFromEnv;
  const file = process.env.NODE_EXTRA_CA_CERTS;
  let pems: string[] = [];
  if (file) {
    try {
      pems = readFileSync(file, "utf8").match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    } catch {
      // Node itself warns about an unreadable NODE_EXTRA_CA_CERTS.
    }
  }
  return (extraFromEnv = pems);
}

/**
 * The `ca` option for node:tls / node:https: undefined (the default store)
 * when there is nothing to add, else the default roots plus `extra`.
 */
export function caWithSystemRoots(extra: readonly string[] | undefined): string[] | undefined {
  const pems = (extra ?? []).filter(Boolean);
  if (pems.length === 0) return undefined;
  const key = pems.join("\n");
  let ca = cache.get(key);
  if (!ca) cache.set(key, (ca = [...tls.rootCertificates, ...envExtraCas(), ...pems]));
  return ca;
}

/** Splits a PEM bundle (an operator's CA file) into its certificates. */
export function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((p) => p + "\n") ?? [];
}
