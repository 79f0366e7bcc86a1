/**
 * Key Vault's data plane (`<vault>.vault.azure.net` and each cloud's
 * equivalent): secrets, keys and certificates, named with Azure RBAC's data
 * actions (Key Vault REST reference; "Azure built-in roles for Security",
 * Key Vault's data actions).
 *
 * A request can hand out more than its name says. A backup is the object
 * itself, exportable (restorable into another vault of the same
 * subscription and geography): a secret's backup is the secret read, a
 * key's the key read, a certificate's the certificate and its private key,
 * which Key Vault serves as the secret of the same name. Those are `parts`,
 * each decided as the request itself is, so a rule refusing the read refuses
 * the backup (as a Blob copy is decided with its source read).
 *
 * Managed storage accounts (`/storage`, `/deletedstorage`) hand out the
 * account's SAS tokens (`GET /storage/{account}/sas/{definition}`) and
 * regenerate its keys; Azure RBAC has no data action for them (access
 * policies only), so azgate cannot name them and refuses them wherever a
 * rule applies (UnsafePath), whatever `azure_api_unknown` says.
 */
import type { Named } from "./data-lake.ts";
import type { AzureOperation, CanonicalRequest, Confidence, ReadPart } from "./operation.ts";
import { UnsafePath } from "./safe-path.ts";
import { asciiLower } from "../util/ascii.ts";

const KV = "Microsoft.KeyVault/vaults";

/** The operation a vault request names, with what its backup reads; throws UnsafePath for a managed storage account's request. */
export function mapKeyVault(c: CanonicalRequest): Named {
  const operation = keyVaultOperation(c.method, c.host, c.segments);
  return { operation, parts: backupParts(c, operation) };
}

function keyVaultOperation(method: string, host: string, seg: string[]): AzureOperation {
  const lower = seg.map(asciiLower);
  const scope = `https://${host}${seg.length ? "/" + seg.slice(0, 2).join("/") : ""}`;
  const op = (action: string | null, confidence: Confidence = "derived"): AzureOperation => ({ plane: "data", action, scope, resource_id: null, confidence: action ? confidence : "unknown" });
  const [kind, name, third, fourth] = lower;
  if (kind === "storage" || kind === "deletedstorage") {
    throw new UnsafePath("Key Vault's managed storage accounts hand out the account's SAS tokens and keys, and Azure RBAC has no data action for them, so azgate cannot name this operation");
  }
  if (kind === "secrets") {
    if (seg.length === 1) return op(method === "GET" ? `${KV}/secrets/readMetadata/action` : null, "exact");
    if (name === "restore" && seg.length === 2 && method === "POST") return op(`${KV}/secrets/restore/action`, "exact");
    if (seg.length === 2 && method === "GET") return op(`${KV}/secrets/getSecret/action`, "exact");
    if (seg.length === 2 && method === "PUT") return op(`${KV}/secrets/setSecret/action`, "exact");
    if (seg.length === 2 && method === "DELETE") return op(`${KV}/secrets/delete`, "exact");
    if (seg.length === 3 && third === "versions" && method === "GET") return op(`${KV}/secrets/readMetadata/action`, "exact");
    if (seg.length === 3 && third === "backup" && method === "POST") return op(`${KV}/secrets/backup/action`, "exact");
    if (seg.length === 3 && method === "GET") return op(`${KV}/secrets/getSecret/action`, "exact");
    if (seg.length === 3 && method === "PATCH") return op(`${KV}/secrets/update/action`, "exact");
    return op(null);
  }
  if (kind === "deletedsecrets") {
    if (method === "GET") return op(`${KV}/secrets/readMetadata/action`);
    if (seg.length === 2 && method === "DELETE") return op(`${KV}/secrets/purge/action`, "exact");
    if (seg.length === 3 && third === "recover" && method === "POST") return op(`${KV}/secrets/recover/action`, "exact");
    return op(null);
  }
  if (kind === "keys") {
    const crypto = ["encrypt", "decrypt", "sign", "verify", "wrapkey", "unwrapkey"];
    if (seg.length === 4 && method === "POST" && crypto.includes(fourth)) return op(`${KV}/keys/${seg[3]}/action`, "exact");
    if (name === "restore" && seg.length === 2 && method === "POST") return op(`${KV}/keys/restore/action`, "exact");
    if (seg.length === 3 && third === "create" && method === "POST") return op(`${KV}/keys/create/action`, "exact");
    if (seg.length === 3 && third === "backup" && method === "POST") return op(`${KV}/keys/backup/action`, "exact");
    if (seg.length === 3 && third === "rotate" && method === "POST") return op(`${KV}/keys/rotate/action`, "exact");
    // Secure key release: the key itself, wrapped for an attested environment (its release policy decides which).
    if ((seg.length === 3 && third === "release") || (seg.length === 4 && fourth === "release")) return method === "POST" ? op(`${KV}/keys/release/action`, "exact") : op(null);
    if (method === "GET" || method === "HEAD") return op(`${KV}/keys/read`, "exact");
    if (seg.length === 2 && method === "PUT") return op(`${KV}/keys/import/action`, "exact");
    if (seg.length >= 2 && method === "PATCH") return op(`${KV}/keys/update/action`, "exact");
    if (seg.length === 2 && method === "DELETE") return op(`${KV}/keys/delete`, "exact");
    return op(null);
  }
  if (kind === "certificates") {
    if (method === "GET" || method === "HEAD") return op(`${KV}/certificates/read`);
    if (name === "restore" && seg.length === 2 && method === "POST") return op(`${KV}/certificates/restore/action`, "exact");
    if (seg.length === 3 && third === "backup" && method === "POST") return op(`${KV}/certificates/backup/action`, "exact");
    if (seg.length === 3 && third === "create" && method === "POST") return op(`${KV}/certificates/create/action`);
    if (seg.length === 3 && third === "import" && method === "POST") return op(`${KV}/certificates/import/action`);
    if (seg.length === 2 && method === "DELETE") return op(`${KV}/certificates/delete`);
    if (method === "PATCH") return op(`${KV}/certificates/update/action`);
    return op(null);
  }
  return op(null);
}

/** What a backup reads, each a part decided as a request of its own: the object read (and a certificate's private key, its secret). */
function backupParts(c: CanonicalRequest, operation: AzureOperation): ReadPart[] {
  const action = operation.action;
  if (action === null || !action.endsWith("/backup/action")) return [];
  const name = c.segments[1];
  const read = (what: string, kind: string): ReadPart => {
    const canonical: CanonicalRequest = { ...c, method: "GET", segments: [kind, name], path: `/${kind}/${name}`, query: new URLSearchParams(), headers: {}, source: null };
    return { what, canonical, operation: keyVaultOperation("GET", c.host, canonical.segments) };
  };
  if (action === `${KV}/secrets/backup/action`) return [read("the backed-up secret, read", "secrets")];
  if (action === `${KV}/keys/backup/action`) return [read("the backed-up key, read", "keys")];
  return [read("the backed-up certificate, read", "certificates"), read("the backed-up certificate's private key (its secret), read", "secrets")];
}
