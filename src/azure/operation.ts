/**
 * What an Azure request does, named as Azure RBAC names it: method, host,
 * path and query in, `{ plane, action, scope, resource_id, confidence }` out.
 * Pure, no I/O. The proxy decides per-request policy on it
 * (rbac/azure-api.ts), the agent checks it saw the request that was decided,
 * and the emulator's Azure RBAC authorises with it.
 *
 * One reading of a request (readRequest), computed once and carried: the
 * canonical request every rule matches (host in lower case without port or
 * trailing dot, every ARM host of the cloud as its one ARM host, a storage
 * account's secondary, private-link and Data Lake (dfs) names as its blob
 * host (storage-hosts.ts), the path decoded into
 * segments once, without a trailing slash) and the operation named from it,
 * with what else the request does (a Data Lake rename's source: `parts`).
 * Spellings Azure treats as one request read as one.
 *
 * ARM's convention (Microsoft Learn, "Understand Azure role definitions"):
 * `{Provider}/{type}[/{childType}...]/{verb}`, where GET and HEAD read, PUT
 * and PATCH write, DELETE deletes, and a POST to `.../{name}` is
 * `{name}/action`. The last `/providers/{ns}/` keyword names the provider
 * (extension resources: a diagnostic setting on a VM is Microsoft.Insights');
 * a name spelt `providers` is refused (keywordProviders).
 * Paths without a provider are Microsoft.Resources' (subscriptions, resource
 * groups, their resources). Resource providers may authorise under other
 * names than this derivation (ProviderHub's action mappings are private), so
 * a derived action is marked "derived", a built-in "exact".
 *
 * ARM's paths are read case-insensitively (ARM's are); rules compare a
 * path with case only where the service does, on Blob and its dfs host
 * (CanonicalRequest.caseSensitivePath). Anything a server could
 * read otherwise than this code does is refused, not guessed at: encoded
 * separators (%2F, %5C), encoded dots, letters, digits and - _ ~ (Azure
 * decodes them: `%73ecret` is `secret`), encodings encoded twice, empty
 * segments, segments ending in a dot or whitespace, control characters, and
 * the query parameters the mapper reads given twice or in another case, the
 * headers it reads given twice, a rename source it cannot read as a path. So
 * are batch requests (ARM's /batch, Blob's comp=batch, OData's $batch): the
 * requests inside their bodies are not read.
 */
import { armHostSuffixes, cloudByName, hostMatches, normaliseHost, type CloudName } from "./clouds.ts";
import { DFS_HEADERS, DFS_PARAMETERS, mapDataLake, type Named } from "./data-lake.ts";
import { asciiLower, firstNonAscii } from "../util/ascii.ts";
import { checkGraphSegments, graphHost } from "./graph.ts";
import { mapKeyVault } from "./key-vault.ts";
import { safeSegments, UnsafePath } from "./safe-path.ts";
import { BLOB_HEADERS, checkContainer, readHeaders, sourceOf, storageAccount, storageHost, storageSuffix, userDelegationKey, type HeaderSource, type StorageAccount } from "./storage-hosts.ts";

export { safeSegments, UnsafePath };

export type Plane = "control" | "data";
export type Confidence = "exact" | "derived" | "unknown";

export interface AzureOperation {
  /** Which of a role's lists Azure names it in: Actions (control) or DataActions (data); a data host's request may be either (a user delegation key is an Action). */
  plane: Plane;
  /** The RBAC action (or data action); null when it cannot be named. */
  action: string | null;
  /** Where the operation applies: the resource, or for a list the collection's parent; a data URL prefix on data planes. */
  scope: string;
  /** The ARM resource the request names, when it names one. */
  resource_id: string | null;
  confidence: Confidence;
}

export interface RequestShape {
  method: string;
  host: string;
  /** The path as sent (percent-encoded), without the query. */
  path: string;
  query?: URLSearchParams;
  headers?: [string, string][];
}

