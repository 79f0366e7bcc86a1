/**
 * The PostgreSQL schema, as numbered migrations run on start. Replicas that
 * start together take an advisory lock, so each migration runs once; a
 * migration and its version row commit together.
 */
import type pg from "pg";

const MIGRATIONS: [what: string, sql: string][] = [
  ["key-value items, and the audit log with indexes for the queries admin audit ls makes", `CREATE SEQUENCE azgate_revisions;
   CREATE TABLE azgate_items (
     key text PRIMARY KEY COLLATE "C",
     value jsonb NOT NULL,
     revision bigint NOT NULL,
     expires timestamptz
   );
   CREATE INDEX azgate_items_expires ON azgate_items (expires) WHERE expires IS NOT NULL;
   CREATE TABLE azgate_audit (
     id bigserial PRIMARY KEY,
     time timestamptz NOT NULL,
     event text NOT NULL,
     "user" text,
     azure_identity text,
     data jsonb NOT NULL
   );
   CREATE INDEX azgate_audit_time ON azgate_audit (time);
   CREATE INDEX azgate_audit_user ON azgate_audit ("user", time);
   CREATE INDEX azgate_audit_identity ON azgate_audit (azure_identity, time);
   CREATE INDEX azgate_audit_event ON azgate_audit (event, time);`],
  ["a counter every write moves once committed: the change mark readers cache by (Backend.changeMark)", `CREATE SEQUENCE azgate_changes;`],
  ["everything done under one access request (admin audit ls --request ID)", `CREATE INDEX azgate_audit_access_request ON azgate_audit ((data->>'access_request_id'), id) WHERE data ? 'access_request_id';`],
  [
    "the web UI's audit filters: an identity in any case, one session's requests, one request's start and end",
    `CREATE INDEX azgate_audit_identity_ci ON azgate_audit (lower(azure_identity), time);
   CREATE INDEX azgate_audit_session ON azgate_audit ((data->>'session_id'), id) WHERE data ? 'session_id';
   CREATE INDEX azgate_audit_request_id ON azgate_audit ((data->>'request_id')) WHERE data ? 'request_id';`,
  ],
  [
    "the audit export's order: each event's transaction, so an export never reads past an event still being committed (audit/postgres-sink.ts readAfter)",
    // No rewrite of the table (a volatile default on ADD COLUMN would fill every row under a lock that stops
    // audit writes, and so requests): existing rows keep NULL, read as 0 (before every new row), by id.
    // Every row, however it comes (an INSERT, a COPY of pg_restore), takes the transaction that writes it here: rows
    // restored from another server never carry its transaction IDs (which this one's order would misplace).
    `ALTER TABLE azgate_audit ADD COLUMN txid xid8;
   CREATE FUNCTION azgate_audit_txid() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.txid := pg_current_xact_id(); RETURN NEW; END $$;
   CREATE TRIGGER azgate_audit_txid BEFORE INSERT ON azgate_audit FOR EACH ROW EXECUTE FUNCTION azgate_audit_txid();
   CREATE INDEX azgate_audit_export ON azgate_audit ((coalesce(txid, '0'::xid8)), id);`,
  ],
];

/** The schema this azgate writes. */
export const POSTGRES_SCHEMA = MIGRATIONS.length;

/** An arbitrary constant: the advisory lock all azgate replicas agree on for migrations. */
const MIGRATION_LOCK = 4242_0001;

/** Brings the database to POSTGRES_SCHEMA; returns the migrations it ran (none when it was current). */
export async function migrate(pool: pg.Pool): Promise<{ from: number; to: number; what: string }[]> {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
    await client.query("CREATE TABLE IF NOT EXISTS azgate_schema (version int PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())");
    const { rows } = await client.query<{ v: number | null }>("SELECT max(version) AS v FROM azgate_schema");
    const current = rows[0]?.v ?? 0;
    if (current > MIGRATIONS.length) throw new Error(`the database schema is version ${current}, newer than this azgate knows (${MIGRATIONS.length}); upgrade azgate`);
    const applied: { from: number; to: number; what: string }[] = [];
    for (let v = current + 1; v <= MIGRATIONS.length; v++) {
      await client.query(MIGRATIONS[v - 1][1]);
      await client.query("INSERT INTO azgate_schema (version) VALUES ($1)", [v]);
      applied.push({ from: v - 1, to: v, what: MIGRATIONS[v - 1][0] });
    }
    await client.query("COMMIT");
    return applied;
  } catch (e) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw e;
  } finally {
    client.release();
  }
}
