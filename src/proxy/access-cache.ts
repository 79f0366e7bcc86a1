/**
 * Users, roles and locks as the proxy last read them, for the checks every
 * request makes (caller.ts, locks.ts). Without it each request read the user,
 * each of its roles and the whole lock list from the backend: files on disk,
 * or queries to PostgreSQL.
 *
 * A snapshot belongs to one backend change mark (Backend.changeMark): each
 * request reads the mark once, and uses the snapshot of that mark, starting a
 * new one when the mark moved. What a snapshot holds was read after its mark
 * was, so a write that returned before the request began (a lock, a deleted
 * user, a changed role, on any replica) is in what the request sees: the next
 * request is refused, as without the cache. On PostgreSQL that mark is one
 * small query per request instead of three or more.
 *
 * A snapshot is also dropped after SNAPSHOT_MAX_AGE_MS, for writes that do
 * not move the mark: an older azgate replica still running during a rolling
 * upgrade to schema 2, or a row changed in the database by hand.
 */
import type { Backend, Item } from "../storage/backend.ts";
import { isExpired } from "../storage/backend.ts";
import type { User } from "../resources/user.ts";
import type { Role } from "../rbac/types.ts";
import type { Lock } from "../resources/lock.ts";
import type { AccessGrant, AccessRequest } from "../resources/access-request.ts";
import { KEYS } from "./keys.ts";
import type { Clock } from "../util/clock.ts";

export interface AccessSnapshot {
  user(name: string): Promise<User | null>;
  role(name: string): Promise<Role | null>;
  /** Locks in force now (a cached lock that has expired since is left out). */
  locks(): Promise<Lock[]>;
  /** Access grants stored now (each carries its own window: the caller checks the time). */
  grants(): Promise<AccessGrant[]>;
  /** An access request as stored now (a grant is in force only while its request reads APPROVED). */
  request(id: string): Promise<AccessRequest | null>;
  /**
   * What `make` derives from this snapshot's reads for `owner` (a tunnel's
   * identity: its caller), made once and kept as long as the snapshot is: a
   * write moves the mark, the next request starts a new snapshot, and derives
   * again. A promise that fails is not kept (the next request tries again).
   */
  derived<T>(owner: object, key: string, make: () => Promise<T>): Promise<T>;
}

export const SNAPSHOT_MAX_AGE_MS = 5_000;

class Snapshot implements AccessSnapshot {
  private readonly users = new Map<string, Promise<User | null>>();
  private readonly roles = new Map<string, Promise<Role | null>>();
  private readonly lists = new Map<string, Promise<Item<unknown>[]>>();
  private readonly requests = new Map<string, Promise<AccessRequest | null>>();
  private readonly derivations = new WeakMap<object, Map<string, Promise<unknown>>>();

  constructor(
    readonly mark: string,
    readonly startedAt: number,
    private readonly backend: Backend,
    private readonly clock: Clock,
  ) {}

  user(name: string): Promise<User | null> {
    return this.memo(this.users, name, async () => (await this.backend.get<User>(KEYS.user(name)))?.value ?? null);
  }

  role(name: string): Promise<Role | null> {
    return this.memo(this.roles, name, async () => (await this.backend.get<Role>(KEYS.role(name)))?.value ?? null);
  }

  locks(): Promise<Lock[]> {
    return this.live<Lock>(KEYS.locks);
  }

  grants(): Promise<AccessGrant[]> {
    return this.live<AccessGrant>(KEYS.accessGrants);
  }

  request(id: string): Promise<AccessRequest | null> {
    return this.memo(this.requests, id, async () => (await this.backend.get<AccessRequest>(KEYS.accessRequest(id)))?.value ?? null);
  }

  derived<T>(owner: object, key: string, make: () => Promise<T>): Promise<T> {
    let byKey = this.derivations.get(owner);
    if (!byKey) this.derivations.set(owner, (byKey = new Map()));
    return this.memo(byKey as Map<string, Promise<T>>, key, make);
  }

  /** A prefix's items, listed once per snapshot; those expired since are left out. */
  private async live<T>(prefix: string): Promise<T[]> {
    const items = (await this.memo(this.lists, prefix, () => this.backend.list(prefix))) as Item<T>[];
    const now = this.clock.now();
    return items.filter((i) => !isExpired(i, now)).map((i) => i.value);
  }

  /** One read per key and snapshot; a failed read is not kept (the next request tries again). */
  private memo<T>(map: Map<string, Promise<T>>, key: string, read: () => Promise<T>): Promise<T> {
    let p = map.get(key);
    if (!p) {
      p = read();
      map.set(key, p);
      p.catch(() => map.delete(key));
    }
    return p;
  }
}

const caches = new WeakMap<Backend, { current: Snapshot | null }>();

/** The snapshot for the backend's change mark now: one mark read, then reads only for what this mark has not seen. */
export async function accessSnapshot(backend: Backend, clock: Clock): Promise<AccessSnapshot> {
  let cache = caches.get(backend);
  if (!cache) caches.set(backend, (cache = { current: null }));
  const mark = await backend.changeMark();
  const at = clock.now();
  if (cache.current?.mark !== mark || at - cache.current.startedAt >= SNAPSHOT_MAX_AGE_MS) cache.current = new Snapshot(mark, at, backend, clock);
  return cache.current;
}
