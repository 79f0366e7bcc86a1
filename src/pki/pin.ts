import { x509 } from "./x509.ts";

/** `sha256:<hex>` of a certificate's SubjectPublicKeyInfo, like Teleport's CA pins. */
export async function caPin(cert: x509.X509Certificate): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", cert.publicKey.rawData);
  return "sha256:" + Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function normalizePin(pin: string): string {
  const p = pin.trim().toLowerCase();
  return p.startsWith("sha256:") ? p : `sha256:${p}`;
}
