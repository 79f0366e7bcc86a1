/**
 * Storage hosts as the policy reads them: which hosts are a storage
 * account's endpoints in a cloud, each read as the account's primary host
 * for its service (a Data Lake (dfs) host as the blob host: one account's
 * data), and the headers the mapper names their requests by, each read once:
 * among them a source, another blob, path or container the request reads or
 * moves (a Data Lake rename's, a Blob copy's, a container rename's), read as
 * a request's own path is, or refused.
 *
 * One account's data answers to several names (Microsoft Learn, "Storage
 * account overview", "Use private endpoints for Azure Storage"):
 * `<account>.<service>.<suffix>`, its read-access secondary
 * `<account>-secondary.<service>.<suffix>` (RA-GRS, RA-GZRS: the same data,
 * the same token), and the private-link names `<account>.privatelink...` and
 * `<account>-secondary.privatelink...`. They are read as the primary, so a
 * rule naming the account applies to all of them. Any other name under a
 * storage service's suffix (more labels, a name no account can have) is
 * refused wherever a rule applies: azgate would not know whose data it is.
 */
import { cloudByName, normaliseHost, type CloudName } from "./clouds.ts";
import { safeSegments, UnsafePath } from "./safe-path.ts";
import type { AzureOperation } from "./operation.ts";

/** The storage services whose hosts name one account each. */
export const STORAGE_SERVICES = ["blob", "dfs", "queue", "table", "file"] as const;
export type StorageService = (typeof STORAGE_SERVICES)[number];

/** A storage account's name (Azure's rule): 3-24 lower-case letters and digits. A host is read in lower case. */
const ACCOUNT_NAME = /^[a-z0-9]{3,24}$/;

/** A storage service's host suffix in this cloud ("blob.core.windows.net"), from the storage audience's hosts. */
export function storageSuffix(cloudName: CloudName, service: StorageService): string | undefined {
  return cloudByName(cloudName).audienceHosts.find(([r]) => r === "https://storage.azure.com")?.[1].find((h) => h.startsWith(`${service}.`));
}

/** A host read as one storage account's endpoint for one service. */
export interface StorageHost {
  account: string;
  service: StorageService;
  /** The account's primary host for that service: `<account>.<service>.<suffix>`. */
  primary: string;
}

/**
 * The storage account and service a host (lower case, no port or trailing dot) names, or null when it is
 * under no storage service's suffix of this cloud. Its secondary and private-link names read as the
 * primary; any other name under a storage suffix throws UnsafePath.
 */
export function storageHost(host: string, cloudName: CloudName): StorageHost | null {
  for (const service of STORAGE_SERVICES) {
    const suffix = storageSuffix(cloudName, service);
    if (!suffix || !host.endsWith(`.${suffix}`)) continue;
    const labels = host.slice(0, -suffix.length - 1).split(".");
    const named = labels.length === 2 && labels[1] === "privatelink" ? labels[0] : labels.length === 1 ? labels[0] : null;
    const account = named?.replace(/-secondary$/, "");
    if (!account || !ACCOUNT_NAME.test(account)) {
      throw new UnsafePath(`${host} is not a storage account's host: azgate reads <account>.${suffix}, its -secondary and .privatelink names, with an account name of 3-24 lower-case letters and digits`);
    }
    return { account, service, primary: `${account}.${suffix}` };
  }
  return null;
}

export interface StorageAccount {
  blobHost: string;
  dfsHost: string;
  /** Whether the host read was the dfs one. */
  dfs: boolean;
}

/** A storage account's blob and Data Lake hosts (primary), when `host` is one of their names; throws as storageHost does. */
export function storageAccount(host: string, cloudName: CloudName): StorageAccount | null {
  const found = storageHost(host, cloudName);
  if (!found || (found.service !== "blob" && found.service !== "dfs")) return null;
  const blob = storageSuffix(cloudName, "blob");
  const dfs = storageSuffix(cloudName, "dfs");
  if (!blob || !dfs) return null;
  return { blobHost: `${found.account}.${blob}`, dfsHost: `${found.account}.${dfs}`, dfs: found.service === "dfs" };
}

/**
 * Get User Delegation Key (`POST /?restype=service&comp=userdelegationkey`, on an account's blob host and its
 * dfs host): a key that signs SAS tokens for up to 7 days, good without azgate. Azure RBAC lists its action
 * among a role's Actions, not DataActions, so it is a control-plane operation on a data host; its scope is
 * the account's blob URL (azgate cannot know the account's ARM ID from its host).
 */
