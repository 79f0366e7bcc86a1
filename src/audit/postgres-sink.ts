/**
 * Audit events in PostgreSQL (the `azgate_audit` table of
 * storage/postgres-schema.ts), shared by every proxy replica. An event is
 * acknowledged once its INSERT has committed. `user`, `azure_identity`,
 * `event` and `time` are columns with indexes; the whole event is kept as
 * JSON beside them.
 */
import type pg from "pg";
import { ciFilter, CursorUnusable, stamped, DEFAULT_AUDIT_LIMIT, type AuditEvent, type AuditQuery, type AuditSink, type Pruned, type ReadPage } from "./sink.ts";
import type { Clock } from "../util/clock.ts";

/** The export's order (storage/postgres-schema.ts migration 5 indexes it): a row's transaction, 0 for rows from before. */
const ORDER = `coalesce(txid, '0'::xid8)`;

/** A cursor of this sink: pg:TXID:ID, each in its type's range. */
function parsePgCursor(cursor: string): { tx: string; id: string } {
  const m = /^pg:(\d{1,20}):(\d{1,19})$/.exec(cursor);
  if (!m || BigInt(m[1]) > 2n ** 64n - 1n || BigInt(m[2]) > 2n ** 63n - 1n) throw new CursorUnusable(`not a cursor of this audit log (PostgreSQL's): ${JSON.stringify(cursor.slice(0, 80))}`);
  return { tx: m[1], id: m[2] };
}

/** Rows one retention statement deletes. */
export const PRUNE_BATCH = 1000;

export class PostgresAuditSink implements AuditSink {
  readonly remote = true;
  constructor(
    private readonly pool: pg.Pool,
    /** Stamps each event's time: this replica's clock, as the file sink does. */
    private readonly clock: Clock,
  ) {}

  async emit(e: Omit<AuditEvent, "time">): Promise<void> {
    // PostgreSQL text and jsonb refuse NUL: an event quoting hostile input must still be written.
    const event = JSON.parse(JSON.stringify(stamped(e, this.clock.date().toISOString())).replace(/\\u0000/g, "\\ufffd")) as AuditEvent;
    const identity = typeof event.azure_identity === "string" ? event.azure_identity : null;
    await this.pool.query(`INSERT INTO azgate_audit (time, event, "user", azure_identity, data) VALUES ($1, $2, $3, $4, $5)`, [
      event.time,
      event.event,
      event.user ?? null,
      identity,
      JSON.stringify(event),
    ]);
  }

  /** Each INSERT is its own commit; there is no batch to join. */
  emitLater(e: Omit<AuditEvent, "time">): Promise<void> {
    return this.emit(e);
  }

  /** The newest `limit` matches, returned oldest first (as the file sink does). */
  async search(q: AuditQuery): Promise<AuditEvent[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const param = (v: unknown) => (params.push(v), `$${params.length}`);
    if (q.since) where.push(`time >= ${param(q.since.toISOString())}`);
    if (q.user) where.push(`"user" = ${param(q.user)}`);
    if (q.event) where.push(`(event = ${param(q.event)} OR starts_with(event, ${param(`${q.event}.`)}))`);
    if (q.request) where.push(`data ? 'access_request_id' AND data->>'access_request_id' = ${param(q.request)}`);
    if (q.until) where.push(`time < ${param(q.until.toISOString())}`);
    if (q.app) where.push(`data->>'app' = ${param(q.app)}`);
    if (q.azureIdentity) where.push(`lower(azure_identity) = ${param(q.azureIdentity.toLowerCase())}`);
    if (q.method) where.push(`data->>'method' = ${param(q.method.toUpperCase())}`);
    if (q.status) {
      const cls = /^([1-5])xx$/i.exec(q.status);
      if (cls) where.push(`jsonb_typeof(data->'status') = 'number' AND (data->>'status')::int / 100 = ${param(Number(cls[1]))}`);
      else where.push(`jsonb_typeof(data->'status') = 'number' AND (data->>'status')::numeric = ${param(Number(q.status))}`);
    }
    // LIKE patterns: the user's % and _ are literal; their * is the wildcard.
    const like = (v: string) => v.replace(/[\\%_]/g, "\\$&");
    if (q.action) where.push(`data->>'action' ILIKE ${param(like(q.action).replace(/\*/g, "%"))}`);
    if (q.resource) where.push(`lower(data->>'scope') LIKE ${param(`${like(q.resource.toLowerCase())}%`)}`);
    if (q.decision) where.push(`data->'policy'->>'decision' = ${param(q.decision)}`);
    if (q.session) where.push(`data->>'session_id' = ${param(q.session)}`);
    if (q.requestId) where.push(`data->>'request_id' = ${param(q.requestId)}`);
    if (q.command) where.push(`data->>'command_id' = ${param(q.command)}`);
    if (q.bot) where.push(`data->>'bot' = ${param(q.bot)}`);
    if (q.ci) {
      const { key, value } = ciFilter(q.ci);
      if (key) where.push(`jsonb_typeof(data->'ci') = 'object' AND data->'ci'->>${param(key)} = ${param(value)}`);
      else where.push(`jsonb_typeof(data->'ci') = 'object' AND EXISTS (SELECT 1 FROM jsonb_each(data->'ci') f WHERE f.value = to_jsonb(${param(value)}::text))`);
    }
    const filter = where.length ? `WHERE ${where.join(" AND ")}` : "";
    const limit = param(q.limit ?? DEFAULT_AUDIT_LIMIT);
    const { rows } = await this.pool.query<{ data: AuditEvent }>(`SELECT data FROM (SELECT id, data FROM azgate_audit ${filter} ORDER BY id DESC LIMIT ${limit}) newest ORDER BY id`, params);
    return rows.map((r) => r.data);
  }

