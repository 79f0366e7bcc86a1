import { scrypt, randomBytes, timingSafeEqual } from "node:crypto";
import { AzgateError } from "../errors/index.ts";

/**
 * Memory-hard password hashes with scrypt (N=2^15, r=8, p=1: 32 MiB, about
 * 100 ms), stored as `scrypt$N$r$p$salt$hash` so parameters can be raised later.
 */
const PARAMS = { N: 1 << 15, r: 8, p: 1 };
const KEY_LEN = 32;
export const MIN_PASSWORD_LENGTH = 12;

function derive(password: string, salt: Buffer, p: typeof PARAMS): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, KEY_LEN, { ...p, maxmem: 128 * p.N * p.r * 2 }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export function checkPasswordStrength(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new AzgateError("bad_parameter", `password must be at least ${MIN_PASSWORD_LENGTH} characters long`);
  }
  if (password.length > 1024) throw new AzgateError("bad_parameter", "password must be at most 1024 characters long");
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await derive(password, salt, PARAMS);
  return `scrypt$${PARAMS.N}$${PARAMS.r}$${PARAMS.p}$${salt.toString("base64")}$${hash.toString("base64")}`;
}

export async function verifyPassword(password: string, stored: string | undefined): Promise<boolean> {
  // With no stored hash, still spend the same time so a missing user is not told apart by timing.
  const [alg, n, r, p, salt, hash] = (stored ?? `scrypt$${PARAMS.N}$8$1$${"A".repeat(24)}$${"A".repeat(44)}`).split("$");
  if (alg !== "scrypt") return false;
  const actual = await derive(password, Buffer.from(salt, "base64"), { N: Number(n), r: Number(r), p: Number(p) });
  const expected = Buffer.from(hash, "base64");
  return stored !== undefined && expected.length === actual.length && timingSafeEqual(actual, expected);
}