/** A request as every rule reads it: what Azure acts on, one spelling for all the ways of writing it. */
export interface CanonicalRequest {
  /** Upper case. */
  method: string;
  /**
   * Lower case, no port, no trailing dot; a host read as ARM (a regional one included) is the cloud's ARM host,
   * a storage account's host its primary one (its secondary and private-link names read as it: storage-hosts.ts),
   * and its Data Lake (dfs) host its blob host: the same data.
   */
  host: string;
  /** The cloud it was read in (a literal `hosts` pattern is read the same way: rbac/azure-api.ts). */
  cloud: CloudName;
  /** Whether the host is read as ARM. */
  arm: boolean;
  /** Whether the request came to a storage account's dfs host (the Data Lake API; `host` is the blob host). */
  dfs: boolean;
  /** Other names of the host's data a `hosts` rule answers to as well: a storage account's dfs host beside its blob host. */
  aliases: string[];
  /** The path's segments, decoded once (safeSegments). */
  segments: string[];
  /** "/" and the segments joined: decoded, without a trailing slash. What `paths` rules match. */
  path: string;
  /**
   * Whether `paths` rules compare the path with case: on a storage account's blob (and dfs) host, where blob
   * names are case-sensitive (`/data/PUBLIC/x` is another blob than `/data/public/x`); elsewhere (ARM, Key
   * Vault, Microsoft Graph, the other storage services) the service ignores case, and so do the rules.
   */
  caseSensitivePath: boolean;
  query: URLSearchParams;
  /** The request headers the mapper reads (lower-case names, each given once), as sent; no others. */
  headers: Record<string, string>;
  /** Another blob, path or container the request reads or moves, named in a header (a rename's, a copy's source), canonical; or null. */
  source: HeaderSource | null;
}

/** Another operation one request performs, on its own path or another (a rename's source), decided as the request itself is. */
export interface ReadPart {
  /** What it is, for a refusal's message ("the rename's source, removed"). */
  what: string;
  canonical: CanonicalRequest;
  operation: AzureOperation;
}

/** A request read once: its canonical form and operation, or why no rule may decide on it. */
export interface RequestReading {
  /** "METHOD https://host/path" as sent, for messages about a request that cannot be read. */
  sent: string;
  /** Null when the path or query cannot be read. */
  canonical: CanonicalRequest | null;
  /** Null when the request cannot be read, or is read but names no one operation (an ARM name spelt `providers`). */
  operation: AzureOperation | null;
  /** What else the request does that a rule may refuse (a Data Lake rename reads and removes its source): every part is decided. */
  parts: ReadPart[];
  /** Why the request is refused wherever an azure_api rule applies (an unreadable path, a method override, a batch), or null. */
  refused: string | null;
}

/** Request headers that would make a server do another method than the one decided on. */
export const METHOD_OVERRIDE_HEADERS = ["x-http-method-override", "x-http-method", "x-method-override"];

/** The query parameters the mapper reads: a server might read another spelling or another copy than this code. */
const READ_PARAMETERS = ["comp", "restype"];

function checkQuery(query: URLSearchParams, read: string[]): void {
  const seen = new Set<string>();
  for (const key of query.keys()) {
    const lower = key.toLowerCase();
    if (!read.includes(lower)) continue;
    if (key !== lower) throw new UnsafePath(`the query parameter ${key} must be spelt ${lower}`);
    if (seen.has(lower)) throw new UnsafePath(`the query parameter ${lower} may be given once`);
    seen.add(lower);
  }
}

