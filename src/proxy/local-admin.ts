import { promises as fsp } from "node:fs";
import path from "node:path";
import { X509Certificate } from "node:crypto";
import { ensureDir, writeFileAtomic, readTextOrNull } from "../runtime/index.ts";
import { generateKeyPair, privateKeyToPem } from "../pki/keys.ts";
import { issueIdentityCert } from "../pki/certificate.ts";
import type { Authority } from "../pki/authority.ts";
import type { Identity } from "../pki/identity.ts";

/**
 * The bootstrap identity: while a proxy runs, `azgate admin --data-dir DIR`
 * talks to it with a certificate only the data dir's owner can read
 * (dir 0700, files 0600). It is valid for this proxy run only.
 */
export const LOCAL_ADMIN_NAME = "@local-admin";

export interface LocalAdminCredentials {
  url: string;
  ca_pem: string;
  /** SHA-256 of the certificate this proxy run serves: the admin path trusts exactly it (an operator's certificate may not name loopback). */
  cert_sha256?: string;
  key_pem: string;
  cert_pem: string;
}

const dirOf = (dataDir: string) => path.join(dataDir, "local-admin");

/** A local admin key and certificate, valid only while `sessionId` is this proxy run's. */
export async function issueLocalAdmin(userCa: Authority, sessionId: string, now: Date): Promise<{ keyPem: string; certPem: string }> {
  const keys = await generateKeyPair();
  const identity: Identity = { kind: "local-admin", name: LOCAL_ADMIN_NAME, roles: [], traits: {}, azure_identities: [], login_method: "local", session_id: sessionId };
  const cert = await issueIdentityCert({ ca: userCa, publicKey: keys.publicKey, identity, now, notAfter: new Date(now.getTime() + 365 * 86_400_000) });
  return { keyPem: await privateKeyToPem(keys.privateKey), certPem: cert.toString("pem") + "\n" };
}

/**
 * Writes this proxy run's local admin credentials; again, for the same
 * session, when a rotation changes the CA that signs them or the certificate
 * the proxy serves.
 */
export async function writeLocalAdmin(dataDir: string, userCa: Authority, url: string, caPem: string, servedCertPem: string, now: Date, sessionId: string = crypto.randomUUID()): Promise<string> {
  const { keyPem, certPem } = await issueLocalAdmin(userCa, sessionId, now);
  const cert_sha256 = new X509Certificate(servedCertPem).fingerprint256;
  const creds: LocalAdminCredentials = { url, ca_pem: caPem, cert_sha256, key_pem: keyPem, cert_pem: certPem };
  await ensureDir(dirOf(dataDir), 0o700);
  await fsp.chmod(dirOf(dataDir), 0o700);
  await writeFileAtomic(path.join(dirOf(dataDir), "credentials.json"), JSON.stringify(creds, null, 2), 0o600);
  return sessionId;
}

export async function readLocalAdmin(dataDir: string): Promise<LocalAdminCredentials | null> {
  const text = await readTextOrNull(path.join(dirOf(dataDir), "credentials.json"));
  return text ? (JSON.parse(text) as LocalAdminCredentials) : null;
}

export async function removeLocalAdmin(dataDir: string): Promise<void> {
  await fsp.rm(dirOf(dataDir), { recursive: true, force: true });
}
