/** A positive 128-bit random serial number in hex (RFC 5280 allows up to 20 octets). */
export function randomSerial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] &= 0x7f;
  b[0] |= 0x01; // never zero, never negative
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
