import { promises as fsp } from "node:fs";
import os from "node:os";
import path from "node:path";
// The file helpers alone, not runtime/index.ts: `azgate az` reads the profile before it loads anything heavy.
import { ensureDir, readTextOrNull, writeFileAtomic } from "../runtime/fs.ts";
import { AzgateError } from "../errors/index.ts";

/**
 * The client's state under ~/.azgate (AZGATE_HOME overrides):
 *   current-profile                       name of the active profile (the proxy host)
 *   profiles/<proxy>.json                 proxy address, user, cluster, trusted CA
 *   keys/<proxy>/<user>.key   (0600)      private key, made here, never sent
 *   keys/<proxy>/<user>.crt               user certificate
 */
export interface Profile {
  proxy: string;
  user: string;
  cluster: string;
  /** The cluster's host CA (pinned or confirmed at login); also verifies the proxy's own TLS certificate. */
  ca_pem?: string;
  /** Every host CA trusted, ca_pem first: two while the host CA rotates (client/rotation.ts keeps it). */
  ca_pems?: string[];
  /** The CA of a TLS front (an ingress, an operator certificate) given at login with --proxy-ca-file. */
  proxy_ca_pems?: string[];
  insecure?: boolean;
}

export function azgateHome(): string {
  return process.env.AZGATE_HOME || path.join(os.homedir(), ".azgate");
}

const safe = (s: string) => s.replace(/[^A-Za-z0-9._@-]/g, "_");
const keyDir = (proxy: string, home = azgateHome()) => path.join(home, "keys", safe(proxy));
export const keyFile = (proxy: string, user: string, home?: string) => path.join(keyDir(proxy, home), `${safe(user)}.key`);
export const certFile = (proxy: string, user: string, home?: string) => path.join(keyDir(proxy, home), `${safe(user)}.crt`);
export const profileFile = (proxy: string, home = azgateHome()) => path.join(home, "profiles", `${safe(proxy)}.json`);

export async function saveProfile(p: Profile, keyPem: string, certPem: string, home = azgateHome()): Promise<void> {
  await ensureDir(path.join(home, "profiles"));
  await ensureDir(keyDir(p.proxy, home));
  await writeFileAtomic(keyFile(p.proxy, p.user, home), keyPem, 0o600);
  await writeFileAtomic(certFile(p.proxy, p.user, home), certPem, 0o600);
  await writeFileAtomic(profileFile(p.proxy, home), JSON.stringify(p, null, 2) + "\n", 0o600);
  await writeFileAtomic(path.join(home, "current-profile"), p.proxy + "\n", 0o600);
}

/** Writes a profile's file alone (its trust followed a rotation); the keys stay as they are. */
export async function saveProfileFile(p: Profile, home = azgateHome()): Promise<void> {
  await writeFileAtomic(profileFile(p.proxy, home), JSON.stringify(p, null, 2) + "\n", 0o600);
}

/** Writes a login's certificate alone (reissued by a rotated CA, for the same key). */
export async function saveCertificate(p: Profile, certPem: string, home = azgateHome()): Promise<void> {
  await writeFileAtomic(certFile(p.proxy, p.user, home), certPem, 0o600);
}

export async function currentProfileName(): Promise<string | null> {
  return (await readTextOrNull(path.join(azgateHome(), "current-profile")))?.trim() || null;
}

/** The names of every saved profile (proxy addresses). */
export async function listProfileNames(): Promise<string[]> {
  const files = (await fsp.readdir(path.join(azgateHome(), "profiles")).catch(() => [])) as string[];
  const names: string[] = [];
  for (const f of files.filter((f) => f.endsWith(".json"))) {
    const text = await readTextOrNull(path.join(azgateHome(), "profiles", f));
    try {
      if (text) names.push((JSON.parse(text) as Profile).proxy);
    } catch {
      // A damaged profile is skipped here; loading it by name says what is wrong.
    }
  }
  return names.sort();
}

/** What to say when a file of a profile cannot be read: the file, and the command that repairs it. */
function damaged(file: string, proxy: string, what: string): AzgateError {
  return new AzgateError("config_invalid", `${file} is damaged (${what}); run azgate logout --proxy ${proxy}, then log in again`);
}

export async function loadProfile(proxy?: string): Promise<Profile | null> {
  const name = proxy ?? (await currentProfileName());
  if (!name) return null;
  const file = profileFile(name);
  const text = await readTextOrNull(file);
  if (!text) return null;
  let p: Profile;
  try {
    p = JSON.parse(text) as Profile;
  } catch {
    throw damaged(file, name, "not JSON");
  }
  if (typeof p?.proxy !== "string" || typeof p.user !== "string") throw damaged(file, name, "no proxy or user");
  return p;
}

/** The current profile and its credentials, or "not logged in". */
export async function currentLogin(): Promise<{ profile: Profile; credentials: { keyPem: string; certPem: string } }> {
  const profile = await loadProfile();
  const credentials = profile ? await loadCredentials(profile) : null;
  if (!profile || !credentials) throw new AzgateError("unauthenticated", "not logged in; run azgate login --proxy HOST:PORT --user NAME");
  return { profile, credentials };
}

export async function loadCredentials(p: Profile): Promise<{ keyPem: string; certPem: string } | null> {
  const [keyPem, certPem] = await Promise.all([readTextOrNull(keyFile(p.proxy, p.user)), readTextOrNull(certFile(p.proxy, p.user))]);
  if (!keyPem || !certPem) return null;
  if (!/-----BEGIN PRIVATE KEY-----/.test(keyPem)) throw damaged(keyFile(p.proxy, p.user), p.proxy, "not a PEM private key");
  if (!/-----BEGIN CERTIFICATE-----/.test(certPem)) throw damaged(certFile(p.proxy, p.user), p.proxy, "not a PEM certificate");
  return { keyPem, certPem };
}

/** The CA a person confirmed for a proxy (by pin or at the prompt), remembered until a login replaces it. */
export const trustedCaFile = (proxy: string, home = azgateHome()) => path.join(home, "trusted", `${safe(proxy)}.pem`);

export async function rememberTrustedCa(proxy: string, caPem: string): Promise<void> {
  await ensureDir(path.join(azgateHome(), "trusted"));
  await writeFileAtomic(trustedCaFile(proxy), caPem, 0o600);
}

export async function trustedCa(proxy: string): Promise<string | null> {
  return readTextOrNull(trustedCaFile(proxy));
}

/**
 * Removes the credentials of a profile (or of all). The trusted CA is kept for
 * the next login. Works on a damaged profile too: that is how one repairs it.
 */
export async function removeCredentials(proxy?: string): Promise<string[]> {
  const names = proxy ? [proxy] : ((await fsp.readdir(path.join(azgateHome(), "profiles")).catch(() => [])) as string[]).map((f) => f.replace(/\.json$/, ""));
  const removed: string[] = [];
  for (const name of names) {
    const p = await loadProfile(name).catch(() => null);
    if (!p) {
      // Damaged (or only half there): remove what there is under that name.
      const had = (await readTextOrNull(profileFile(name))) !== null;
      await fsp.rm(keyDir(name), { recursive: true, force: true });
      await fsp.rm(profileFile(name), { force: true });
      if (had) removed.push(name);
      continue;
    }
    await fsp.rm(keyDir(p.proxy), { recursive: true, force: true });
    removed.push(`${p.user}@${p.proxy}`);
  }
  if (!proxy || (await currentProfileName()) === proxy) await fsp.rm(path.join(azgateHome(), "current-profile"), { force: true });
  return removed;
}
