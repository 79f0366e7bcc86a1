/**
 * Notifications go through an outbox in the backend: a step of an access
 * request writes one entry per target that hears it, and every proxy
 * replica's dispatcher sends the entries that are due. An entry is claimed
 * with compare-and-swap, so of several replicas one sends it; a failed send
 * is retried with back-off, and each failure is audited. Entries survive a
 * restart; the request's own state never waits on a receiver.
 */
import { audit } from "../../audit/events.ts";
import { AzgateError } from "../../errors/index.ts";
import type { AuditSink } from "../../audit/sink.ts";
import { targetHears, type NotificationTarget } from "../../resources/notification-target.ts";
import type { User } from "../../resources/user.ts";
import type { Backend, Item } from "../../storage/backend.ts";
import { KEYS } from "../keys.ts";
import { deliver, DeliveryFailed, type Delivery } from "./deliver.ts";
import { DestinationRefused } from "./destination.ts";
import type { Context, Notice } from "./messages.ts";
import type { Clock } from "../../util/clock.ts";

/** Waits before attempts 2, 3, ...: about an hour and a quarter in all, then the entry is given up (and audited). */
export const BACKOFF_MS = [5_000, 30_000, 120_000, 600_000, 3_600_000];
/** How long a replica holds an entry it is sending before another may try. */
const LEASE_MS = 60_000;

export interface OutboxEntry extends Delivery {
  target: string;
  created: string;
  attempts: number;
  next_at: string;
  lease_until?: string;
  last_error?: string;
}

/** How long an entry is kept (past its last retry), then swept: a receiver down for days does not grow the backend forever. */
export const OUTBOX_KEEP_MS = 2 * 86_400_000;

/**
 * Writes one entry per target that hears this step, due now and kept for
 * OUTBOX_KEEP_MS, both by `clock` (the backend's own, which drops the entry
 * once it expires). Never throws: the step has happened, whatever the outbox does.
 */
export async function enqueueNotifications(deps: { backend: Backend; clock: Clock }, notice: Notice): Promise<number> {
  const { backend } = deps;
  const now = deps.clock.date();
  try {
    const r = notice.request.spec;
    let queued = 0;
    for (const { value: target } of await backend.list<NotificationTarget>(KEYS.notificationTargets)) {
      if (!targetHears(target, notice.event, r)) continue;
      const to = target.spec.type === "smtp" ? await recipients(backend, target, notice) : [];
      if (target.spec.type === "smtp" && to.length === 0) continue;
      const id = `msg_${crypto.randomUUID()}`;
      const entry: OutboxEntry = { id, target: target.metadata.name, notice, to, created: now.toISOString(), attempts: 0, next_at: now.toISOString() };
      await backend.put(KEYS.notification(id), entry, { expires: new Date(now.getTime() + OUTBOX_KEEP_MS) });
      queued++;
    }
    return queued;
  } catch (e) {
    console.error(`[proxy] notifications for ${notice.event} not queued:`, (e as Error).message);
    return 0;
  }
}

/** The target's own list, plus the requester and suggested reviewers when their user record has an e-mail. */
async function recipients(backend: Backend, target: NotificationTarget, notice: Notice): Promise<string[]> {
  const r = notice.request.spec;
  const people = [r.user, ...r.suggested_reviewers, ...(notice.actor ? [notice.actor] : [])];
  const emails: string[] = [...(target.spec.smtp?.to ?? [])];
  for (const name of new Set(people)) {
    const user = await backend.get<User>(KEYS.user(name)).catch(() => null);
    const email = user?.value.spec.traits.email?.[0] ?? (/^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/.test(name) && user ? name : undefined);
    if (email && /^[^\s@<>,;]+@[^\s@<>,;]+$/.test(email)) emails.push(email);
  }
  return [...new Set(emails.map((e) => e.toLowerCase()))];
}

export interface DispatchDeps {
  backend: Backend;
  audit: AuditSink;
  /** Which entries are due, their leases and retries: the backend's clock. */
  clock: Clock;
  context: () => Promise<Context>;
  /** notifications.allow_private_addresses: receivers on loopback, link-local or private addresses are refused unless true. */
  allowPrivateAddresses?: boolean;
  send?: typeof deliver;
}

