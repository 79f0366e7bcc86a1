/**
 * WebAuthn (passkeys and security keys), on @simplewebauthn/server: the
 * options a browser's navigator.credentials.create/get takes, and the
 * checks of what it answers. The library checks the signature, the
 * challenge, the origin, the RP ID, user presence and verification, and that
 * the signature counter only goes up (a cloned authenticator's tell); the
 * caller keeps the challenges (single use, short-lived: proxy/webauthn.ts)
 * and the devices.
 */
import "reflect-metadata";
import { generateAuthenticationOptions, generateRegistrationOptions, verifyAuthenticationResponse, verifyRegistrationResponse, type AuthenticationResponseJSON, type RegistrationResponseJSON } from "@simplewebauthn/server";

/** A registered authenticator, as the user's auth record keeps it. */
export interface WebAuthnDevice {
  /** The credential ID (base64url). */
  id: string;
  /** Its COSE public key (base64url). */
  public_key: string;
  /** The signature counter last seen (0 for authenticators that keep none). */
  counter: number;
  transports?: string[];
  /** What the user called it. */
  name: string;
  added: string;
  last_used?: string;
}

/** The relying party: the cluster's public host (RP ID) and the web UI's origin. */
export interface RelyingParty {
  id: string;
  origin: string;
  name: string;
}

/** How long a browser has to answer (and the challenge lives: proxy/webauthn.ts). */
export const CEREMONY_MS = 5 * 60_000;

const b64url = (b: Uint8Array) => Buffer.from(b).toString("base64url");

export async function registrationOptions(rp: RelyingParty, user: { name: string; id: string }, devices: WebAuthnDevice[], challenge: string) {
  return generateRegistrationOptions({
    rpName: rp.name,
    rpID: rp.id,
    userName: user.name,
    userID: new TextEncoder().encode(user.id),
    challenge: Buffer.from(challenge, "base64url"),
    timeout: CEREMONY_MS,
    attestationType: "none",
    excludeCredentials: devices.map((d) => ({ id: d.id })),
    // A passkey where the platform has one, a security key otherwise; the user proves presence and, where it can, themselves.
    authenticatorSelection: { residentKey: "preferred", userVerification: "preferred" },
  });
}

/** A new device from the browser's answer, or a thrown Error saying what did not hold. */
export async function verifyRegistration(rp: RelyingParty, response: RegistrationResponseJSON, challenge: string, name: string, now: Date): Promise<WebAuthnDevice> {
  const v = await verifyRegistrationResponse({ response, expectedChallenge: challenge, expectedOrigin: rp.origin, expectedRPID: rp.id, requireUserVerification: false });
  if (!v.verified) throw new Error("the authenticator's answer did not verify");
  const c = v.registrationInfo.credential;
  return { id: c.id, public_key: b64url(c.publicKey), counter: c.counter, ...(c.transports?.length ? { transports: c.transports } : {}), name, added: now.toISOString() };
}

export async function authenticationOptions(rp: RelyingParty, devices: WebAuthnDevice[], challenge: string) {
  return generateAuthenticationOptions({
    rpID: rp.id,
    challenge: Buffer.from(challenge, "base64url"),
    timeout: CEREMONY_MS,
    allowCredentials: devices.map((d) => ({ id: d.id, ...(d.transports ? { transports: d.transports as never } : {}) })),
    userVerification: "preferred",
  });
}

/**
 * Checks an assertion against the user's devices and the challenge; returns
 * the device and its new counter, or throws an Error saying what did not
 * hold (an unknown credential, a bad signature, another origin or RP ID, a
 * counter that did not go up).
 */
export async function verifyAssertion(rp: RelyingParty, response: AuthenticationResponseJSON, challenge: string, devices: WebAuthnDevice[]): Promise<{ device: WebAuthnDevice; counter: number }> {
  const device = devices.find((d) => d.id === response?.id);
  if (!device) throw new Error("the assertion is from an authenticator this user has not registered");
  const v = await verifyAuthenticationResponse({
    response,
    expectedChallenge: challenge,
    expectedOrigin: rp.origin,
    expectedRPID: rp.id,
    credential: { id: device.id, publicKey: Buffer.from(device.public_key, "base64url"), counter: device.counter, ...(device.transports ? { transports: device.transports as never } : {}) },
    requireUserVerification: false,
  });
  if (!v.verified) throw new Error("the assertion's signature did not verify");
  return { device, counter: v.authenticationInfo.newCounter };
}

/** The challenge a browser answered (its clientDataJSON's), to find the ceremony it belongs to; null if unreadable. */
export function answeredChallenge(response: { response?: { clientDataJSON?: unknown } } | null | undefined): string | null {
  const raw = response?.response?.clientDataJSON;
  if (typeof raw !== "string" || raw.length > 4096) return null;
  try {
    const c = JSON.parse(Buffer.from(raw, "base64url").toString("utf8")) as { challenge?: unknown };
    return typeof c.challenge === "string" && /^[A-Za-z0-9_-]{16,128}$/.test(c.challenge) ? c.challenge : null;
  } catch {
    return null;
  }
}
