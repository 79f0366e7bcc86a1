import { x509 } from "../pki/x509.ts";
import { AzgateError } from "../errors/index.ts";
import { putIfAbsent, type Backend } from "../storage/backend.ts";
import { createAuthority, loadAuthority, storeAuthority, type Authority, type StoredAuthority } from "../pki/authority.ts";
import { caPin } from "../pki/pin.ts";
import { PRESET_ROLES } from "../rbac/presets.ts";
import type { Role } from "../rbac/types.ts";
import { KEYS } from "./keys.ts";
import type { Clock } from "../util/clock.ts";

export interface ClusterAuthorities {
  name: string;
  user: Authority;
  host: Authority;
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
  const user = await loadOrCreateAuthority(backend, "user", clusterName, clock);
  const host = await loadOrCreateAuthority(backend, "host", clusterName, clock);
  for (const role of PRESET_ROLES) {
    await putIfAbsent<Role>(backend, KEYS.role(role.metadata.name), role);
  }
  return { name: clusterName, user, host };
}

async function loadOrCreateAuthority(backend: Backend, type: "user" | "host", clusterName: string, clock: Clock): Promise<Authority> {
  const item = await backend.get<StoredAuthority>(KEYS.authority(type));
  if (item) return loadAuthority(item.value);
  await putIfAbsent(backend, KEYS.authority(type), await storeAuthority(await createAuthority(type, clusterName, clock.date())));
  return loadAuthority((await backend.get<StoredAuthority>(KEYS.authority(type)))!.value);
}

/** Clients and agents pin the host CA: it signs the proxy's TLS certificate. */
export async function clusterPins(a: ClusterAuthorities): Promise<string[]> {
  return [await caPin(a.host.cert)];
}

export function pemOf(cert: x509.X509Certificate): string {
  return cert.toString("pem") + "\n";
}
