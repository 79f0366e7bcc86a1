/**
 * The audit export (config `audit.export`): every event of the audit log
 * sent to each target at least once, in the log's order, across restarts
 * and crashes.
 *
 * Each target has one record in the backend (KEYS.auditExport): the cursor
 * after the last event the target took, and which replica sends for it now
 * (a lease, renewed with every batch). A batch is: claim the lease, read
 * the events after the cursor (AuditSink.readAfter), send them, then move
 * the cursor with a compare-and-swap. A crash between the send and the move
 * sends that batch again after the restart (at least once: receivers drop
 * duplicates by each event's uid, or the batch's webhook-id); no event is
 * ever passed over. On PostgreSQL, the replicas share the records: one
 * replica sends for a target while its lease lasts; when it stops (or dies
 * and the lease runs out) another takes over from the cursor.
 *
 * A target that fails gets the same batch again after a back-off that
 * doubles from BACKOFF_MIN_MS to BACKOFF_MAX_MS, then catches up batch
 * after batch. Events of every type are sent, known to this azgate or not.
 */
import { AzgateError } from "../../errors/index.ts";
import { CursorUnusable, type AuditSink } from "../../audit/sink.ts";
import type { Backend, Item } from "../../storage/backend.ts";
import type { Clock, Timer } from "../../util/clock.ts";
import { KEYS } from "../keys.ts";
import type { ExportTarget } from "./targets.ts";

export interface ExportState {
  /** After the last event the target took (null: none yet, start at the log's beginning). */
  cursor: string | null;
  /** The replica that sends for this target, until `until`. */
  holder: string;
  until: string;
  /** Events sent so far (a duplicate after a crash counts again). */
  sent: number;
}

/** Events per batch (a webhook POST, a run of syslog messages). */
export const BATCH = 500;
/** How long a replica's claim on a target lasts without a batch renewing it. */
export const LEASE_MS = 30_000;
/** How often a caught-up exporter looks for new events. */
export const POLL_MS = 1_000;
export const BACKOFF_MIN_MS = 1_000;
export const BACKOFF_MAX_MS = 5 * 60_000;

export interface ExporterDeps {
  backend: Backend;
  audit: AuditSink;
  clock: Clock;
  /** This replica's id: the lease's holder. */
  replica: string;
  target: ExportTarget;
  /** Counts what was sent and what failed (the proxy's metrics). */
  count?: (target: string, what: "events" | "failures", n: number) => void;
  log?: (line: string) => void;
}

export type StepResult = { sent: number; more: boolean } | "held_elsewhere";

export class AuditExporter {
  private timer: Timer | null = null;
  private running: Promise<void> = Promise.resolve();
  private stopped = true;
  private failures = 0;
  /** Events per batch: BATCH, less after a receiver refused a batch as too large. */
  private batch = BATCH;
  private heldSince: number | null = null;
  private heldToldAt = 0;

  constructor(private readonly d: ExporterDeps) {}

  private get key(): string {
    return KEYS.auditExport(this.d.target.name);
  }

  /** One batch: claim (or renew) the lease, read after the cursor, send, move the cursor. */
  async step(): Promise<StepResult> {
    let claimed = await this.claim();
    if (!claimed) return "held_elsewhere";
    let page;
    try {
      page = await this.d.audit.readAfter(claimed.value.cursor, this.batch);
    } catch (e) {
      if (!(e instanceof CursorUnusable)) throw e;
      // A cursor of another log (a data dir cloned to PostgreSQL, a database restored on another server): start again, repeating rather than losing.
      this.d.log?.(`[proxy] audit export to ${this.d.target.name}: its cursor is not this log's (${e.message}); sending the log again from its beginning`);
      claimed = await this.d.backend.compareAndSwap<ExportState>(this.key, claimed.revision, { ...claimed.value, cursor: null });
      page = await this.d.audit.readAfter(null, this.batch);
    }
    const { events, cursor } = page;
    // Held back with nothing to read: the wait is timed from here; any event read is progress, and starts it again.
    this.noteHeld(!!page.held && events.length === 0);
    if (events.length === 0) return { sent: 0, more: false };
    try {
      await this.d.target.send(events);
    } catch (e) {
      // A receiver that takes no body this large (HTTP 413): smaller batches, down to one event.
      if ((e as { tooLarge?: boolean }).tooLarge && this.batch > 1) this.batch = Math.max(1, Math.floor(events.length / 2));
      throw e;
    }
    this.d.count?.(this.d.target.name, "events", events.length);
    try {
      await this.d.backend.compareAndSwap<ExportState>(this.key, claimed.revision, { ...claimed.value, cursor, sent: claimed.value.sent + events.length, until: this.leaseEnd() });
    } catch (e) {
      // Another replica took the target over meanwhile (this send outlived the lease): it sends from the cursor it read, so this batch may come twice.
      if ((e as AzgateError).code === "compare_failed") return "held_elsewhere";
      throw e;
    }
    const full = events.length === this.batch;
    // A batch taken after smaller ones (a 413): twice as many next time, back up to BATCH.
    if (this.batch < BATCH) this.batch = Math.min(BATCH, this.batch * 2);
    return { sent: events.length, more: full };
  }