  /**
   * Deletes rows older than `before` in batches of PRUNE_BATCH, each its own
   * short statement on one pooled connection, with a turn of the event loop
   * between: the request path's INSERTs touch other rows and never wait for
   * it. SKIP LOCKED lets replicas pruning at once share the work.
   */
  async prune(before: Date): Promise<Pruned> {
    let events = 0;
    for (;;) {
      const { rowCount } = await this.pool.query(
        `DELETE FROM azgate_audit WHERE id IN (SELECT id FROM azgate_audit WHERE time < $1 ORDER BY id LIMIT ${PRUNE_BATCH} FOR UPDATE SKIP LOCKED)`,
        [before.toISOString()],
      );
      events += rowCount ?? 0;
      if ((rowCount ?? 0) < PRUNE_BATCH) break;
      await new Promise((next) => setImmediate(next));
    }
    return { events, oldest: await this.oldest() };
  }

  async oldest(): Promise<string | null> {
    const { rows } = await this.pool.query<{ t: Date | null }>(`SELECT min(time) AS t FROM azgate_audit`);
    return rows[0]?.t ? rows[0].t.toISOString() : null;
  }

  /**
   * Events in the order of their transactions (the `txid` column, stamped by
   * a trigger as each row is written here; rows from before it existed read
   * as 0, so first), and only those of transactions older than every one still
   * running (pg_snapshot_xmin): ids are taken before commit, so an INSERT
   * that commits late may hold a smaller id than rows already read, but no
   * transaction that has not ended can have a txid below the snapshot's
   * xmin, and every later one gets a larger txid. So nothing is ever written
   * behind the cursor. A long-running transaction anywhere on the server
   * holds the reading back (`held`: it waits; it loses nothing).
   */
  async readAfter(cursor: string | null, limit: number, opts: { since?: Date; until?: Date } = {}): Promise<ReadPage> {
    const at = cursor === null ? { tx: "0", id: "0" } : parsePgCursor(cursor);
    // (Rows never carry another server's transaction IDs: a trigger stamps each row as it is written, restored or not.)
    const { rows: [snap] } = await this.pool.query<{ xmax: string }>(`SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS xmax`);
    if (BigInt(at.tx) >= BigInt(snap.xmax)) throw new CursorUnusable("this cursor is another database server's (its transaction is one this server has not reached)");
    const since = cursor === null && opts.since ? opts.since.toISOString() : null;
    // (The text form is named tx: an output column named txid would be what ORDER BY sorts, as text.)
    const { rows } = await this.pool.query<{ tx: string; id: string; data: AuditEvent }>(
      `SELECT ${ORDER}::text AS tx, id, data FROM azgate_audit
        WHERE (${ORDER}, id) > ($1::text::xid8, $2::bigint) AND ${ORDER} < pg_snapshot_xmin(pg_current_snapshot()) AND ($4::timestamptz IS NULL OR time >= $4)
        ORDER BY ${ORDER}, id LIMIT $3`,
      [at.tx, at.id, limit, since],
    );
    const last = rows.at(-1);
    const next = last ? `pg:${last.tx}:${last.id}` : cursor;
    let held = false;
    if (rows.length < limit) {
      const after = last ? { tx: last.tx, id: last.id } : at;
      const { rows: waiting } = await this.pool.query<{ held: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM azgate_audit WHERE (${ORDER}, id) > ($1::text::xid8, $2::bigint) AND ${ORDER} >= pg_snapshot_xmin(pg_current_snapshot()) AND ($3::timestamptz IS NULL OR time < $3)) AS held`,
        [after.tx, after.id, opts.until ? opts.until.toISOString() : null],
      );
      held = waiting[0]?.held ?? false;
    }
    return { events: rows.map((r) => r.data), cursor: next, ...(held ? { held } : {}) };
  }

  async close(): Promise<void> {
    // The pool belongs to the backend, which closes it.
  }
}
