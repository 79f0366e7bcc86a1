/**
 * Storage hosts as the policy reads them: which hosts are a storage
 * account's Blob and Data Lake (dfs) endpoints in a cloud (one account's
 * data, read under its blob host), and the headers the mapper names their
 * requests by, each read once.
 */
import { cloudByName, type CloudName } from "./clouds.ts";
import { safeSegments, UnsafePath } from "./safe-path.ts";

/** A storage service's host suffix in this cloud ("blob.core.windows.net"), from the storage audience's hosts. */
export function storageSuffix(cloudName: CloudName, service: "blob" | "dfs"): string | undefined {
  return cloudByName(cloudName).audienceHosts.find(([r]) => r === "https://storage.azure.com")?.[1].find((h) => h.startsWith(`${service}.`));
}

/** A storage account's blob and Data Lake hosts, when `host` is one of them (a secondary or private-link name included). */
export function storageAccount(host: string, cloudName: CloudName): { blobHost: string; dfsHost: string; dfs: boolean } | null {
  const blob = storageSuffix(cloudName, "blob");
  const dfs = storageSuffix(cloudName, "dfs");
  if (!blob || !dfs) return null;
  for (const [suffix, isDfs] of [[blob, false], [dfs, true]] as const) {
    if (host.endsWith(`.${suffix}`)) {
      const name = host.slice(0, -suffix.length);
      return { blobHost: name + blob, dfsHost: name + dfs, dfs: isDfs };
    }
  }
  return null;
}

/** The headers the mapper reads, each once; a rename source (`/{filesystem}/{path}[?SAS]`) read as a path is, to its canonical path. */
export function readHeaders(headers: [string, string][], read: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of headers) {
    const lower = name.toLowerCase();
    if (!read.includes(lower)) continue;
    if (lower in out) throw new UnsafePath(`the ${lower} header may be given once`);
    out[lower] = lower === "x-ms-rename-source" ? renameSource(value) : value;
  }
  return out;
}

function renameSource(value: string): string {
  let segments: string[];
  try {
    // Its query is the source's SAS, if any: not part of what is renamed.
    segments = safeSegments(value.split("?")[0]);
  } catch (e) {
    if (e instanceof UnsafePath) throw new UnsafePath(`the x-ms-rename-source header: ${e.message}`);
    throw e;
  }
  if (segments.length < 2) throw new UnsafePath("the x-ms-rename-source header must name a filesystem and a path in it (/{filesystem}/{path})");
  return "/" + segments.join("/");
}
