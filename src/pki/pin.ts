import { createHash, X509Certificate } from "node:crypto";
import { x509 } from "./x509.ts";
import { AzgateError } from "../errors/index.ts";

/** `sha256:<hex>` of a certificate's SubjectPublicKeyInfo, like Teleport's CA pins. */
export async function caPin(cert: x509.X509Certificate): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", cert.publicKey.rawData);
  return "sha256:" + Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The same pin of a PEM certificate, read by the runtime's own parser
 * (node:crypto, on Node and Deno): the everyday client commands compare pins
 * at every call and must not load @peculiar/x509 for it.
 */
export function pemPin(pem: string): string {
  const spki = new X509Certificate(pem).publicKey.export({ type: "spki", format: "der" });
  return "sha256:" + createHash("sha256").update(spki).digest("hex");
}

/** `sha256:<64 hex>` (the prefix may be left out); anything else is refused with what a pin looks like. */
export function normalizePin(pin: string): string {
  const p = pin.trim().toLowerCase();
  const full = p.startsWith("sha256:") ? p : `sha256:${p}`;
  if (!/^sha256:[0-9a-f]{64}$/.test(full)) {
    throw new AzgateError("bad_parameter", `--ca-pin ${JSON.stringify(pin.slice(0, 80))} is not a CA pin: it is sha256: and 64 hex digits, as "azgate admin status" prints it on the proxy host`);
  }
  return full;
}
