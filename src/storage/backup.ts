/**
 * Backups of the backend (`admin backup`, `admin restore`, `admin backend
 * clone`): every item of a consistent snapshot (Backend.snapshot), whatever
 * its key, so records other parts of azgate add (bots, rotated keys) are in
 * it without a list kept here. The plain form is JSON lines: a header, then
 * one item per line (key, value, expiry; revisions are the backend's own and
 * start afresh). On disk it is an age file (age-encryption.org/v1, the
 * `age-encryption` library): with a passphrase (scrypt) or to an X25519
 * recipient (`age1...`), so `age -d` opens it too. The audit log is not in
 * it: it is the log's own (export it, or keep its files).
 */
import * as age from "age-encryption";
import { AzgateError } from "../errors/index.ts";
import { VERSION } from "../version.ts";
import { newerMinor } from "../api/version.ts";
import { checkKey, putIfAbsent, type Backend, type Item } from "./backend.ts";

export const BACKUP_FORMAT = "azgate-backup";
export const BACKUP_VERSION = 1;

export interface BackupHeader {
  format: typeof BACKUP_FORMAT;
  version: number;
  /** The azgate that took it. */
  azgate: string;
  cluster: string;
  created: string;
  items: number;
}

export interface Backup {
  header: BackupHeader;
  items: Pick<Item, "key" | "value" | "expires">[];
}

/** A snapshot as a backup: the header and its items. */
/**
 * Records a backup leaves out: the audit export's cursors (proxy/keys.ts
 * auditExport) point into an audit log a backup does not carry; restored
 * elsewhere, the export starts from that log's beginning instead.
 */
const NOT_BACKED_UP = ["audit-export/"];

export function backupOf(items: Item[], cluster: string, created: Date): Backup {
  items = items.filter((i) => !NOT_BACKED_UP.some((p) => i.key.startsWith(p)));
  return {
    header: { format: BACKUP_FORMAT, version: BACKUP_VERSION, azgate: VERSION, cluster, created: created.toISOString(), items: items.length },
    items: items.map((i) => ({ key: i.key, value: i.value, ...(i.expires ? { expires: i.expires } : {}) })),
  };
}

export function encodeBackup(b: Backup): Uint8Array {
  return new TextEncoder().encode([JSON.stringify(b.header), ...b.items.map((i) => JSON.stringify(i))].join("\n") + "\n");
}

/** Reads a plain backup, refusing anything that is not one whole (a wrong file, a cut one, a newer format), with what is wrong. */
export function decodeBackup(bytes: Uint8Array): Backup {
  const lines = new TextDecoder().decode(bytes).split("\n");
  if (lines.at(-1) === "") lines.pop();
  let header: BackupHeader;
  try {
    header = JSON.parse(lines[0] ?? "") as BackupHeader;
  } catch {
    throw new AzgateError("bad_parameter", "the file is not an azgate backup (its first line is not the header)");
  }
  if (header?.format !== BACKUP_FORMAT) throw new AzgateError("bad_parameter", "the file is not an azgate backup (no azgate-backup header)");
  if (header.version !== BACKUP_VERSION) throw new AzgateError("bad_parameter", `the backup's format is version ${header.version}, which this azgate ${VERSION} does not read (it reads ${BACKUP_VERSION}); restore it with the azgate that took it (${header.azgate}) or a later one`);
  // A later azgate's records may carry what this one does not know (and would drop, or misread): restore with that one.
  if (typeof header.azgate !== "string" || newerMinor(header.azgate)) throw new AzgateError("bad_parameter", `the backup was taken by azgate ${String(header.azgate).slice(0, 40)}, newer than this azgate ${VERSION}; restore it with azgate ${String(header.azgate).slice(0, 40)} or later`);
  const items = lines.slice(1).map((line, n) => {
    let item: Backup["items"][number];
    try {
      item = JSON.parse(line) as Backup["items"][number];
    } catch {
      throw new AzgateError("bad_parameter", `the backup is damaged: item ${n + 1} is not JSON`);
    }
    if (typeof item?.key !== "string" || !("value" in item)) throw new AzgateError("bad_parameter", `the backup is damaged: item ${n + 1} has no key or value`);
    // Every item is checked before anything is written: a restore never stops half-way on a bad one.
    try {
      checkKey(item.key);
    } catch {
      throw new AzgateError("bad_parameter", `the backup is damaged: item ${n + 1} has a key no backend holds (${JSON.stringify(item.key.slice(0, 80))})`);
    }
    if (item.expires !== undefined && (typeof item.expires !== "string" || Number.isNaN(Date.parse(item.expires)))) throw new AzgateError("bad_parameter", `the backup is damaged: item ${n + 1} (${item.key}) has an expiry that is not a time`);
    return item;
  });
  if (items.length !== header.items) throw new AzgateError("bad_parameter", `the backup is cut short: its header says ${header.items} items, it holds ${items.length}`);
  return { header, items };
}

