/**
 * The backend on PostgreSQL (node-postgres), for several proxy replicas
 * sharing one state. One row per key; revisions come from one sequence, so
 * compare-and-swap is a conditional UPDATE (or INSERT) that either returns
 * the new row or nothing. Expiry is decided by this replica's Clock, the
 * same clock that wrote the expiry and that judges the records' own times
 * (a proof's window and its nonce's row, a grant's window and its row): never
 * the database's now(), which would mix two clocks (docs/architecture.md,
 * "Time"). Watchers hear of changes through LISTEN/NOTIFY, from this process
 * and every other.
 */
import pg from "pg";
import { parse } from "pg-connection-string";
import { AzgateError } from "../errors/index.ts";
import { checkKey, tell, type Backend, type Item, type PutOptions, type WatchEvent } from "./backend.ts";
import { migrate } from "./postgres-schema.ts";
import type { Clock, Timer } from "../util/clock.ts";

const CHANNEL = "azgate_items";
/** A row that has not expired at the time in parameter `$n` (this replica's clock). */
const live = (n: number) => `(expires IS NULL OR expires > $${n})`;
/**
 * Rows are deleted only this long after they expired: a replica whose clock
 * runs ahead must not remove what the others still read as live (they read
 * it as absent once their own clock passes its expiry, swept or not).
 */
export const SWEEP_GRACE_MS = 5 * 60_000;
const MAX_PAYLOAD = 7900;
/** A replica whose change feed is down tries to LISTEN again after this, doubling each failure up to RELISTEN_MAX_MS. */
export const RELISTEN_MS = 1_000;
export const RELISTEN_MAX_MS = 30_000;
/**
 * The feed's connection is asked `SELECT 1` this often, and is taken as dead
 * without an answer within FEED_CHECK_TIMEOUT_MS: a NAT or a load balancer's
 * idle timeout drops a connection without a word, and a LISTEN connection
 * says nothing of its own.
 */
export const FEED_CHECK_MS = 30_000;
export const FEED_CHECK_TIMEOUT_MS = 10_000;

type Row = { key: string; value: unknown; revision: string; expires: Date | null };

function toItem<T>(row: Row): Item<T> {
  return { key: row.key, value: row.value as T, revision: String(row.revision), ...(row.expires ? { expires: row.expires.toISOString() } : {}) };
}

export interface PostgresOptions {
  connectionString: string;
  /** Extra CA certificates (PEM) to verify the server with, e.g. Azure's. */
  caPem?: string;
  /** A password source called for each new connection (Entra tokens expire; see postgres-auth.ts). */
  password?: () => Promise<string>;
  maxConnections?: number;
  /** Decides what has expired, and when the sweeper runs. */
  clock: Clock;
  /** Where each schema migration run at start is logged. */
  log?: (line: string) => void;
}

export class PostgresBackend implements Backend {
  private readonly watchers = new Set<{ prefix: string; fn: (e: WatchEvent) => void }>();
  private listener: pg.PoolClient | null = null;
  private listening: Promise<void> | undefined;
  /** LISTEN has been answered on `listener`; `everUp`: on any connection, ever. */
  private feedUp = false;
  private everUp = false;
  /** The next attempt to LISTEN again, while the change feed is down, and the wait before the one after. */
  private relistenTimer: Timer | null = null;
  private relistenDelay = RELISTEN_MS;
  /** A retry has failed since the feed was last up (said once an outage). */
  private feedOutage = false;
  private readonly feedCheck: Timer;
  /** The feed's connection a check is out on (its answer may never come: a new connection is checked afresh). */
  private checking: pg.PoolClient | null = null;
  private closed = false;

  private readonly sweeper: Timer;

  private constructor(
    readonly pool: pg.Pool,
    private readonly clock: Clock,
  ) {
    // Expired rows (proof nonces, login attempts, advertisements) are removed in bulk once a minute.
    this.sweeper = clock.every(60_000, () => void pool.query(`DELETE FROM azgate_items WHERE expires <= $1`, [this.sweepBefore()]).catch(() => undefined)).unref();
    this.feedCheck = clock.every(FEED_CHECK_MS, () => this.checkFeed()).unref();
  }

  private nowDate(): Date {
    return this.clock.date();
  }

  private sweepBefore(): Date {
    return new Date(this.clock.now() - SWEEP_GRACE_MS);
  }

