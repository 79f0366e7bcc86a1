/**
 * PEM armour (RFC 7468) for keys: base64 of the DER between BEGIN and END
 * lines. @peculiar/x509's PemConverter does the same, but loading that
 * library costs the client about 60 ms at start-up, and the everyday commands
 * (status, apps ls, az) need only their key, never a certificate parser.
 */
import { AzgateError } from "../errors/index.ts";

export function pemEncode(der: ArrayBuffer | Uint8Array, label: string): string {
  const b64 = Buffer.from(der instanceof Uint8Array ? der : new Uint8Array(der)).toString("base64");
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)?.join("\n") ?? ""}\n-----END ${label}-----`;
}

/** The DER of the first PEM block in `pem` (any label). */
export function pemDecodeFirst(pem: string): Uint8Array<ArrayBuffer> {
  const body = /-----BEGIN [A-Z0-9 ]+-----([A-Za-z0-9+/=\s]*)-----END [A-Z0-9 ]+-----/.exec(pem)?.[1];
  if (body === undefined) throw new AzgateError("bad_parameter", "not a PEM block (-----BEGIN ...-----)");
  return Uint8Array.from(Buffer.from(body.replace(/\s+/g, ""), "base64"));
}