/** The request as every rule reads it; throws UnsafePath when its path, query or the headers the mapper reads cannot be read. */
export function canonicalRequest(req: RequestShape, cloudName: CloudName = "Azure"): CanonicalRequest {
  const { host, arm, account, aliases, graph } = readHost(req.host, cloudName);
  const dfs = account?.dfs ?? false;
  const segments = safeSegments(req.path);
  if (graph) checkGraphSegments(segments);
  if (arm || isVaultHost(host, cloudName)) checkAsciiNames(segments);
  const query = req.query ?? new URLSearchParams();
  checkQuery(query, dfs ? [...READ_PARAMETERS, ...DFS_PARAMETERS] : READ_PARAMETERS);
  if (account) checkContainer(segments, "the path", !dfs && segments.length === 1 && query.get("restype") !== "container");
  const headers = account ? readHeaders(req.headers ?? [], dfs ? DFS_HEADERS : BLOB_HEADERS) : {};
  const source = account ? sourceOf(headers, account, cloudName) : null;
  return { method: req.method.toUpperCase(), host, cloud: cloudName, arm, dfs, aliases, segments, path: "/" + segments.join("/"), caseSensitivePath: account !== null, query, headers, source };
}

/**
 * ARM compares names ordinally without case, and its names may have non-ASCII letters, whose case Azure folds
 * by its own tables (not JavaScript's); Key Vault's names are ASCII. Rules compare ASCII letters only
 * (util/ascii.ts), so a name outside ASCII is refused wherever a rule applies: azgate cannot tell which
 * resource it is to Azure (U+212A KELVIN SIGN in `\u212Aube-dev` is another group than `kube-dev`; `CAFÉ` and
 * `café` may be one).
 */
function checkAsciiNames(segments: string[]): void {
  for (const [i, s] of segments.entries()) {
    const odd = firstNonAscii(s);
    if (odd) throw new UnsafePath(`segment ${i + 1} has a character outside ASCII (U+${odd.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}): azgate compares Azure's names in ASCII only`);
  }
}

/** A host as every rule reads it (see CanonicalRequest.host); throws UnsafePath for a storage host that names no one account. */
export interface HostReading {
  host: string;
  arm: boolean;
  /** The storage account's blob and dfs hosts, when the host is one of their names. */
  account: StorageAccount | null;
  aliases: string[];
  /** A Microsoft Graph (or Azure AD Graph) host: an OData service, whose paths graph.ts checks. */
  graph?: boolean;
}

export function readHost(sent: string, cloudName: CloudName = "Azure"): HostReading {
  const cloud = cloudByName(cloudName);
  // A URL's host is ASCII (IDNA); one that is not could be mapped onto another name by whoever parses it next.
  const odd = firstNonAscii(sent);
  if (odd) throw new UnsafePath(`the host has a character outside ASCII (U+${odd.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")})`);
  const named = normaliseHost(sent.replace(/:\d*$/, ""));
  if (armHostSuffixes(cloud).some((s) => hostMatches(named, s))) return { host: cloud.armHost, arm: true, account: null, aliases: [] };
  const account = storageAccount(named, cloudName);
  if (account) return { host: account.blobHost, arm: false, account, aliases: [account.dfsHost] };
  const graph = graphHost(named, cloud);
  if (graph) return { host: graph, arm: false, account: null, aliases: [], graph: true };
  // Queue, Table and Files: the account's primary host for that service (its secondary and private-link names read as it).
  return { host: storageHost(named, cloudName)?.primary ?? named, arm: false, account: null, aliases: [] };
}

/** What kind of batch request this is (its body holds requests azgate does not read), or null. */
export function batchKind(c: CanonicalRequest): string | null {
  if (c.arm && c.segments.length === 1 && asciiLower(c.segments[0]) === "batch") return "ARM's /batch";
  if (c.segments.some((s) => asciiLower(s) === "$batch")) return "an OData $batch (Microsoft Graph, Table storage)";
  if ([...c.query.entries()].some(([k, v]) => k === "comp" && v.toLowerCase() === "batch")) return "a storage comp=batch";
  return null;
}