export function userDelegationKey(method: string, host: string, segments: string[], query: URLSearchParams): AzureOperation | null {
  const asks = method === "POST" && segments.length === 0 && query.get("restype")?.toLowerCase() === "service" && query.get("comp")?.toLowerCase() === "userdelegationkey";
  return asks ? { plane: "control", action: "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action", scope: `https://${host}`, resource_id: null, confidence: "exact" } : null;
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
  /** Whether its path compares with case (a blob's: see checkContainer). */
  caseSensitivePath: boolean;
}

/**
 * Blob names are case-sensitive, container (and Data Lake filesystem) names lower case only: Azure has
 * no container spelt with capitals. A path on a blob or dfs host whose container has one is refused, so the
 * container compares one way whatever the service does with such a spelling, and the rest, the blob's
 * name, compares with case (rbac/azure-api.ts). `rootBlob`: a lone segment on the blob host that is not a
 * container request names a blob of the root container ($root), whose name may have capitals.
 */
export function checkContainer(segments: string[], where: string, rootBlob: boolean): void {
  if (segments.length === 0 || rootBlob || !/[A-Z]/.test(segments[0])) return;
  throw new UnsafePath(`${where}: a container's name is lower case in Azure, and "${segments[0]}" is not`);
}

/** The source the request's headers name, or null; throws UnsafePath when it cannot be read as a request's own path would be. */
export function sourceOf(headers: Record<string, string>, account: StorageAccount, cloudName: CloudName): HeaderSource | null {
  const named = SOURCE_HEADERS.filter((h) => h in headers);
  if (named.length > 1) throw new UnsafePath(`the ${named.join(" and ")} headers may not be given together`);
  if (named.length === 0) return null;
  const header = named[0];
  const value = headers[header];
  const here = { header, host: account.blobHost, aliases: [account.dfsHost], caseSensitivePath: true };
  if (header === "x-ms-copy-source") return { header, ...urlSource(value, cloudName) };
  if (header === "x-ms-source-container-name") {
    const segments = pathIn(header, "/" + value);
    if (segments.length !== 1) throw new UnsafePath("the x-ms-source-container-name header must be one container name");
    checkContainer(segments, `the ${header} header`, false);
    return { ...here, segments };
  }
  // x-ms-rename-source: /{filesystem}/{path}, in this account; its query is the source's SAS, if any, not part of what is renamed.
  const segments = pathIn(header, value.split("?")[0]);
  if (segments.length < 2) throw new UnsafePath("the x-ms-rename-source header must name a filesystem and a path in it (/{filesystem}/{path})");
  checkContainer(segments, `the ${header} header`, false);
  return { ...here, segments };
}

/** A copy's source URL: this cloud's storage read as a request's host is (a secondary as its primary, dfs as blob); any other host as it is (a copy from it names no Azure operation). */
function urlSource(value: string, cloudName: CloudName): Omit<HeaderSource, "header"> {
  const m = /^https?:\/\/([^/?#@\\]+)(\/[^?#]*)?(?:[?#].*)?$/i.exec(value);
  if (!m) throw new UnsafePath("the x-ms-copy-source header must be an http or https URL, without credentials");
  const host = normaliseHost(m[1].replace(/:\d*$/, ""));
  let account: StorageAccount | null;
  let primary: string;
  try {
    account = storageAccount(host, cloudName);
    primary = account ? account.blobHost : storageHost(host, cloudName)?.primary ?? host;
  } catch (e) {
    if (e instanceof UnsafePath) throw new UnsafePath(`the x-ms-copy-source header: ${e.message}`);
    throw e;
  }
  const segments = pathIn("x-ms-copy-source", m[2] ?? "/");
  // A copy's source is a blob: a lone segment is a root container's blob.
  if (account) checkContainer(segments, "the x-ms-copy-source header", segments.length === 1);
  return { host: primary, aliases: account ? [account.dfsHost] : [], segments, caseSensitivePath: account !== null };
}

function pathIn(header: string, path: string): string[] {
  try {
    return safeSegments(path);
  } catch (e) {
    if (e instanceof UnsafePath) throw new UnsafePath(`the ${header} header: ${e.message}`);
    throw e;
  }
}