/** Sends every entry that is due and not held by another replica. Returns how many were sent. */
export async function dispatchDue(deps: DispatchDeps): Promise<number> {
  const now = deps.clock.date();
  const due = (await deps.backend.list<OutboxEntry>(KEYS.notifications)).filter((i) => Date.parse(i.value.next_at) <= now.getTime() && !(i.value.lease_until && Date.parse(i.value.lease_until) > now.getTime()));
  let sent = 0;
  for (const item of due) if (await attempt(deps, item, now)) sent++;
  return sent;
}

async function attempt(deps: DispatchDeps, item: Item<OutboxEntry>, now: Date): Promise<boolean> {
  const claimed: OutboxEntry = { ...item.value, attempts: item.value.attempts + 1, lease_until: new Date(now.getTime() + LEASE_MS).toISOString() };
  let held: Item<OutboxEntry>;
  try {
    held = await deps.backend.compareAndSwap(item.key, item.revision, claimed, { expires: item.expires ? new Date(item.expires) : undefined });
  } catch (e) {
    if (e instanceof AzgateError && e.code === "compare_failed") return false; // another replica has it
    throw e;
  }
  const e = claimed;
  const base = { target: e.target, notification_id: e.id, notification_event: e.notice.event, access_request_id: e.notice.request.metadata.name, attempts: e.attempts };
  const target = (await deps.backend.get<NotificationTarget>(KEYS.notificationTarget(e.target)))?.value;
  if (!target) {
    // Removed since: nothing to send to.
    await deps.backend.delete(item.key);
    return false;
  }
  try {
    await (deps.send ?? deliver)(target, e, await deps.context(), now, { allowPrivateAddresses: deps.allowPrivateAddresses });
  } catch (err) {
    const error = (err as Error).message;
    const retryIn = BACKOFF_MS[e.attempts - 1];
    if (retryIn === undefined) await deps.backend.delete(item.key);
    else await deps.backend.compareAndSwap(item.key, held.revision, { ...e, lease_until: undefined, last_error: error, next_at: new Date(now.getTime() + retryIn).toISOString() }, { expires: item.expires ? new Date(item.expires) : undefined }).catch(() => undefined);
    const detail = err instanceof DeliveryFailed && err.status !== undefined ? { receiver_status: err.status } : err instanceof DestinationRefused ? { error_code: "target_refused" } : {};
    await deps.audit.emit(audit("NOTIFICATION_FAILED", { ...base, success: false, error, ...detail, ...(retryIn === undefined ? { gave_up: true } : { retry_at: new Date(now.getTime() + retryIn).toISOString() }) }));
    return false;
  }
  await deps.backend.delete(item.key);
  await deps.audit.emit(audit("NOTIFICATION_SENT", { ...base, success: true }));
  return true;
}

/**
 * Runs the dispatcher on this replica: at once when an entry is written
 * (the backend's watch hears writes from every replica) and every few
 * seconds for retries that come due. One pass at a time.
 */
export function startDispatcher(deps: DispatchDeps, everyMs = 2_000): { stop(): void; idle(): Promise<void> } {
  let running: Promise<void> = Promise.resolve();
  let busy = false;
  let again = false;
  const pass = () => {
    if (busy) return void (again = true);
    busy = true;
    running = (async () => {
      do {
        again = false;
        await dispatchDue(deps).catch((e) => console.error("[proxy] sending notifications failed:", (e as Error).message));
      } while (again);
      busy = false;
    })();
  };
  const timer = deps.clock.every(everyMs, pass).unref();
  const unwatch = deps.backend.watch(KEYS.notifications, (ev) => (ev.type === "resync" || (ev.type === "put" && (ev.item.value as OutboxEntry).attempts === 0)) && pass());
  pass();
  return {
    stop: () => (timer.cancel(), unwatch()),
    idle: () => running,
  };
}