/** The first method-override header a request carries (X-HTTP-Method-Override and its kin), as [name, value]. */
export function methodOverride(headers: [string, string][]): [string, string] | undefined {
  return headers.find(([k]) => METHOD_OVERRIDE_HEADERS.includes(k.toLowerCase()));
}

/** Reads a request once: its canonical form, its operation, and whether it may be decided on at all. */
export function readRequest(req: RequestShape, cloudName: CloudName = "Azure"): RequestReading {
  const sent = `${req.method.toUpperCase()} https://${req.host}${req.path}`;
  const override = methodOverride(req.headers ?? []);
  let canonical: CanonicalRequest;
  try {
    canonical = canonicalRequest(req, cloudName);
  } catch (e) {
    if (!(e instanceof UnsafePath)) throw e;
    return { sent, canonical: null, operation: null, parts: [], refused: override ? overridden(override[0]) : `${sent} is refused: ${e.message}` };
  }
  let named: Named;
  try {
    named = namedRequest(canonical, cloudName);
  } catch (e) {
    // A path readable as text that still names no one operation (a name where ARM has a keyword).
    if (!(e instanceof UnsafePath)) throw e;
    return { sent, canonical, operation: null, parts: [], refused: override ? overridden(override[0]) : `${sent} is refused: ${e.message}` };
  }
  const batch = batchKind(canonical);
  const refused = override ? overridden(override[0]) : batch ? `${sent} is refused: ${batch} carries requests azgate does not read, so batches are not allowed where an azure_api policy applies` : null;
  return { sent, canonical, ...named, refused };
}

/** The operation a canonical request names, with what else it does (its parts: a rename's or copy's source, a backup's read). */
function namedRequest(c: CanonicalRequest, cloudName: CloudName): Named {
  if (c.dfs) return mapDataLake(c);
  if (isVaultHost(c.host, cloudName)) return mapKeyVault(c);
  return { operation: operationOf(c, cloudName), parts: blobSourceParts(c, cloudName) };
}

function isVaultHost(host: string, cloudName: CloudName): boolean {
  const vaultSuffix = cloudByName(cloudName).hostSuffixes.find((s) => s.startsWith("vault."));
  return !!vaultSuffix && host.endsWith(`.${vaultSuffix}`);
}

const overridden = (header: string) => `the ${header} header is not allowed where an azure_api policy applies`;

const VERB: Record<string, string> = { GET: "read", HEAD: "read", PUT: "write", PATCH: "write", DELETE: "delete" };

/** Microsoft.Resources' own types, spelt as Azure's operation list spells them. */
const BUILT_IN_TYPES: Record<string, string> = {
  subscriptions: "subscriptions",
  resourcegroups: "resourceGroups",
  resources: "resources",
  locations: "locations",
  tagnames: "tagNames",
  providers: "providers",
  tenants: "tenants",
};

/** The operation a request names (throws UnsafePath when it cannot be read): canonicalRequest, then operationOf. */
export function mapRequest(req: RequestShape, cloudName: CloudName = "Azure"): AzureOperation {
  return operationOf(canonicalRequest(req, cloudName), cloudName);
}

/** The operation a canonical request names. */
export function operationOf(c: CanonicalRequest, cloudName: CloudName = "Azure"): AzureOperation {
  const { method, host, segments } = c;
  const cloud = cloudByName(cloudName);
  if (c.arm) return mapArm(method, segments);
  if (c.dfs) return mapDataLake(c).operation;
  if (isVaultHost(host, cloudName)) return mapKeyVault(c).operation;
  const blobSuffix = storageSuffix(cloudName, "blob");
  if (blobSuffix && host.endsWith(`.${blobSuffix}`)) return mapBlob(method, host, segments, c.query, c.source);
  return { plane: "data", action: null, scope: dataScope(host, segments), resource_id: null, confidence: "unknown" };
}

const idOf = (segments: string[]) => "/" + segments.join("/");
const dataScope = (host: string, segments: string[]) => `https://${host}${segments.length ? idOf(segments) : ""}`;