  static async open(o: PostgresOptions): Promise<PostgresBackend> {
    const pool = new pg.Pool(poolConfig(o));
    // An idle connection that breaks is dropped from the pool; without this handler it would crash the process.
    pool.on("error", (e) => console.error("[postgres] idle connection failed:", e.message));
    try {
      for (const m of await migrate(pool)) o.log?.(`PostgreSQL schema ${m.from} -> ${m.to}: ${m.what}`);
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw new AzgateError("connection_failed", `PostgreSQL: ${(e as Error).message}`, { cause: e });
    }
    const backend = new PostgresBackend(pool, o.clock);
    // A new connection made while the feed waits to retry: the database takes connections again, so LISTEN now.
    pool.on("connect", () => backend.relistenNow());
    return backend;
  }

  async get<T>(key: string): Promise<Item<T> | null> {
    checkKey(key);
    const { rows } = await this.pool.query<Row>(`SELECT key, value, revision, expires FROM azgate_items WHERE key = $1 AND ${live(2)}`, [key, this.nowDate()]);
    return rows[0] ? toItem<T>(rows[0]) : null;
  }

  async put<T>(key: string, value: T, opts?: PutOptions): Promise<Item<T>> {
    checkKey(key);
    const { rows } = await this.pool.query<Row>(
      `INSERT INTO azgate_items (key, value, revision, expires) VALUES ($1, $2, nextval('azgate_revisions'), $3)
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, revision = EXCLUDED.revision, expires = EXCLUDED.expires
       RETURNING key, value, revision, expires`,
      [key, JSON.stringify(value), opts?.expires ?? null],
    );
    return this.changed(toItem<T>(rows[0]));
  }

  async compareAndSwap<T>(key: string, expected: string | null, value: T, opts?: PutOptions): Promise<Item<T>> {
    checkKey(key);
    const params = [key, JSON.stringify(value), opts?.expires ?? null, this.nowDate()];
    // null: the key must be absent, and an expired row counts as absent.
    const sql =
      expected === null
        ? `INSERT INTO azgate_items (key, value, revision, expires) VALUES ($1, $2, nextval('azgate_revisions'), $3)
           ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, revision = EXCLUDED.revision, expires = EXCLUDED.expires
           WHERE azgate_items.expires IS NOT NULL AND azgate_items.expires <= $4
           RETURNING key, value, revision, expires`
        : `UPDATE azgate_items SET value = $2, revision = nextval('azgate_revisions'), expires = $3
           WHERE key = $1 AND revision = $5 AND ${live(4)} RETURNING key, value, revision, expires`;
    if (expected !== null && !/^\d+$/.test(expected)) throw new AzgateError("compare_failed", `${key} has changed since it was read`);
    const { rows } = await this.pool.query<Row>(sql, expected === null ? params : [...params, expected]);
    if (!rows[0]) throw new AzgateError("compare_failed", `${key} has changed since it was read`);
    return this.changed(toItem<T>(rows[0]));
  }

  async delete(key: string): Promise<boolean> {
    checkKey(key);
    const { rows } = await this.pool.query<{ live: boolean }>(`DELETE FROM azgate_items WHERE key = $1 RETURNING ${live(2)} AS live`, [key, this.nowDate()]);
    if (!rows[0]) return false;
    await this.notify({ type: "delete", key });
    return rows[0].live;
  }

  async list<T>(prefix: string): Promise<Item<T>[]> {
    // Expired rows are swept as lists pass over them, as the file backend does.
    // LIKE 'prefix%' on a "C"-collated key walks the primary key's index.
    const like = prefix.replace(/[\\%_]/g, "\\$&") + "%";
    await this.pool.query(`DELETE FROM azgate_items WHERE key LIKE $1 AND expires <= $2`, [like, this.sweepBefore()]);
    const { rows } = await this.pool.query<Row>(`SELECT key, value, revision, expires FROM azgate_items WHERE key LIKE $1 AND ${live(2)} ORDER BY key`, [like, this.nowDate()]);
    return rows.map((r) => toItem<T>(r));
  }

  /** One statement: PostgreSQL reads it from one snapshot, whatever commits meanwhile. */
  async snapshot(): Promise<Item[]> {
    const { rows } = await this.pool.query<Row>(`SELECT key, value, revision, expires FROM azgate_items WHERE ${live(1)} ORDER BY key`, [this.nowDate()]);
    return rows.map((r) => toItem(r));
  }

