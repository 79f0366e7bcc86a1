/**
 * A WebAuthn authenticator in software, as a security key answers
 * (W3C WebAuthn level 2: "none" attestation, ES256, a signature counter):
 * what navigator.credentials.create/get give the page, built by hand so a
 * test can also make the answers a phisher's page or a cloned key would
 * (another origin, another RP ID, a counter that goes back). The end-to-end
 * test uses Chromium's own virtual authenticator instead.
 */
import { createHash, randomBytes, webcrypto } from "node:crypto";

const subtle = webcrypto.subtle;
const b64url = (b: Uint8Array) => Buffer.from(b).toString("base64url");
const sha256 = (b: Uint8Array | string) => new Uint8Array(createHash("sha256").update(b).digest());

/** A minimal CBOR encoder: unsigned and negative integers, byte and text strings, maps (what WebAuthn's structures hold). */
function cbor(v: unknown): Buffer {
  const head = (major: number, n: number) => {
    if (n < 24) return Buffer.from([(major << 5) | n]);
    if (n < 256) return Buffer.from([(major << 5) | 24, n]);
    if (n < 65536) return Buffer.from([(major << 5) | 25, n >> 8, n & 255]);
    const b = Buffer.alloc(5);
    b[0] = (major << 5) | 26;
    b.writeUInt32BE(n, 1);
    return b;
  };
  if (typeof v === "number") return v >= 0 ? head(0, v) : head(1, -1 - v);
  if (typeof v === "string") return Buffer.concat([head(3, Buffer.byteLength(v)), Buffer.from(v)]);
  if (v instanceof Uint8Array) return Buffer.concat([head(2, v.length), Buffer.from(v)]);
  if (v instanceof Map) return Buffer.concat([head(5, v.size), ...[...v].flatMap(([k, x]) => [cbor(k), cbor(x)])]);
  throw new Error(`cbor: cannot encode ${typeof v}`);
}

/** ECDSA's raw r||s (WebCrypto) as the DER SEQUENCE WebAuthn carries. */
function derSignature(raw: Uint8Array): Buffer {
  const int = (b: Uint8Array) => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    const v = b.subarray(i);
    return Buffer.concat([Buffer.from([0x02, v.length + (v[0] & 0x80 ? 1 : 0)]), v[0] & 0x80 ? Buffer.from([0]) : Buffer.alloc(0), Buffer.from(v)]);
  };
  const body = Buffer.concat([int(raw.subarray(0, 32)), int(raw.subarray(32))]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

interface CreationOptions {
  challenge: string;
  rp: { id?: string };
  user: { id: string };
}
interface RequestOptions {
  challenge: string;
  rpId?: string;
}

export class SoftAuthenticator {
  /** The signature counter: each assertion moves it up (a test may set it back, as a cloned key would). */
  counter = 0;
  private constructor(
    readonly credentialId: Uint8Array,
    private readonly keys: CryptoKeyPair,
    private readonly cose: Buffer,
  ) {}

  static async create(): Promise<SoftAuthenticator> {
    const keys = (await subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
    const raw = new Uint8Array(await subtle.exportKey("raw", keys.publicKey));
    const cose = cbor(new Map<number, unknown>([[1, 2], [3, -7], [-1, 1], [-2, raw.subarray(1, 33)], [-3, raw.subarray(33, 65)]]));
    return new SoftAuthenticator(new Uint8Array(randomBytes(32)), keys, cose);
  }

  get id(): string {
    return b64url(this.credentialId);
  }

  /** navigator.credentials.create's answer, as the page at `origin` would send it; `rpId` as the authenticator scoped it (a phisher's own). */
  register(options: CreationOptions, origin: string, o: { rpId?: string } = {}) {
    const clientData = Buffer.from(JSON.stringify({ type: "webauthn.create", challenge: options.challenge, origin, crossOrigin: false }));
    const idLen = Buffer.alloc(2);
    idLen.writeUInt16BE(this.credentialId.length);
    const authData = Buffer.concat([sha256(o.rpId ?? options.rp.id ?? ""), Buffer.from([0x45]), this.counterBytes(), Buffer.alloc(16), idLen, Buffer.from(this.credentialId), this.cose]);
    const attestationObject = cbor(new Map<string, unknown>([["fmt", "none"], ["attStmt", new Map()], ["authData", new Uint8Array(authData)]]));
    return { id: this.id, rawId: this.id, type: "public-key", clientExtensionResults: {}, response: { clientDataJSON: b64url(clientData), attestationObject: b64url(attestationObject), transports: ["usb"] } };
  }

  /** navigator.credentials.get's answer; the counter moves up first unless `counter` says what to sign. */
  async assert(options: RequestOptions, origin: string, o: { rpId?: string; counter?: number; userHandle?: string } = {}) {
    if (o.counter !== undefined) this.counter = o.counter;
    else this.counter++;
    const clientData = Buffer.from(JSON.stringify({ type: "webauthn.get", challenge: options.challenge, origin, crossOrigin: false }));
    const authData = Buffer.concat([sha256(o.rpId ?? options.rpId ?? ""), Buffer.from([0x05]), this.counterBytes()]);
    const signed = Buffer.concat([authData, sha256(clientData)]);
    const raw = new Uint8Array(await subtle.sign({ name: "ECDSA", hash: "SHA-256" }, this.keys.privateKey, signed));
    return {
      id: this.id,
      rawId: this.id,
      type: "public-key",
      clientExtensionResults: {},
      response: { clientDataJSON: b64url(clientData), authenticatorData: b64url(authData), signature: b64url(derSignature(raw)), ...(o.userHandle ? { userHandle: o.userHandle } : {}) },
    };
  }

  private counterBytes(): Buffer {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(this.counter);
    return b;
  }
}