// ---- the control plane (ARM) ----

/**
 * ARM's resource IDs alternate keyword and name from the root
 * (`/subscriptions/{s}/resourceGroups/{g}/providers/{ns}/{type}/{name}...`, an
 * extension resource's `/providers/{ns}/{type}/{name}` after a whole ID), so
 * a keyword sits at an even position (0-based) and a name at an odd one; an
 * action or a collection comes after a whole ID, at a keyword position too.
 * A name spelt `providers` (a slot, a VM, a group called so) would move the
 * provider this code reads, and whether ARM's router reads it as a name or as
 * the keyword is not documented: such a path cannot be named, so it is
 * refused wherever a rule applies.
 */
function keywordProviders(seg: string[], lower: string[]): number {
  const atName = lower.findIndex((s, i) => s === "providers" && i % 2 === 1);
  if (atName >= 0) throw new UnsafePath(`a name spelt "${seg[atName]}" (segment ${atName + 1}, after "${seg[atName - 1]}") reads as ARM's providers keyword, so azgate cannot tell which operation this is`);
  return lower.lastIndexOf("providers");
}

/**
 * The most segments an ARM path may have and be named: ARM's deepest IDs (an extension resource on a nested child
 * resource, an action on it) have about twenty. A rule's scope pattern is tried against each ancestor of the scope
 * (rbac/azure-api.ts scopeCovers), so the count bounds that work; a deeper path is refused wherever a rule applies.
 */
export const MAX_ARM_SEGMENTS = 64;

function mapArm(method: string, seg: string[]): AzureOperation {
  if (seg.length > MAX_ARM_SEGMENTS) throw new UnsafePath(`an ARM path of ${seg.length} segments: azgate names paths of at most ${MAX_ARM_SEGMENTS}`);
  const lower = seg.map(asciiLower);
  const unknown = (scope: string): AzureOperation => ({ plane: "control", action: null, scope, resource_id: null, confidence: "unknown" });
  if (seg.length === 0) return unknown("/");
  // The last providers keyword names the provider (an extension resource's); never a name that is spelt so.
  const lastProviders = keywordProviders(seg, lower);

  // Provider resources (and extension resources): /[scope]/providers/{ns}/{type}/{name}[/{child}/{name}]...[/{action}]
  if (lastProviders >= 0 && seg.length > lastProviders + 2) {
    const ns = seg[lastProviders + 1];
    const scopeSegs = seg.slice(0, lastProviders);
    // /subscriptions/{s}/providers/{ns}/register: the provider registration verbs.
    if (isSubscriptionScope(lower.slice(0, lastProviders)) && seg.length === lastProviders + 3 && ["register", "unregister"].includes(lower[lastProviders + 2])) {
      return method === "POST" ? { plane: "control", action: `${ns}/${lower[lastProviders + 2]}/action`, scope: idOf(scopeSegs), resource_id: null, confidence: "exact" } : unknown(idOf(scopeSegs));
    }
    return typed(method, ns, seg.slice(lastProviders + 2), scopeSegs);
  }
  // /subscriptions/{s}/providers[/{ns}]: the provider list and one provider.
  if (lastProviders >= 0 && isSubscriptionScope(lower.slice(0, lastProviders)) && seg.length <= lastProviders + 2) {
    return readOnly(method, "Microsoft.Resources/subscriptions/providers/read", idOf(seg.slice(0, lastProviders)));
  }
  // /providers/{ns}: tenant-level provider metadata.
  if (lastProviders === 0) return readOnly(method, "Microsoft.Resources/providers/read", "/");
  // {scope}/providers[/{ns}] below a subscription: no operation of its own.
  if (lastProviders > 0) return unknown(idOf(seg.slice(0, lastProviders)));
  // No provider: Microsoft.Resources' own tree (/subscriptions, /tenants, resource groups, resources, locations...).
  if (lower[0] === "tenants" && seg.length === 1) return readOnly(method, "Microsoft.Resources/tenants/read", "/");
  if (lower[0] !== "subscriptions") return unknown("/");
  return typed(method, "Microsoft.Resources", seg, []);
}

