/**
 * `apps login --azure-identity` resolution, as in Teleport: exact resource ID
 * ignoring case, else a unique `.../userAssignedIdentities/NAME` suffix. Pure.
 */
import { AzgateError } from "../errors/index.ts";

export function chooseAzureIdentity(allowed: string[], flag: string | undefined): string {
  const sorted = [...allowed].sort((a, b) => a.localeCompare(b));
  const list = (ids: string[]) => `\n\nAvailable Azure identities:\n${ids.map((i) => `  ${i}`).join("\n")}`;
  if (sorted.length === 0) throw new AzgateError("not_found", "no Azure identities available, check your permissions");
  if (!flag) {
    if (sorted.length === 1) return sorted[0];
    throw new AzgateError("bad_parameter", `multiple Azure identities available, choose one with --azure-identity flag${list(sorted)}`);
  }
  const exact = sorted.find((id) => id.toLowerCase() === flag.toLowerCase());
  if (exact) return exact;
  const suffix = `/microsoft.managedidentity/userassignedidentities/${flag.toLowerCase()}`;
  const matches = sorted.filter((id) => id.toLowerCase().endsWith(suffix));
  if (matches.length === 1) return matches[0];
  if (matches.length > 1) throw new AzgateError("bad_parameter", `provided identity "${flag}" is ambiguous, please specify full identity name${list(matches)}`);
  throw new AzgateError("not_found", `failed to find the identity matching "${flag}"${list(sorted)}`);
}
