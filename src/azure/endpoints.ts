/**
 * Azure API hosts of a cloud (clouds.ts). A host matches a suffix exactly or
 * as "." + suffix, so "my.azurefd.net" matches and "my-azurefd.net" or
 * "core.windows.net.example.com" do not. DNS names are case-insensitive, so
 * matching is too.
 */
import { CLOUDS, cloudByName, hostMatches, normaliseHost, type AzureCloud, type CloudName } from "./clouds.ts";

/** Public Azure's suffixes (Teleport's IsAzureEndpoint list). */
export const AZURE_HOST_SUFFIXES = CLOUDS.Azure.hostSuffixes;

export function isAzureEndpoint(host: string, cloud: CloudName = "Azure"): boolean {
  const h = normaliseHost(host);
  if (!h || h.includes("/") || h.includes(":")) return false;
  return cloudByName(cloud).hostSuffixes.some((s) => hostMatches(h, s));
}

/** The clouds other than `cloud` that `host` is an API host of (a session for one cloud refuses the others' hosts). */
export function otherCloudsOf(host: string, cloud: CloudName): AzureCloud[] {
  if (isAzureEndpoint(host, cloud)) return [];
  return Object.values(CLOUDS).filter((c) => c.name !== cloud && isAzureEndpoint(host, c.name));
}
