import { Secret, TOTP } from "otpauth";

/** RFC 6238 TOTP as authenticator apps expect: SHA1, 6 digits, 30 s. */
export function newTotpSecret(): string {
  return new Secret({ size: 20 }).base32;
}

export function totpFor(user: string, secret: string, issuer: string): TOTP {
  return new TOTP({ issuer, label: user, algorithm: "SHA1", digits: 6, period: 30, secret: Secret.fromBase32(secret) });
}

/**
 * The time step of a valid code (one step of drift either way), or null. The
 * caller refuses a step at or before the last one used, so a code works once.
 */
export function checkTotp(secret: string, code: string, now: number): number | null {
  if (!/^\d{6}$/.test(code.trim())) return null;
  const totp = totpFor("user", secret, "azgate");
  const delta = totp.validate({ token: code.trim(), timestamp: now, window: 1 });
  return delta === null ? null : Math.floor(now / 1000 / 30) + delta;
}

/** The step of a valid code used for the first time (later than `lastStep`), or null: the one rule for login and reviews. */
export function freshTotpStep(secret: string, code: string, lastStep: number | undefined, now: number): number | null {
  const step = checkTotp(secret, code, now);
  return step !== null && step > (lastStep ?? -1) ? step : null;
}
