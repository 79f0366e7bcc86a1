/**
 * The data dir's schema version (`DATA_DIR/schema.json`), as PostgreSQL has
 * its own (storage/postgres-schema.ts): migrations run once, at start, under
 * the data dir's lock, each logged; a data dir newer than this azgate
 * knows is refused, so an older binary never reads a format it does not
 * know. A data dir with state but no schema.json is azgate 0.1's: schema 1.
 */
import { promises as fsp } from "node:fs";
import path from "node:path";
import { AzgateError } from "../errors/index.ts";
import { readTextOrNull, writeFileAtomic } from "../runtime/index.ts";
import { VERSION } from "../version.ts";

interface Migration {
  to: number;
  what: string;
  run(dataDir: string): Promise<void>;
}

const MIGRATIONS: Migration[] = [
  // azgate 0.1 kept no schema version; its records and its audit log (events.jsonl, which the day files continue) read as they are.
  { to: 2, what: "the schema version is recorded (azgate 0.1's data dir had none)", run: async () => undefined },
];

export const DATA_DIR_SCHEMA = MIGRATIONS[MIGRATIONS.length - 1].to;
export const SCHEMA_FILE = "schema.json";

interface SchemaFile {
  version: number;
  /** The azgate that wrote it last. */
  azgate: string;
}

/** Brings the data dir to DATA_DIR_SCHEMA; returns the versions migrated to (none for a new or current dir). */
export async function migrateDataDir(dataDir: string, log: (line: string) => void): Promise<number[]> {
  const file = path.join(dataDir, SCHEMA_FILE);
  const text = await readTextOrNull(file);
  let current: number;
  if (text !== null) {
    const parsed = JSON.parse(text) as Partial<SchemaFile>;
    if (!Number.isInteger(parsed.version)) throw new AzgateError("config_invalid", `${file} holds no schema version; restore it from a backup`);
    current = parsed.version!;
  } else current = (await holdsState(dataDir)) ? 1 : DATA_DIR_SCHEMA;
  if (current > DATA_DIR_SCHEMA) {
    throw new AzgateError("version_unsupported", `the data dir ${dataDir} has schema ${current}, newer than this azgate ${VERSION} knows (${DATA_DIR_SCHEMA}); run the azgate that wrote it (${text ? (JSON.parse(text) as SchemaFile).azgate : "newer"}) or a later one`);
  }
  const applied: number[] = [];
  for (const m of MIGRATIONS.filter((x) => x.to > current)) {
    await m.run(dataDir);
    await writeFileAtomic(file, JSON.stringify({ version: m.to, azgate: VERSION } satisfies SchemaFile) + "\n");
    log(`data dir ${dataDir}: schema ${current} -> ${m.to}: ${m.what}`);
    applied.push(m.to);
    current = m.to;
  }
  if (text === null && applied.length === 0) await writeFileAtomic(file, JSON.stringify({ version: DATA_DIR_SCHEMA, azgate: VERSION } satisfies SchemaFile) + "\n");
  return applied;
}

/** Whether an earlier azgate kept anything here (its backend or audit log). */
async function holdsState(dataDir: string): Promise<boolean> {
  for (const sub of ["backend", "audit"]) {
    const entries = await fsp.readdir(path.join(dataDir, sub)).catch(() => []);
    if (entries.length > 0) return true;
  }
  return false;
}