const isSubscriptionScope = (lower: string[]) => lower.length === 2 && lower[0] === "subscriptions";

function readOnly(method: string, action: string, scope: string): AzureOperation {
  return VERB[method] === "read" ? { plane: "control", action, scope, resource_id: null, confidence: "exact" } : { plane: "control", action: null, scope, resource_id: null, confidence: "unknown" };
}

/**
 * `rest` alternates type and name after a provider (or from /subscriptions on,
 * for Microsoft.Resources' own tree): an even count names a resource, an odd
 * count a collection, or for a POST an action on what comes before it.
 */
function typed(method: string, ns: string, rest: string[], scopeSegs: string[]): AzureOperation {
  const builtIn = ns === "Microsoft.Resources" && scopeSegs.length === 0 && (rest[0] !== undefined && asciiLower(rest[0]) === "subscriptions");
  const typeName = (s: string) => (builtIn ? BUILT_IN_TYPES[asciiLower(s)] ?? s : s);
  const types = (count: number) => rest.slice(0, count).filter((_, i) => i % 2 === 0).map(typeName);
  const base = builtIn ? [] : [...scopeSegs, "providers", ns];
  // Microsoft.Resources' own types are Azure's names exactly; everything else follows the convention.
  const confidence = (count: number): Confidence => (builtIn && types(count).every((t) => KNOWN_BUILT_INS.has(t)) ? "exact" : "derived");
  // What a name-less position refers to: the scope the provider segment hangs off ("/" at the tenant).
  const owner = (count: number) => (count === 0 ? (builtIn || scopeSegs.length === 0 ? "/" : idOf(scopeSegs)) : idOf([...base, ...rest.slice(0, count)]));
  if (rest.length % 2 === 0) {
    const id = idOf([...base, ...rest]);
    const verb = VERB[method];
    // A POST to a resource itself names no operation.
    if (!verb) return { plane: "control", action: null, scope: id, resource_id: id, confidence: "unknown" };
    return { plane: "control", action: `${ns}/${types(rest.length).join("/")}/${verb}`, scope: id, resource_id: id, confidence: confidence(rest.length) };
  }
  const last = rest.length - 1;
  if (method === "POST") {
    const on = owner(last);
    const prefix = types(last);
    return { plane: "control", action: `${ns}/${[...prefix, rest[last]].join("/")}/action`, scope: on, resource_id: last > 0 ? on : null, confidence: "derived" };
  }
  const scope = owner(last);
  if (VERB[method] !== "read") return { plane: "control", action: null, scope, resource_id: null, confidence: "unknown" };
  return { plane: "control", action: `${ns}/${types(rest.length).join("/")}/read`, scope, resource_id: null, confidence: confidence(rest.length) };
}

const KNOWN_BUILT_INS = new Set(Object.values(BUILT_IN_TYPES));

// ---- data planes ----

const BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers";

