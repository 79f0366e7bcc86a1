import { pemDecodeFirst, pemEncode } from "./pem.ts";

/** ECDSA P-256 with SHA-256 everywhere: CA keys, user keys, host keys, proofs. */
export const EC_ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;


export async function generateKeyPair(): Promise<CryptoKeyPair> {
  // Extractable so the owner can store it; it never leaves the machine that made it.
  return (await crypto.subtle.generateKey(EC_ALG, true, ["sign", "verify"])) as CryptoKeyPair;
}

export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  return pemEncode(await crypto.subtle.exportKey("pkcs8", key), "PRIVATE KEY") + "\n";
}

export async function publicKeyToPem(key: CryptoKey): Promise<string> {
  return pemEncode(await crypto.subtle.exportKey("spki", key), "PUBLIC KEY") + "\n";
}

export async function importPrivateKeyPem(pem: string): Promise<CryptoKey> {
  return crypto.subtle.importKey("pkcs8", pemDecodeFirst(pem), EC_ALG, true, ["sign"]);
}

export async function importPublicKeyPem(pem: string): Promise<CryptoKey> {
  return crypto.subtle.importKey("spki", pemDecodeFirst(pem), EC_ALG, true, ["verify"]);
}

/** The public half of a private key, via its JWK (WebCrypto has no direct derivation). */
export async function publicKeyOf(privateKey: CryptoKey): Promise<CryptoKey> {
  const { d: _d, key_ops: _ops, ...jwk } = (await crypto.subtle.exportKey("jwk", privateKey)) as JsonWebKey;
  return crypto.subtle.importKey("jwk", jwk, EC_ALG, true, ["verify"]);
}