/** The shortest passphrase a backup is sealed with. */
export const MIN_PASSPHRASE = 12;

export type Seal = { passphrase: string } | { recipient: string };
export type Unseal = { passphrase: string } | { identity: string };

/** Encrypts a plain backup into an age file. */
export async function sealBackup(plain: Uint8Array, seal: Seal): Promise<Uint8Array> {
  const e = new age.Encrypter();
  if ("passphrase" in seal) {
    // A backup holds every key of the cluster: a passphrase a guess finds is no encryption.
    if (seal.passphrase.length < MIN_PASSPHRASE) throw new AzgateError("bad_parameter", `the passphrase is ${seal.passphrase.length ? "too short" : "empty"}: a backup holds every key of the cluster, so it takes ${MIN_PASSPHRASE} characters at least (or --recipient age1... to encrypt to a key)`);
    e.setPassphrase(seal.passphrase);
  } else {
    if (!/^age1[0-9a-z]{20,}$/.test(seal.recipient)) throw new AzgateError("bad_parameter", `--recipient: "${seal.recipient.slice(0, 80)}" is not an age X25519 recipient (age1...)`);
    e.addRecipient(seal.recipient);
  }
  return e.encrypt(plain);
}

/** Decrypts an age file; a wrong passphrase or identity, or a file that is not age's, is refused saying which. */
export async function openBackup(sealed: Uint8Array, unseal: Unseal): Promise<Uint8Array> {
  if (!new TextDecoder().decode(sealed.slice(0, 22)).startsWith("age-encryption.org/v1")) throw new AzgateError("bad_parameter", "the file is not an encrypted azgate backup (no age header)");
  const d = new age.Decrypter();
  if ("passphrase" in unseal) d.addPassphrase(unseal.passphrase);
  else d.addIdentity(unseal.identity.trim());
  try {
    return await d.decrypt(sealed);
  } catch (e) {
    throw new AzgateError("bad_parameter", `cannot decrypt the backup: ${"passphrase" in unseal ? "wrong passphrase, or it was encrypted to a recipient (give --identity-file)" : "the identity is not one it was encrypted to, or it was encrypted with a passphrase"} (${(e as Error).message})`);
  }
}

/**
 * Writes a backup's items into an empty backend (a new data dir or
 * database); one that holds anything is refused, so a restore never mixes
 * two clusters. Each item is created, never overwritten: a proxy that
 * starts on the same database meanwhile (and makes a cluster of its own)
 * stops the restore instead of being written over. Items that expired
 * since the backup are left out.
 */
export async function restoreInto(backend: Backend, b: Backup, now: number, where: string): Promise<number> {
  const present = await backend.snapshot();
  if (present.length > 0) throw new AzgateError("already_exists", `${where} is not empty (it holds ${present.length} records, ${present[0].key} first); restore into a new data dir or an empty database`);
  let n = 0;
  for (const i of b.items) {
    if (i.expires && Date.parse(i.expires) <= now) continue;
    if (!(await putIfAbsent(backend, i.key, i.value, i.expires ? { expires: new Date(i.expires) } : undefined))) {
      throw new AzgateError("already_exists", `${where} was written by something else during the restore (${i.key}): is a proxy running on it? Stop it, empty ${where}, and restore again`);
    }
    n++;
  }
  return n;
}
