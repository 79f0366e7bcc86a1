/**
 * Locks, as Teleport's: a lock names a user, a role, an Azure identity or a
 * session (all the fields it names must match), and while it lasts every
 * matching request is refused with its message. Locks live in the backend,
 * so every replica sees them; the proxy checks them on every request (in
 * resolveCaller) and closes matching open tunnels when one is created.
 */
import { audit } from "../audit/events.ts";
import { AzgateError } from "../errors/index.ts";
import { parseDuration } from "../util/duration.ts";
import { authorize, type Caller } from "./caller.ts";
import type { ProxyContext } from "./context.ts";
import { KEYS } from "./keys.ts";
import { accessSnapshot } from "./access-cache.ts";
import { describeTarget, lockIdentityTarget, lockMatches, TARGET_FIELDS, type Lock, type LockSubject, type LockTarget } from "../resources/lock.ts";

export type { Lock, LockTarget };

const MAX_TEXT = 1024;

/**
 * A lock on a user that names no user is refused when the name is a bot's
 * (bot-NAME: bots are made by admin bots add, so none is to come) and warned
 * of otherwise (an SSO user may sign in for the first time later): a
 * misspelt lock reported as made while the bot still joins locks nothing.
 */
async function checkLockUser(ctx: ProxyContext, user: string, warnings?: string[]): Promise<void> {
  if (await ctx.backend.get(KEYS.user(user))) return;
  if (/^bot-/i.test(user)) throw new AzgateError("not_found", `no bot has user name ${JSON.stringify(user.slice(0, 200))}, so the lock would lock nothing; azgate admin bots ls lists the bots (lock one with --bot NAME)`);
  warnings?.push(`no user is named ${JSON.stringify(user.slice(0, 200))} yet: the lock applies if one is made (azgate admin users ls)`);
}

export async function createLock(ctx: ProxyContext, caller: Caller, input: { target?: LockTarget; ttl?: string; message?: string }, warnings?: string[]): Promise<Lock> {
  authorize(caller, "lock", "create");
  const target: LockTarget = {};
  for (const field of TARGET_FIELDS) {
    const value = input.target?.[field];
    if (value === undefined || value === "") continue;
    if (typeof value !== "string" || value.length > MAX_TEXT || /[\x00-\x1f\x7f]/.test(value)) throw new AzgateError("bad_parameter", `lock target ${field} must be printable text`);
    target[field] = field === "azure_identity" ? lockIdentityTarget(value) : value;
  }
  if (Object.keys(target).length === 0) throw new AzgateError("bad_parameter", "a lock needs a target: --user, --role, --azure-identity or --session");
  if (target.user !== undefined) await checkLockUser(ctx, target.user, warnings);
  const message = input.message === undefined ? undefined : String(input.message);
  if (message !== undefined && (message.length > MAX_TEXT || /[\x00-\x08\x0b-\x1f\x7f]/.test(message))) throw new AzgateError("bad_parameter", `--message must be printable text of at most ${MAX_TEXT} characters`);
  const expires = input.ttl ? new Date(ctx.clock.now() + parseDuration(input.ttl, "--ttl")) : undefined;
  const lock: Lock = {
    kind: "lock",
    version: "v2",
    metadata: { name: crypto.randomUUID(), ...(expires ? { expires: expires.toISOString() } : {}) },
    spec: { target, ...(message ? { message } : {}), created_by: caller.name, created: ctx.clock.date().toISOString() },
  };
  await ctx.backend.put<Lock>(KEYS.lock(lock.metadata.name), lock, expires ? { expires } : undefined);
  await ctx.audit.emit(audit("LOCK_CREATED", { user: caller.name, name: lock.metadata.name, target, expires: lock.metadata.expires ?? null, message: message ?? null }));
  return lock;
}

export async function listLocks(ctx: ProxyContext, name?: string): Promise<Lock[]> {
  if (name) {
    const item = await ctx.backend.get<Lock>(KEYS.lock(name));
    if (!item) throw new AzgateError("not_found", `lock "${name}" is not found`);
    return [item.value];
  }
  return (await ctx.backend.list<Lock>(KEYS.locks)).map((i) => i.value);
}

export async function removeLock(ctx: ProxyContext, caller: Caller, name: string): Promise<string> {
  authorize(caller, "lock", "delete");
  if (!(await ctx.backend.delete(KEYS.lock(name)))) throw new AzgateError("not_found", `lock "${name}" is not found`);
  await ctx.audit.emit(audit("LOCK_DELETED", { user: caller.name, name }));
  return `lock "${name}" has been deleted`;
}

/** Throws `locked` with the lock's message when a lock in force matches (the locks as the backend has them now). */
export async function checkLocks(ctx: ProxyContext, subject: LockSubject): Promise<void> {
  lockInForce(await (await accessSnapshot(ctx.backend, ctx.clock)).locks(), subject);
}

/** Throws `locked` with the message of the first of `locks` that matches `subject`. */
export function lockInForce(locks: Lock[], subject: LockSubject): void {
  const lock = locks.find((l) => lockMatches(l.spec.target, subject));
  if (!lock) return;
  const why = lock.spec.message ? `: ${lock.spec.message}` : "";
  throw new AzgateError("locked", `lock targeting ${describeTarget(lock.spec.target)} is in force${why}`);
}
