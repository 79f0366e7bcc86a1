/**
 * Which hosts a real token for a resource may be sent to. The Azure host list
 * alone is not enough: some Azure hosts forward to origins their customers
 * run (Front Door on azurefd.net, for one), so a user could otherwise have the
 * agent attach a real ARM token to a request that ends at a server they own.
 * A token goes only to the service its audience names, in the app's cloud
 * (the map per cloud is in clouds.ts).
 */
import { cloudByName, hostMatches, normaliseHost, type CloudName } from "./clouds.ts";

/** Normalises a v1 resource or a .default scope to "https://host[/path]" without a trailing slash. */
function normalise(resource: string): string {
  return resource.trim().replace(/\/\.default$/, "").replace(/\/+$/, "").toLowerCase();
}

export function tokenMayGoTo(resource: string, host: string, cloud: CloudName = "Azure"): boolean {
  const r = normalise(resource);
  const h = normaliseHost(host);
  const known = cloudByName(cloud).audienceHosts.find(([res]) => res === r);
  if (known) return known[1].some((s) => hostMatches(h, s));
  // A resource named by its own URL (an account-scoped audience such as
  // https://myaccount.blob.core.windows.net) goes to that host only.
  try {
    const u = new URL(r);
    return u.protocol === "https:" && hostMatches(h, u.hostname);
  } catch {
    return false;
  }
}
