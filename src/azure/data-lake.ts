/**
 * ADLS Gen2 (`<account>.dfs.core.windows.net` and each cloud's equivalent):
 * the same blob data as the account's Blob endpoint, through the Data Lake
 * REST API (filesystem = container, path = blob). Azure RBAC authorises it
 * with Blob's data actions (Microsoft Learn, "Actions and attributes for
 * Azure role assignment conditions for Azure Blob Storage": `blobs/read`,
 * `write`, `delete`, `move/action` for a rename, `modifyPermissions/action`
 * and `manageOwnership/action` for access control), so a rule about blobs is
 * a rule about these requests too. The canonical request is already the
 * blob host's (operation.ts canonicalRequest); this names the operation.
 *
 * Pure, and it throws nothing: what cannot be named is `action: null`,
 * refused wherever a rule applies. A request can do more than its name says:
 * a rename reads and removes its source (`x-ms-rename-source`, another path)
 * and writes its destination; setting access control may also change the
 * owner. Those are `parts`, each decided as the request itself is (deny on
 * any of them wins).
 */
import type { AzureOperation, CanonicalRequest, Confidence, ReadPart } from "./operation.ts";
import { userDelegationKey } from "./storage-hosts.ts";

const BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers";

/** Headers a dfs request is named by: operation.ts reads each once, the rename source as a path (storage-hosts.ts sourceOf). */
export const DFS_HEADERS = ["x-ms-rename-source", "x-ms-owner", "x-ms-group", "x-ms-permissions", "x-ms-acl"];
/** Query parameters a dfs request is named by (read once, in lower case, as `comp` and `restype` are). */
export const DFS_PARAMETERS = ["resource", "action"];

export interface Named {
  operation: AzureOperation;
  parts: ReadPart[];
}

export function mapDataLake(c: CanonicalRequest): Named {
  const { method, host, segments: seg } = c;
  const scope = (s: string[]) => `https://${host}${s.length ? "/" + s.join("/") : ""}`;
  const op = (action: string | null, on: string[] = seg, confidence: Confidence = "derived"): AzureOperation => ({ plane: "data", action, scope: scope(on), resource_id: null, confidence: action ? confidence : "unknown" });
  const only = (action: string | null): Named => ({ operation: op(action), parts: [] });
  const resource = c.query.get("resource")?.toLowerCase();
  const action = c.query.get("action")?.toLowerCase();
  const source = c.source;
  // Only a path is renamed: a rename source anywhere else is a request this does not know.
  if (source && (seg.length < 2 || method !== "PUT" || action !== undefined || resource === "filesystem" || resource === "account")) return only(null);
  if (source) return renamed(c, source.segments, op);

  // The account: List Filesystems; a user delegation key, as on the blob host.
  const key = userDelegationKey(method, host, seg, c.query);
  if (key) return { operation: key, parts: [] };
  if (seg.length === 0) return only(method === "GET" && resource === "account" ? `${BLOBS}/read` : null);
  // A filesystem (a container): create, properties, list its paths, delete.
  if (seg.length === 1) {
    if (resource !== "filesystem" || action !== undefined) return only(null);
    const byMethod: Record<string, string> = { PUT: `${BLOBS}/write`, PATCH: `${BLOBS}/write`, HEAD: `${BLOBS}/read`, GET: `${BLOBS}/blobs/read`, DELETE: `${BLOBS}/delete` };
    return only(byMethod[method] ?? null);
  }
  // A path (a file or directory, a blob).
  if (resource === "filesystem" || resource === "account") return only(null);
  switch (method) {
    case "PUT":
      // Create File / Create Directory.
      return only(action === undefined && (resource === "file" || resource === "directory") ? `${BLOBS}/blobs/write` : null);
    case "GET":
      return only(action === undefined && resource === undefined ? `${BLOBS}/blobs/read` : null);
    case "HEAD":
      return only(resource === undefined && (action === undefined || action === "getstatus" || action === "getaccesscontrol") ? `${BLOBS}/blobs/read` : null);
    case "DELETE":
      // A directory with recursive=true too: Azure decides it on the directory's path, as this does.
      return only(action === undefined && resource === undefined ? `${BLOBS}/blobs/delete` : null);
    case "PATCH":
      if (resource !== undefined) return only(null);
      // Append (with flush=true or not) and flush write the file's blocks; setProperties its properties.
      if (action === "append" || action === "flush" || action === "setproperties") return only(`${BLOBS}/blobs/write`);
      if (action === "setaccesscontrol" || action === "setaccesscontrolrecursive") return accessControl(c, op);
      return only(null);
    default:
      return only(null);
  }
}

/**
 * A rename (Create Path with `x-ms-rename-source: /{filesystem}/{path}`): Azure's name for it is
 * `blobs/move/action`; what it does is read and remove the source and write the destination, so a rule
 * against any of those refuses it (a read denied on the source would otherwise be a rename and a read away).
 */
function renamed(c: CanonicalRequest, sourceSegs: string[], op: (action: string | null, on?: string[]) => AzureOperation): Named {
  const at = (method: string, segs: string[]): CanonicalRequest => ({ ...c, method, segments: segs, path: "/" + segs.join("/"), query: new URLSearchParams(), headers: {}, source: null });
  return {
    operation: op(`${BLOBS}/blobs/move/action`),
    parts: [
      { what: "the rename's source, read", canonical: at("GET", sourceSegs), operation: op(`${BLOBS}/blobs/read`, sourceSegs) },
      { what: "the rename's source, removed", canonical: at("DELETE", sourceSegs), operation: op(`${BLOBS}/blobs/delete`, sourceSegs) },
      { what: "the rename's destination, written", canonical: at("PUT", c.segments), operation: op(`${BLOBS}/blobs/write`) },
    ],
  };
}

/** Set Access Control: the ACL and permissions are modifyPermissions, the owner and group manageOwnership; a request may set both. */
function accessControl(c: CanonicalRequest, op: (action: string | null) => AzureOperation): Named {
  const owner = c.headers["x-ms-owner"] !== undefined || c.headers["x-ms-group"] !== undefined;
  const permissions = c.headers["x-ms-permissions"] !== undefined || c.headers["x-ms-acl"] !== undefined;
  const modify = op(`${BLOBS}/blobs/modifyPermissions/action`);
  const manage = op(`${BLOBS}/blobs/manageOwnership/action`);
  if (owner && permissions) return { operation: modify, parts: [{ what: "the owner or group it also sets", canonical: c, operation: manage }] };
  return { operation: owner ? manage : modify, parts: [] };
}
