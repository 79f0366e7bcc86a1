/**
 * `azgate admin backup FILE`, `admin restore FILE` and `admin backend clone
 * --from --to` (docs/operations.md, "Backup and restore"). A backup is taken
 * through the proxy (a running one, or the data dir's own API in this
 * process: cli/connect.ts), encrypted here and written 0600; a restore or a
 * clone writes into an empty data dir or database (proxy/restore.ts).
 */
import type { Argv } from "yargs";
import { readFileSync } from "node:fs";
import path from "node:path";
import { audit } from "../../audit/events.ts";
import { PostgresAuditSink } from "../../audit/postgres-sink.ts";
import { registeredSink } from "../../audit/registered.ts";
import { loadConfig } from "../../config/load.ts";
import { AzgateError } from "../../errors/index.ts";
import { KEYS } from "../../proxy/keys.ts";
import { pemPin } from "../../pki/pin.ts";
import { LOCAL_ADMIN_NAME } from "../../proxy/local-admin.ts";
import { describeTarget, parseStorageRef, redactedUrl, restoreBackup, type RestoreTarget } from "../../proxy/restore.ts";
import { writeFileAtomic } from "../../runtime/index.ts";
import { backupOf, decodeBackup, encodeBackup, openBackup, sealBackup, type Backup, type Seal, type Unseal } from "../../storage/backup.ts";
import { PostgresBackend } from "../../storage/postgres.ts";
import { systemClock } from "../../util/clock.ts";
import { connectAdmin, withAdmin, type AdminArgs } from "../connect.ts";
import { ask } from "../prompt.ts";
import { print, printErr } from "../output.ts";
import { run } from "../run.ts";

type SecretArgs = { "passphrase-file"?: string; recipient?: string; "identity-file"?: string };

