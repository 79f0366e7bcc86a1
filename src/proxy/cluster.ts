import { x509 } from "../pki/x509.ts";
import { AzgateError } from "../errors/index.ts";
import { putIfAbsent, type Backend } from "../storage/backend.ts";
import { createAuthority, loadAuthority, storeAuthority, type Authority, type AuthorityType, type StoredAuthority } from "../pki/authority.ts";
import { caPin } from "../pki/pin.ts";
import { endorse, ENDORSEMENT_TTL_S, type CaEndorsement } from "../pki/endorsement.ts";
import { caRoles, STANDBY, type RotationState } from "../pki/rotation.ts";
import { PRESET_ROLES } from "../rbac/presets.ts";
import type { Role } from "../rbac/types.ts";
import { KEYS } from "./keys.ts";
import type { Clock } from "../util/clock.ts";

/** One authority as this replica uses it now: what its rotation's phase makes of its keys (pki/rotation.ts caRoles). */
export interface AuthorityView {
  type: AuthorityType;
  /** The record as read, and its revision: a rotation compare-and-swaps it. */
  stored: StoredAuthority;
  revision: string;
  rotation: RotationState;
  /** Signs every new certificate of this type. */
  signing: Authority;
  /** Accepted issuers, the signing CA first: both CAs while it rotates. */
  trusted: x509.X509Certificate[];
  /** Their pins, in the same order. */
  pins: string[];
  /** The proxy's own TLS certificate comes from this CA (host). */
  tls: Authority;
  /** The CA in force before the rotation, and the new one while it rotates. */
  current: Authority;
  next?: Authority;
  /**
   * While the host CA rotates, each CA's word for the other (pki/endorsement.ts): agents and workstations learn
   * the new CA by it. Good for minutes only: read them with rotation-trust.ts currentEndorsements, which signs
   * them again when half their time is gone.
   */
  endorsements: CaEndorsement[];
  /** When currentEndorsements signs them again (ms). */
  endorsementsRenewAt: number;
  /** CAs retired by earlier rotations, newest first: what they signed is refused as ca_retired. */
  retired: { cert: x509.X509Certificate; pin: string; retired: string }[];
}

export interface ClusterAuthorities {
  name: string;
  /** The CA that signs user (and app) certificates now. */
  user: Authority;
  /** The CA that signs agents' certificates now. */
  host: Authority;
  views: Record<AuthorityType, AuthorityView>;
  /** Told which types changed, after the views are replaced (followAuthorities). */
  listeners: Set<(types: AuthorityType[]) => void>;
}

/** Hears every change of the authorities (a rotation's phase, on any replica); returns the way to stop. */
export function onAuthorityChange(cluster: ClusterAuthorities, fn: (types: AuthorityType[]) => void): () => void {
  cluster.listeners.add(fn);
  return () => cluster.listeners.delete(fn);
}

/**
 * First start: pick the cluster name, create the user and host CAs, add the
 * preset roles. Later starts load them and refuse a different cluster name,
 * so a data dir never silently changes hands.
 */
export async function initCluster(backend: Backend, clusterName: string, clock: Clock): Promise<ClusterAuthorities> {
  // Replicas starting together on a shared backend race here: whoever writes first wins, the others read what it wrote.
  await putIfAbsent(backend, KEYS.clusterName, { name: clusterName });
  const stored = (await backend.get<{ name: string }>(KEYS.clusterName))!;
  if (stored.value.name !== clusterName) {
    throw new AzgateError(
      "config_invalid",
      `cluster_name: this data dir belongs to cluster "${stored.value.name}", not "${clusterName}"; use the same name or another data dir`,
    );
  }
  for (const type of ["user", "host"] as const) {
    if (!(await backend.get(KEYS.authority(type)))) await putIfAbsent(backend, KEYS.authority(type), await storeAuthority(await createAuthority(type, clusterName, clock.date())));
  }
  for (const role of PRESET_ROLES) {
    await putIfAbsent<Role>(backend, KEYS.role(role.metadata.name), role);
  }
  const user = await loadView(backend, "user", clusterName, clock);
  const host = await loadView(backend, "host", clusterName, clock);
  return { name: clusterName, user: user.signing, host: host.signing, views: { user, host }, listeners: new Set() };
}

/** An authority's record, read and made into what its phase says. */
export async function loadView(backend: Backend, type: AuthorityType, clusterName: string, clock: Clock): Promise<AuthorityView> {
  const item = await backend.get<StoredAuthority>(KEYS.authority(type));
  if (!item) throw new AzgateError("internal", `the ${type} CA is missing from the backend`);
  const stored = item.value;
  const rotation = stored.rotation ?? STANDBY;
  const current = await loadAuthority(stored);
  const next = stored.next ? await loadAuthority({ type, ...stored.next }) : undefined;
  const roles = caRoles(rotation.phase, current, next);
  const endorsements = type === "host" && next ? await endorsePair(current, next, clusterName, clock.date()) : [];
  const retired = await Promise.all((stored.retired ?? []).map(async (r) => {
    const cert = new x509.X509Certificate(r.cert_pem);
    return { cert, pin: await caPin(cert), retired: r.retired };
  }));
  const trusted = roles.trusted.map((a) => a.cert);
  return { type, stored, revision: item.revision, rotation, signing: roles.signing, trusted, pins: await Promise.all(trusted.map(caPin)), tls: roles.tls, current, next, endorsements, endorsementsRenewAt: clock.now() + (ENDORSEMENT_TTL_S * 1000) / 2, retired };
}

/** The old CA's word for the new one and the new one's for the old, while the host CA rotates. */
export async function endorsePair(current: Authority, next: Authority, clusterName: string, now: Date): Promise<CaEndorsement[]> {
  return [await endorse(current, next.cert, clusterName, now), await endorse(next, current.cert, clusterName, now)];
}

/**
 * Follows the authorities' records on every replica (a rotation started or
 * moved anywhere): the views are replaced in place, then the listeners hear
 * which types changed. Reloads run one at a time, in the order heard.
 * `reload` also runs on demand (the replica that wrote it, at once).
 */
export function followAuthorities(cluster: ClusterAuthorities, backend: Backend, clock: Clock): { reload: () => Promise<void>; stop: () => void } {
  let chain = Promise.resolve();
  const reload = () => {
    chain = chain.then(async () => {
      const changed: AuthorityType[] = [];
      for (const type of ["user", "host"] as const) {
        const view = await loadView(backend, type, cluster.name, clock);
        if (view.revision === cluster.views[type].revision) continue;
        cluster.views[type] = view;
        cluster[type] = view.signing;
        changed.push(type);
      }
      if (changed.length) for (const fn of cluster.listeners) fn(changed);
    }).catch((e) => console.error("[proxy] reloading the cluster's authorities failed:", (e as Error).message));
    return chain;
  };
  return { reload, stop: backend.watch("authorities/", () => void reload()) };
}

/** Clients and agents pin the host CA: it signs the proxy's TLS certificate. While it rotates, both pins, the signing CA's first. */
export async function clusterPins(a: ClusterAuthorities): Promise<string[]> {
  return [...a.views.host.pins];
}

export function pemOf(cert: x509.X509Certificate): string {
  return cert.toString("pem") + "\n";
}
