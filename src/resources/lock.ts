/**
 * The lock resource (Teleport's shape) as it travels between the proxy and
 * the CLI, and the pure rule of what a lock covers.
 */
import { AzgateError } from "../errors/index.ts";
import { identityNameProblem, isIdentityName, parseIdentityId, requireIdentityId } from "../azure/resource-id.ts";
import { isGuid } from "../azure/guid.ts";

export interface LockTarget {
  user?: string;
  role?: string;
  /** A resource ID (stored in Azure's spelling), or the identity's name (its last segment). */
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

/**
 * The lock's `azure_identity` as it is stored, or a `bad_parameter` naming
 * the bad part: an identity ID (in Azure's spelling) or an identity name.
 * Anything else could never match (a trailing slash, a query string), so a
 * lock that looks in force would lock nothing: refused when it is made,
 * rather than guessed into an ID.
 */
export function lockIdentityTarget(value: string): string {
  if (value.startsWith("/")) return requireIdentityId(value, "lock target azure_identity").id;
  // A client or principal (object) ID is what az and the portal show, but the proxy decides on resource IDs and
  // knows no GUID of an identity: taken as a name, such a lock would match nothing. (With hyphens or without.)
  if (isGuid(value) || /^[0-9a-f]{32}$/i.test(value)) throw new AzgateError("bad_parameter", `lock target azure_identity: ${value} is a GUID (a client or principal ID?); a lock names an identity by its name or full resource ID (az identity list --query "[?clientId=='${value}'].id" finds it); an identity whose name is a GUID is locked by its resource ID`);
  if (!isIdentityName(value)) throw new AzgateError("bad_parameter", `lock target azure_identity: ${identityNameProblem(value)}; give the identity's name or its full resource ID`);
  return value;
}

/**
 * Does a lock's identity target cover the request's identity? IDs compare in
 * canonical form, a name against the ID's last segment, ignoring case as
 * Azure does. What azgate cannot read on either side (a lock stored before
 * targets were checked, an app certificate from before identities were) is
 * treated as covered: a lock is a deny, and a deny fails closed.
 */
function identityCovered(target: string, identity: string): boolean {
  const subject = parseIdentityId(identity);
  if (target.startsWith("/")) {
    const t = parseIdentityId(target);
    return !t || !subject || t.canonical === subject.canonical;
  }
  return !isIdentityName(target) || !subject || target.toLowerCase() === subject.name.toLowerCase();
}

/** True when every field the lock names matches the subject. */
export function lockMatches(target: LockTarget, s: LockSubject): boolean {
  if (target.user !== undefined && target.user !== s.user) return false;
  if (target.role !== undefined && !s.roles.includes(target.role)) return false;
  if (target.azure_identity !== undefined && (!s.azure_identity || !identityCovered(target.azure_identity, s.azure_identity))) return false;
  if (target.session_id !== undefined && !s.session_ids.includes(target.session_id)) return false;
  return true;
}

export function describeTarget(target: LockTarget): string {
  return TARGET_FIELDS.filter((f) => target[f] !== undefined)
    .map((f) => `${f}:"${target[f]}"`)
    .join(", ");
}