  /** Says once a minute (of reads) that events wait for a transaction open elsewhere in the database. */
  private noteHeld(held: boolean): void {
    if (!held) return void (this.heldSince = null);
    const now = this.d.clock.now();
    this.heldSince ??= now;
    if (now - this.heldSince >= 60_000 && now - this.heldToldAt >= 60_000) {
      this.heldToldAt = now;
      this.d.log?.(`[proxy] audit export to ${this.d.target.name} is held back since ${new Date(this.heldSince).toISOString()}: a transaction open in the database since then keeps later events unreadable (it waits; nothing is lost)`);
    }
  }

  /** Batches until the target has every event there is (or another replica holds it). Returns how many were sent. */
  async drain(): Promise<number> {
    let n = 0;
    for (;;) {
      const r = await this.step();
      if (r === "held_elsewhere") return n;
      n += r.sent;
      if (!r.more) return n;
    }
  }

  /** Exports now and then every POLL_MS, backing off while the target fails. */
  start(): this {
    this.stopped = false;
    this.schedule(0);
    return this;
  }

  /** Resolves when the pass in flight (if any) has ended. */
  idle(): Promise<void> {
    return this.running;
  }

  /** Stops after the batch in flight, and gives up the lease so another replica takes the target over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    await this.running;
    this.d.target.close();
    const item = await this.d.backend.get<ExportState>(this.key).catch(() => null);
    if (item?.value.holder === this.d.replica) await this.d.backend.compareAndSwap(this.key, item.revision, { ...item.value, until: this.d.clock.date().toISOString() }).catch(() => undefined);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = this.d.clock.after(ms, () => {
      this.running = this.pass();
    });
    this.timer.unref();
  }

  private async pass(): Promise<void> {
    let next = POLL_MS;
    try {
      const r = await this.step();
      if (this.failures > 0) this.d.log?.(`[proxy] audit export to ${this.d.target.name} works again after ${this.failures} failed attempt(s)`);
      this.failures = 0;
      if (r === "held_elsewhere") next = LEASE_MS / 2;
      else if (r.more) next = 0;
    } catch (e) {
      this.failures++;
      this.d.count?.(this.d.target.name, "failures", 1);
      next = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (this.failures - 1));
      this.d.log?.(`[proxy] audit export to ${this.d.target.name} failed (attempt ${this.failures}; next in ${Math.round(next / 1000)} s): ${(e as Error).message}`);
    }
    this.schedule(next);
  }

  private leaseEnd(): string {
    return new Date(this.d.clock.now() + LEASE_MS).toISOString();
  }

  /** The target's record with this replica holding it, or null when another replica's lease has not run out. */
  private async claim(): Promise<Item<ExportState> | null> {
    const item = await this.d.backend.get<ExportState>(this.key);
    const left = item ? Date.parse(item.value.until) - this.d.clock.now() : 0;
    if (item && item.value.holder !== this.d.replica && left > 0) return null;
    // Held by this replica with half its time or more left: no write (a caught-up exporter only reads while it polls).
    if (item && item.value.holder === this.d.replica && left >= LEASE_MS / 2) return item;
    const value: ExportState = { cursor: item?.value.cursor ?? null, sent: item?.value.sent ?? 0, holder: this.d.replica, until: this.leaseEnd() };
    try {
      return await this.d.backend.compareAndSwap(this.key, item?.revision ?? null, value);
    } catch (e) {
      if ((e as AzgateError).code === "compare_failed") return null;
      throw e;
    }
  }
}

/** Starts an exporter per target; stop() stops them all. */
export function startAuditExport(deps: Omit<ExporterDeps, "target">, targets: ExportTarget[]): { exporters: AuditExporter[]; stop(): Promise<void> } {
  const exporters = targets.map((target) => new AuditExporter({ ...deps, target }).start());
  return { exporters, stop: async () => void (await Promise.all(exporters.map((x) => x.stop()))) };
}
