/**
 * Storage hosts as the policy reads them: which hosts are a storage
 * account's Blob and Data Lake (dfs) endpoints in a cloud (one account's
 * data, read under its blob host), and the headers the mapper names their
 * requests by, each read once: among them a source, another blob, path or
 * container the request reads or moves (a Data Lake rename's, a Blob copy's,
 * a container rename's), read as a request's own path is, or refused.
 */
import { cloudByName, normaliseHost, type CloudName } from "./clouds.ts";
import { safeSegments, UnsafePath } from "./safe-path.ts";

/** A storage service's host suffix in this cloud ("blob.core.windows.net"), from the storage audience's hosts. */
export function storageSuffix(cloudName: CloudName, service: "blob" | "dfs"): string | undefined {
  return cloudByName(cloudName).audienceHosts.find(([r]) => r === "https://storage.azure.com")?.[1].find((h) => h.startsWith(`${service}.`));
}

export interface StorageAccount {
  blobHost: string;
  dfsHost: string;
  /** Whether the host read was the dfs one. */
  dfs: boolean;
}

/** A storage account's blob and Data Lake hosts, when `host` is one of them (a secondary or private-link name included). */
export function storageAccount(host: string, cloudName: CloudName): StorageAccount | null {
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

/** Blob's headers that name a source: a copy's (Copy Blob, Put Blob, Block, Page From URL, Append Block From URL), a container rename's. */
export const BLOB_HEADERS = ["x-ms-copy-source", "x-ms-source-container-name"];
const SOURCE_HEADERS = ["x-ms-rename-source", ...BLOB_HEADERS];

/** The headers the mapper reads (lower-case names), each once, as sent. */
export function readHeaders(headers: [string, string][], read: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of headers) {
    const lower = name.toLowerCase();
    if (!read.includes(lower)) continue;
    if (lower in out) throw new UnsafePath(`the ${lower} header may be given once`);
    out[lower] = value;
  }
  return out;
}

/** Another blob, path or container a request reads or moves, named in one of its headers: canonical, as a request's own would be. */
export interface HeaderSource {
  header: string;
  /** A storage account's dfs host read as its blob host, as canonicalRequest reads a request's. */
  host: string;
  aliases: string[];
  segments: string[];
}

/** The source the request's headers name, or null; throws UnsafePath when it cannot be read as a request's own path would be. */
export function sourceOf(headers: Record<string, string>, account: StorageAccount, cloudName: CloudName): HeaderSource | null {
  const named = SOURCE_HEADERS.filter((h) => h in headers);
  if (named.length > 1) throw new UnsafePath(`the ${named.join(" and ")} headers may not be given together`);
  if (named.length === 0) return null;
  const header = named[0];
  const value = headers[header];
  const here = { header, host: account.blobHost, aliases: [account.dfsHost] };
  if (header === "x-ms-copy-source") return { header, ...urlSource(value, cloudName) };
  if (header === "x-ms-source-container-name") {
    const segments = pathIn(header, "/" + value);
    if (segments.length !== 1) throw new UnsafePath("the x-ms-source-container-name header must be one container name");
    return { ...here, segments };
  }
  // x-ms-rename-source: /{filesystem}/{path}, in this account; its query is the source's SAS, if any, not part of what is renamed.
  const segments = pathIn(header, value.split("?")[0]);
  if (segments.length < 2) throw new UnsafePath("the x-ms-rename-source header must name a filesystem and a path in it (/{filesystem}/{path})");
  return { ...here, segments };
}

/** A copy's source URL: this cloud's storage read as its blob host; any other host as it is (a copy from it names no Azure operation). */
function urlSource(value: string, cloudName: CloudName): Omit<HeaderSource, "header"> {
  const m = /^https?:\/\/([^/?#@\\]+)(\/[^?#]*)?(?:[?#].*)?$/i.exec(value);
  if (!m) throw new UnsafePath("the x-ms-copy-source header must be an http or https URL, without credentials");
  const host = normaliseHost(m[1].replace(/:\d*$/, ""));
  const account = storageAccount(host, cloudName);
  return { host: account ? account.blobHost : host, aliases: account ? [account.dfsHost] : [], segments: pathIn("x-ms-copy-source", m[2] ?? "/") };
}

function pathIn(header: string, path: string): string[] {
  try {
    return safeSegments(path);
  } catch (e) {
    if (e instanceof UnsafePath) throw new UnsafePath(`the ${header} header: ${e.message}`);
    throw e;
  }
}