  watch(prefix: string, fn: (e: WatchEvent) => void): () => void {
    const w = { prefix, fn };
    this.watchers.add(w);
    // While the feed waits for a retry, a new watcher brings the retry forward: those waiting hear the resync with it.
    if (this.relistenTimer) this.relistenNow();
    else this.listen().catch((e) => console.error("[postgres] cannot LISTEN for changes:", (e as Error).message));
    return () => this.watchers.delete(w);
  }

  /**
   * Resolves once LISTEN is in place: changes committed by other replicas
   * after this point reach the watchers. (This replica's own writes wait for
   * it already.) Callers that load state and then watch await it in between.
   */
  watching(): Promise<void> {
    return this.listen();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.sweeper.cancel();
    this.feedCheck.cancel();
    this.relistenTimer?.cancel();
    this.watchers.clear();
    this.listener?.release();
    this.listener = null;
    await this.pool.end();
  }

  private async changed<T>(item: Item<T>): Promise<Item<T>> {
    await this.notify({ type: "put", key: item.key, item });
    return item;
  }

  /**
   * NOTIFY payloads are limited to 8000 bytes: a put carries its item when it
   * fits (so a watcher sees the value even if the key is deleted just after),
   * otherwise the key only, and watchers read the item.
   */
  private async notify(e: { type: "put" | "delete"; key: string; item?: Item }): Promise<void> {
    // A watcher added just before this write must hear of it: the first LISTEN is awaited. A feed that went down
    // since is not: its watchers hear a resync once it is back, and the write has committed already.
    if (!this.everUp) await this.listening?.catch(() => undefined);
    let payload = JSON.stringify(e);
    if (payload.length > MAX_PAYLOAD) payload = JSON.stringify({ type: e.type, key: e.key });
    // The change mark moves here, after the write committed (a revision's nextval runs before its commit).
    await this.pool.query(`SELECT pg_notify($1, $2), nextval('azgate_changes')`, [CHANNEL, payload]);
  }

  async changeMark(): Promise<string> {
    const { rows } = await this.pool.query<{ last_value: string; is_called: boolean }>(`SELECT last_value, is_called FROM azgate_changes`);
    return rows[0].is_called ? String(rows[0].last_value) : "0";
  }

  private listen(): Promise<void> {
    this.listening ??= this.openFeed();
    return this.listening;
  }

  /**
   * The change feed: one connection, out of the pool, LISTENing. The database
   * may cut it at any time (a restart, a failover, idle_session_timeout, a
   * pooler or a firewall): an error on a checked-out client is not the pool's
   * to handle, and unhandled it would end the process.
   */
  private async openFeed(): Promise<void> {
    const client = await this.pool.connect().catch((e) => {
      this.feedDown(null, e);
      throw e;
    });
    if (this.closed) return client.release(); // closed while it connected: pool.end() waits for it
    this.listener = client;
    client.on("error", (e) => this.feedDown(client, e));
    client.on("end", () => this.feedDown(client, new Error("connection ended")));
    client.on("notification", (n) => void this.dispatch(n.payload ?? "").catch((err) => console.error("[postgres] watch:", (err as Error).message)));
    try {
      // On the clock, as the checks are: a LISTEN whose answer never comes (a connection silenced as it was sent)
      // would otherwise hold the feed down for as long as TCP takes to notice, hours.
      await this.answered(client, `LISTEN ${CHANNEL}`);
    } catch (e) {
      this.feedDown(client, e as Error);
      throw e;
    }
    if (this.closed) {
      this.listener = null;
      return client.release();
    }
    this.feedUp = true;
    this.everUp = true;
  }

