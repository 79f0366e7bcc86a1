/**
 * The lock resource (Teleport's shape) as it travels between the proxy and
 * the CLI, and the pure rule of what a lock covers.
 */
export interface LockTarget {
  user?: string;
  role?: string;
  /** A resource ID, or the identity's name (its last segment). */
  azure_identity?: string;
  /** A login session or an app session (certificates carry both). */
  session_id?: string;
}

export interface Lock {
  kind: "lock";
  version: "v2";
  metadata: { name: string; expires?: string };
  spec: { target: LockTarget; message?: string; created_by: string; created: string };
}

/** What a request is, as far as locks are concerned. */
export interface LockSubject {
  user: string;
  roles: string[];
  azure_identity?: string;
  session_ids: string[];
}

export const TARGET_FIELDS = ["user", "role", "azure_identity", "session_id"] as const;

const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
const lastSegment = (id: string) => id.split("/").filter(Boolean).pop() ?? id;

/** True when every field the lock names matches the subject. */
export function lockMatches(target: LockTarget, s: LockSubject): boolean {
  if (target.user !== undefined && target.user !== s.user) return false;
  if (target.role !== undefined && !s.roles.includes(target.role)) return false;
  if (target.azure_identity !== undefined) {
    const id = s.azure_identity;
    if (!id || !(same(target.azure_identity, id) || same(target.azure_identity, lastSegment(id)))) return false;
  }
  if (target.session_id !== undefined && !s.session_ids.includes(target.session_id)) return false;
  return true;
}

export function describeTarget(target: LockTarget): string {
  return TARGET_FIELDS.filter((f) => target[f] !== undefined)
    .map((f) => `${f}:"${target[f]}"`)
    .join(", ");
}

