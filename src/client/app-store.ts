/**
 * App sessions on disk, beside the user's keys:
 *   keys/<proxy>/<user>-app/<cluster>/<app>.key, .crt, .json   (0600)
 *   keys/<proxy>/<user>-app/<cluster>/<app>-localca.pem, -localca.key, -bundle.pem
 *   azure/<cluster>/<app>/                                      AZURE_CONFIG_DIR, private per app
 */
import { existsSync, readFileSync } from "node:fs";
import { promises as fsp } from "node:fs";
import path from "node:path";
// The file helpers alone: `azgate az` reads the session before it loads anything heavy.
import { ensureDir, readTextOrNull, writeFileAtomic } from "../runtime/fs.ts";
import { azgateHome, type Profile } from "./profile.ts";
import type { LocalCaFiles } from "./local-ca.ts";
import type { CloudName } from "../azure/clouds.ts";
import { isGuid } from "../azure/guid.ts";

export interface AppSessionInfo {
  app: string;
  /** The app's cloud (absent in sessions stored before azgate knew clouds: public Azure). */
  cloud?: CloudName;
  azure_identity: string;
  tenant: string;
  /** The identity's client and principal IDs, when the proxy could learn them at apps login. */
  client_id?: string;
  principal_id?: string;
  /** The session's end (with per-session MFA, the certificate on disk ends a minute after apps login: the session does not). */
  expires: string;
  /**
   * Per-session MFA: the certificate on disk lives a minute; a command that
   * serves the session (proxy azure, az, exec) asks for a fresh passkey check
   * and keeps its own certificate in memory only.
   */
  session_mfa?: boolean;
}

/**
 * What is wrong with a session's tenant, client or principal ID, or null: each
 * is a GUID or absent (azure/guid.ts). They go into shell exports (`proxy
 * azure`), a child's environment and the token endpoint's tokens, so the
 * workstation takes nothing else, from the proxy's answer or from disk.
 */
export function identityFactsProblem(info: { tenant?: unknown; client_id?: unknown; principal_id?: unknown }): string | null {
  for (const [name, value] of [["tenant", info.tenant], ["client", info.client_id], ["principal", info.principal_id]] as const) {
    if (value !== undefined && value !== null && !isGuid(value)) return `the ${name} ID is not a GUID (${JSON.stringify(String(value).slice(0, 80))})`;
  }
  return null;
}

const safe = (s: string) => s.replace(/[^A-Za-z0-9._@-]/g, "_");
export const appDir = (p: Profile, home = azgateHome()) => path.join(home, "keys", safe(p.proxy), `${safe(p.user)}-app`, safe(p.cluster));
export const azureConfigDir = (p: Profile, app: string, home = azgateHome()) => path.join(home, "azure", safe(p.cluster), safe(app));

export async function saveAppSession(p: Profile, info: AppSessionInfo, keyPem: string, certPem: string, ca: LocalCaFiles): Promise<void> {
  const dir = appDir(p);
  await ensureDir(dir, 0o700);
  const base = path.join(dir, safe(info.app));
  await writeFileAtomic(`${base}.key`, keyPem, 0o600);
  await writeFileAtomic(`${base}.crt`, certPem, 0o600);
  await writeFileAtomic(`${base}-localca.key`, ca.keyPem, 0o600);
  await writeFileAtomic(`${base}-localca.pem`, ca.certPem, 0o600);
  // Python's requests replaces its trust store with REQUESTS_CA_BUNDLE: give it the local CA plus the system's,
  // so hosts that are tunnelled unchanged still verify.
  const system = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"].find((f) => existsSync(f));
  await writeFileAtomic(`${base}-bundle.pem`, ca.certPem + (system ? readFileSync(system, "utf8") : ""), 0o600);
  await writeFileAtomic(`${base}.json`, JSON.stringify(info, null, 2) + "\n", 0o600);
  await ensureDir(azureConfigDir(p, info.app), 0o700);
}

/** An app session's key and certificate alone, replaced (a rotated user CA reissued them to a running local proxy). */
export async function saveAppSessionCert(p: Profile, app: string, keyPem: string, certPem: string): Promise<void> {
  const base = path.join(appDir(p), safe(app));
  await writeFileAtomic(`${base}.key`, keyPem, 0o600);
  await writeFileAtomic(`${base}.crt`, certPem, 0o600);
}

export interface StoredAppSession {
  info: AppSessionInfo;
  keyPem: string;
  certPem: string;
  ca: LocalCaFiles;
  caFile: string;
  bundleFile: string;
}

export async function loadAppSession(p: Profile, app: string, home = azgateHome()): Promise<StoredAppSession | null> {
  const base = path.join(appDir(p, home), safe(app));
  const [info, keyPem, certPem, caKey, caPem] = await Promise.all([".json", ".key", ".crt", "-localca.key", "-localca.pem"].map((s) => readTextOrNull(base + s)));
  if (!info || !keyPem || !certPem || !caKey || !caPem) return null;
  return { info: JSON.parse(info) as AppSessionInfo, keyPem, certPem, ca: { keyPem: caKey, certPem: caPem }, caFile: `${base}-localca.pem`, bundleFile: `${base}-bundle.pem` };
}

export async function listAppSessions(p: Profile): Promise<AppSessionInfo[]> {
  const dir = appDir(p);
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  const out: AppSessionInfo[] = [];
  for (const n of names.filter((f) => f.endsWith(".json"))) out.push(JSON.parse(await fsp.readFile(path.join(dir, n), "utf8")) as AppSessionInfo);
  return out;
}

/** Removes the app's key, certificate and local CA; AZURE_CONFIG_DIR stays, as in Teleport. */
export async function removeAppSession(p: Profile, app: string): Promise<boolean> {
  const base = path.join(appDir(p), safe(app));
  let removed = false;
  for (const s of [".json", ".key", ".crt", "-localca.key", "-localca.pem", "-bundle.pem"]) {
    removed = (await fsp.rm(base + s).then(() => true, () => false)) || removed;
  }
  return removed;
}