  /** `sql` on the feed's connection, failed when no answer comes within FEED_CHECK_TIMEOUT_MS on the clock. */
  private answered(client: pg.PoolClient, sql: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timeout = this.clock.after(FEED_CHECK_TIMEOUT_MS, () => reject(new Error(`no answer to ${sql.split(" ")[0]} in ${FEED_CHECK_TIMEOUT_MS / 1000}s`)));
      client.query(sql).then(
        () => (timeout.cancel(), resolve()),
        (e: Error) => (timeout.cancel(), reject(e)),
      );
    });
  }

  /**
   * The feed is down (`client` null: it could not be opened). What other
   * replicas commit until it is back is not heard. A feed that had passed a
   * check is opened again at once (the database is most likely there); any
   * other is tried again after RELISTEN_MS, doubling to RELISTEN_MAX_MS until
   * a check passes again (a connection cut as soon as LISTEN is answered
   * would otherwise loop), or as soon as the pool makes a connection.
   * Once it is back every watcher hears a resync (reload what you follow).
   * While the pool cannot connect either, this replica's requests, whose
   * state and start events are read and committed there, are refused.
   */
  private feedDown(client: pg.PoolClient | null, e: Error): void {
    if (this.closed) return;
    let wasUp = false;
    if (client) {
      if (this.listener !== client) return; // heard already (an error, then its end)
      wasUp = this.feedUp;
      this.listener = null;
      this.feedUp = false;
      client.release(e);
      if (wasUp) console.error(`[postgres] the change feed (LISTEN) was cut: ${e.message}; listening again`);
    }
    this.listening = undefined;
    if (wasUp && this.relistenDelay === RELISTEN_MS) {
      this.relistenDelay = RELISTEN_MS * 2;
      void Promise.resolve().then(() => this.relisten());
    } else if (!this.relistenTimer) {
      const delay = this.relistenDelay;
      this.relistenDelay = Math.min(delay * 2, RELISTEN_MAX_MS);
      this.relistenTimer = this.clock.after(delay, () => {
        this.relistenTimer = null;
        void this.relisten();
      });
    }
  }

  private relistenNow(): void {
    if (!this.relistenTimer) return; // the feed is up, or an attempt is under way (its own connection)
    this.relistenTimer.cancel();
    this.relistenTimer = null;
    void this.relisten();
  }

  private async relisten(): Promise<void> {
    if (this.closed) return;
    try {
      await this.listen();
    } catch (e) {
      if (!this.feedOutage) console.error(`[postgres] cannot LISTEN for changes: ${(e as Error).message}; trying again (every ${RELISTEN_MAX_MS / 1000}s at most)`);
      this.feedOutage = true;
      return;
    }
    if (this.closed) return;
    if (this.feedOutage) console.error("[postgres] the change feed is back");
    this.feedOutage = false;
    this.resync();
  }

  /** Asks the feed's connection a question: no answer in time, and it is taken as cut (FEED_CHECK_MS says why). */
  private checkFeed(): void {
    const client = this.listener;
    if (!client || !this.feedUp || this.checking === client) return;
    this.checking = client;
    this.answered(client, "SELECT 1")
      .then(
        // Healthy for a check's period: a cut from here is retried at once.
        () => void (this.listener === client && (this.relistenDelay = RELISTEN_MS)),
        (e: Error) => this.feedDown(client, e),
      )
      .finally(() => {
        if (this.checking === client) this.checking = null;
      });
  }

  private resync(): void {
    for (const w of [...this.watchers]) tell(w.fn, { type: "resync" });
  }

  private async dispatch(payload: string): Promise<void> {
    const e = JSON.parse(payload) as { type: "put" | "delete"; key: string; item?: Item };
    const interested = [...this.watchers].filter((w) => e.key.startsWith(w.prefix));
    if (interested.length === 0) return;
    let event: WatchEvent;
    if (e.type === "delete") event = { type: "delete", key: e.key };
    else {
      const item = e.item ?? (await this.get(e.key));
      if (!item) return; // too large to carry, and deleted since: its delete event follows
      event = { type: "put", item };
    }
    for (const w of interested) tell(w.fn, event);
  }
}

function poolConfig(o: PostgresOptions): pg.PoolConfig {
  // Fields parsed from the string would override the ones given beside it, so it is parsed here and merged once.
  const fromString = parse(o.connectionString) as pg.PoolConfig & { sslmode?: string };
  // keepAlive: TCP keepalive on every connection, so one a middlebox dropped fails rather than waits for ever.
  const config: pg.PoolConfig = { ...fromString, max: o.maxConnections ?? 10, connectionTimeoutMillis: 10_000, application_name: "azgate", keepAlive: true };
  // A CA given here means: verify the server against it, whatever sslmode the string says.
  if (o.caPem) config.ssl = { ca: o.caPem, rejectUnauthorized: true };
  if (o.password) config.password = o.password;
  return config;
}
