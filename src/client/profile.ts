import { promises as fsp } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ensureDir, readTextOrNull, writeFileAtomic } from "../runtime/index.ts";

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
  /** PEM CA certificates to verify the proxy with; absent when it has a web-PKI certificate. */
  ca_pem?: string;
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

export async function loadProfile(proxy?: string): Promise<Profile | null> {
  const name = proxy ?? (await currentProfileName());
  if (!name) return null;
  const text = await readTextOrNull(profileFile(name));
  return text ? (JSON.parse(text) as Profile) : null;
}

export async function loadCredentials(p: Profile): Promise<{ keyPem: string; certPem: string } | null> {
  const [keyPem, certPem] = await Promise.all([readTextOrNull(keyFile(p.proxy, p.user)), readTextOrNull(certFile(p.proxy, p.user))]);
  return keyPem && certPem ? { keyPem, certPem } : null;
}

/** Removes the credentials of a profile (or of all). The trusted CA is kept for the next login. */
export async function removeCredentials(proxy?: string): Promise<string[]> {
  const names = proxy ? [proxy] : ((await fsp.readdir(path.join(azgateHome(), "profiles")).catch(() => [])) as string[]).map((f) => f.replace(/\.json$/, ""));
  const removed: string[] = [];
  for (const name of names) {
    const p = await loadProfile(name);
    if (!p) continue;
    await fsp.rm(keyDir(p.proxy), { recursive: true, force: true });
    removed.push(`${p.user}@${p.proxy}`);
  }
  if (!proxy || (await currentProfileName()) === proxy) await fsp.rm(path.join(azgateHome(), "current-profile"), { force: true });
  return removed;
}