/** The first line of a file given for a secret; a missing or empty one is refused by name. */
function secretFile(file: string, flag: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new AzgateError("bad_parameter", `${flag} ${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
  const line = text.split(/\r?\n/)[0];
  if (!line) throw new AzgateError("bad_parameter", `${flag} ${file}: the file is empty`);
  return line;
}

/** The passphrase: --passphrase-file, else AZGATE_BACKUP_PASSPHRASE, else asked on a terminal (twice when it seals). */
async function passphrase(argv: SecretArgs, twice: boolean): Promise<string> {
  if (argv["passphrase-file"]) return secretFile(argv["passphrase-file"], "--passphrase-file");
  if (process.env.AZGATE_BACKUP_PASSPHRASE) return process.env.AZGATE_BACKUP_PASSPHRASE;
  if (!process.stdin.isTTY) throw new AzgateError("bad_parameter", "give the backup's passphrase: --passphrase-file FILE or AZGATE_BACKUP_PASSPHRASE (or --recipient age1... to encrypt to a key)");
  const first = await ask("Backup passphrase: ", { secret: true });
  if (twice && (await ask("Again: ", { secret: true })) !== first) throw new AzgateError("bad_parameter", "the passphrases differ");
  return first;
}

const sealFrom = async (argv: SecretArgs): Promise<Seal> => (argv.recipient ? { recipient: argv.recipient.trim() } : { passphrase: await passphrase(argv, true) });
const unsealFrom = async (argv: SecretArgs): Promise<Unseal> => (argv["identity-file"] ? { identity: identityIn(argv["identity-file"]) } : { passphrase: await passphrase(argv, false) });

/** An age identity file (as age-keygen writes it): the AGE-SECRET-KEY-1... line, comments aside. */
function identityIn(file: string): string {
  secretFile(file, "--identity-file");
  const line = readFileSync(file, "utf8").split(/\r?\n/).find((l) => l.startsWith("AGE-SECRET-KEY-1"));
  if (!line) throw new AzgateError("bad_parameter", `--identity-file ${file}: no AGE-SECRET-KEY-1... line (age-keygen writes one)`);
  return line.trim();
}

/** The host CA pin a backup holds (what the restored proxy will present), to check before serving it. */
function hostPinOf(backup: Backup): string {
  const item = backup.items.find((i) => i.key === KEYS.authority("host"));
  const pem = (item?.value as { cert_pem?: unknown } | undefined)?.cert_pem;
  try {
    return typeof pem === "string" ? pemPin(pem) : "none (the backup holds no host CA)";
  } catch {
    return "unreadable (the backup's host CA is not a certificate)";
  }
}

/** Where `admin restore` writes: the --config's database, else the --data-dir (never a database only the environment names). */
function restoreTarget(argv: AdminArgs): RestoreTarget {
  if (argv.config || !argv["data-dir"]) {
    const config = loadConfig({ file: argv.config, env: process.env });
    if (config.storage.type === "postgres") return { storage: config.storage };
  }
  if (!argv["data-dir"]) throw new AzgateError("bad_parameter", "say where to restore: azgate admin --data-dir NEW_DIR restore FILE (or --config with a postgres storage)");
  return { dataDir: path.resolve(argv["data-dir"]) };
}

/** A consistent snapshot of a cluster's backend: through its proxy (file:DIR, served or not), or read from its database. */
async function snapshotOf(source: RestoreTarget): Promise<Backup> {
  if ("dataDir" in source) {
    const conn = await connectAdmin({ dataDir: source.dataDir });
    try {
      return await conn.client.call<Backup>("GET", "/v1/admin/backup");
    } finally {
      await conn.close();
    }
  }
  const pg = await PostgresBackend.open({ connectionString: source.storage.conn_string, maxConnections: 2, clock: systemClock, log: (l) => printErr(l) });
  try {
    const backup = backupOf(await pg.snapshot(), (await pg.get<{ name: string }>(KEYS.clusterName))?.value.name ?? "", systemClock.date());
    if (!backup.header.cluster) throw new AzgateError("not_found", `${describeTarget(source)} holds no cluster`);
    await registeredSink(new PostgresAuditSink(pg.pool, systemClock)).emit(audit("BACKUP_CREATED", { user: LOCAL_ADMIN_NAME, items: backup.header.items, via: "backend clone" }));
    return backup;
  } finally {
    await pg.close();
  }
}

export function backupCommands(a: Argv<AdminArgs>) {
  return a
    .command<AdminArgs & SecretArgs & { file: string }>(
      "backup <file>",
      "Write an encrypted, consistent backup of the backend (users, roles, CAs and keys, tokens, requests, locks, every record) while the proxy serves",
      (b) =>
        b
          .positional("file", { type: "string", demandOption: true, describe: "Where to write it (an age file, 0600)" })
          .option("passphrase-file", { type: "string", describe: "Encrypt with the passphrase in this file's first line (or AZGATE_BACKUP_PASSPHRASE, or asked)" })
          .option("recipient", { type: "string", describe: "Encrypt to this age X25519 recipient (age1...) instead of a passphrase" }),
      withAdmin(async ({ client }, argv) => {
        const seal = await sealFrom(argv);
        const backup = await client.call<Backup>("GET", "/v1/admin/backup");
        await writeFileAtomic(path.resolve(argv.file), await sealBackup(encodeBackup(backup), seal), 0o600);
        print(`Backed up ${backup.header.items} records of cluster "${backup.header.cluster}" to ${argv.file}, encrypted ${"recipient" in seal ? `to ${seal.recipient}` : "with the passphrase"}.`);
      }),
    )
    .command<AdminArgs & SecretArgs & { file: string }>(
      "restore <file>",
      "Restore a backup into a new data dir (--data-dir) or an empty database (--config with postgres storage); the proxy then starts on it",
      (b) =>
        b
          .positional("file", { type: "string", demandOption: true, describe: "The backup (admin backup wrote it)" })
          .option("passphrase-file", { type: "string", describe: "The passphrase, in this file's first line (or AZGATE_BACKUP_PASSPHRASE, or asked)" })
          .option("identity-file", { type: "string", describe: "The age identity file (AGE-SECRET-KEY-1...) whose recipient it was encrypted to" }),
      run(async (argv) => {
        const target = restoreTarget(argv);
        let sealed: Uint8Array;
        try {
          sealed = readFileSync(argv.file);
        } catch (e) {
          throw new AzgateError("bad_parameter", `${argv.file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
        }
        const backup = decodeBackup(await openBackup(sealed, await unsealFrom(argv)));
        const n = await restoreBackup(target, backup, systemClock, (l) => printErr(l));
        print(`Restored ${n} records of cluster "${backup.header.cluster}" (taken ${backup.header.created} by azgate ${backup.header.azgate}) into ${describeTarget(target)}.\nHost CA pin: ${hostPinOf(backup)}\nCheck that pin is the cluster's, then start the proxy on it; agents reconnect with the same pin.`);
      }),
    )
    .command("backend", "Move a cluster between backends", (c) =>
      c
        .command<AdminArgs & { from: string; to: string }>(
          "clone",
          "Copy every record of a cluster's backend into an empty one: --from file:DIR --to postgres://... (a consistent snapshot, while the proxy serves)",
          (b) =>
            b
              .option("from", { type: "string", demandOption: true, describe: "file:DATA_DIR (through its proxy if one runs) or postgres://..." })
              .option("to", { type: "string", demandOption: true, describe: "postgres://USER@HOST:PORT/DB?sslmode=verify-full (empty; the password from PGPASSWORD) or file:NEW_DATA_DIR" }),
          run(async (argv) => {
            const from = parseStorageRef(argv.from, "--from");
            const to = parseStorageRef(argv.to, "--to");
            // A command line is readable by every user of the machine (ps, /proc): say where a password belongs.
            for (const [flag, ref] of [["--from", argv.from], ["--to", argv.to]] as const) {
              if (/^postgres(ql)?:\/\/[^/@]*:[^/@]*@/.test(ref) || /[?&](ssl)?password=/i.test(ref)) printErr(`warning: the password in ${flag} can be read by other users of this machine while the clone runs (ps); leave it out of the URL and set PGPASSWORD instead`);
              if (/^postgres(ql)?:\/\//.test(ref) && !/[?&]sslmode=(require|verify-ca|verify-full)\b/.test(ref) && !/@(localhost|127\.0\.0\.1|\[::1\])[:/]/.test(ref)) printErr(`warning: ${flag} does not ask for TLS (sslmode=verify-full): every key of the cluster would cross the network in the clear`);
            }
            const backup = await snapshotOf(from);
            const n = await restoreBackup(to, backup, systemClock, (l) => printErr(l));
            print(`Cloned ${n} records of cluster "${backup.header.cluster}" from ${describeTarget(from)} into ${describeTarget(to)}. Point the proxies at ${"dataDir" in to ? to.dataDir : `storage: { type: postgres, conn_string: ${redactedUrl(to.storage.conn_string)} }`}; the audit log stays where it was.`);
          }),
        )
        .demandCommand(1, "say what to do: azgate admin backend clone --from file:DIR --to postgres://..."),
    );
}