/** Blob storage: containers and blobs (Blob service REST reference; RBAC actions per operation). */
function mapBlob(method: string, host: string, seg: string[], query: URLSearchParams, source: HeaderSource | null): AzureOperation {
  const op = (action: string | null, confidence: Confidence = "derived"): AzureOperation => ({ plane: "data", action, scope: dataScope(host, seg), resource_id: null, confidence: action ? confidence : "unknown" });
  const restype = query.get("restype")?.toLowerCase();
  const comp = query.get("comp")?.toLowerCase();
  const read = method === "GET" || method === "HEAD";
  // A source header where Blob reads none is a request this does not know (blobSourceParts decides the source itself).
  if (source?.header === "x-ms-copy-source" && method !== "PUT") return op(null);
  if (source?.header === "x-ms-source-container-name" && !(method === "PUT" && seg.length === 1 && restype === "container" && comp === "rename")) return op(null);
  if (seg.length === 0) {
    if (read && comp === "list") return op(`${BLOBS}/read`, "exact");
    // Account properties and statistics: not mapped.
    return userDelegationKey(method, host, seg, query) ?? op(null);
  }
  if (seg.length === 1 && restype === "container") {
    if (read && comp === "list") return op(`${BLOBS}/blobs/read`, "exact");
    if (read) return op(`${BLOBS}/read`, "exact");
    if (method === "PUT") return op(`${BLOBS}/write`, "exact");
    if (method === "DELETE") return op(`${BLOBS}/delete`, "exact");
    return op(null);
  }
  if (seg.length === 1) return op(null);
  if (comp === "tags") return op(read ? `${BLOBS}/blobs/tags/read` : method === "PUT" ? `${BLOBS}/blobs/tags/write` : null, "exact");
  if (read) return op(`${BLOBS}/blobs/read`, "exact");
  if (method === "PUT") return op(`${BLOBS}/blobs/${comp === "appendblock" ? "add/action" : "write"}`, "exact");
  if (method === "DELETE") return op(`${BLOBS}/blobs/delete`, "exact");
  return op(null);
}

/**
 * What a Blob request does to the source a header names: a copy (Copy Blob, and the From URL
 * operations) reads it, a container rename removes the container renamed. Decided as the request
 * itself is, so a rule that refuses reading or removing the source refuses the copy or the rename.
 */
function blobSourceParts(c: CanonicalRequest, cloudName: CloudName): ReadPart[] {
  const src = c.source;
  if (!src) return [];
  const at = (method: string, query: string): CanonicalRequest => ({ ...c, method, host: src.host, aliases: src.aliases, segments: src.segments, path: "/" + src.segments.join("/"), caseSensitivePath: src.caseSensitivePath, query: new URLSearchParams(query), headers: {}, source: null });
  const part = (what: string, canonical: CanonicalRequest): ReadPart => ({ what, canonical, operation: operationOf(canonical, cloudName) });
  return src.header === "x-ms-copy-source" ? [part("the copy's source, read", at("GET", ""))] : [part("the renamed container, removed", at("DELETE", "restype=container"))];
}

/** What the proxy authorised, as it tells the agent (forwarding.ts `decided`): the canonical request's method, host and path. */
export interface DecidedRequest {
  method: string;
  host: string;
  path: string;
  action: string | null;
}

/** What the agent is told was decided: the canonical request (the request as sent where it cannot be read; the agent then refuses it). */
export function decidedRequest(reading: RequestReading, raw: { method: string; host: string; path: string }): DecidedRequest {
  const c = reading.canonical;
  return c ? { method: c.method, host: c.host, path: c.path, action: reading.operation?.action ?? null } : { ...raw, action: null };
}

/**
 * Why the request about to be forwarded is not the one decided, or null.
 * The agent asks, with the URL it will send: read by the same code
 * (readRequest), it must be readable, carry no method override and no batch,
 * and have the same canonical method, host and path and the same operation.
 */
export function differsFromDecided(decided: DecidedRequest, req: RequestShape & { headers: [string, string][] }, cloud: CloudName): string | null {
  const reading = readRequest(req, cloud);
  if (reading.refused) return reading.refused;
  const c = reading.canonical!;
  if (c.method !== decided.method.toUpperCase() || c.host !== decided.host || c.path !== decided.path) {
    return `the request (${c.method} ${c.host}${c.path}) is not the one the proxy decided (${decided.method} ${decided.host}${decided.path})`;
  }
  const action = reading.operation!.action;
  return action === decided.action ? null : `the request's operation (${action ?? "unknown"}) is not the one the proxy decided (${decided.action ?? "unknown"})`;
}
