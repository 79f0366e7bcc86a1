/**
 * Real Entra ID tokens on the agent, from @azure/identity (DESIGN.md section 4
 * step 7):
 * - Workload ID (AKS): the standard AZURE_* environment. Each user-assigned
 *   identity's client ID is read from ARM with the agent's own identity, and
 *   cached; then a WorkloadIdentityCredential for that client ID.
 * - Otherwise a VM managed identity, by resource ID, through IMDS.
 * Tokens are cached per (identity, scope) until shortly before they expire;
 * concurrent fetches for one key share one call; a fetch has a deadline.
 *
 * An agent serves one Azure cloud (its apps' `cloud`): Entra ID and ARM are
 * that cloud's, and the forwarder sends tokens to that cloud's hosts only.
 * AZURE_AUTHORITY_HOST (set by AKS's Workload ID webhook) must agree with it.
 */
import { TokenUnavailable } from "../errors/index.ts";
import { readFileSync } from "node:fs";
import { decodeJwt } from "jose";
import { isGuid } from "../azure/guid.ts";
import { ManagedIdentityCredential, WorkloadIdentityCredential, type AccessToken, type TokenCredential } from "@azure/identity";
import { createHttpHeaders, type HttpClient, type PipelineRequest } from "@azure/core-rest-pipeline";
import { identityArmPath, identityRefusal, parseIdentityId, type IdentityResourceId } from "../azure/resource-id.ts";
import { armScope, cloudByName, cloudOfAuthority, type AzureCloud, type CloudName } from "../azure/clouds.ts";
import { AzgateError } from "../errors/index.ts";
import type { Clock } from "../util/clock.ts";
/** The agent's own identity (from AZURE_CLIENT_ID): never reachable by a name the proxy sends, which must parse as an identity ID. */
const AGENT_SELF = Symbol("agent's own identity");
type Whom = IdentityResourceId | typeof AGENT_SELF;
const ARM_IDENTITY_API = "2023-01-31";

export interface TokenProviderOptions {
  env: Record<string, string | undefined>;
  /** The cloud of the agent's apps (public Azure when not given). */
  cloud?: CloudName;
  httpClient: HttpClient;
  /** Deadline for one token fetch (Teleport uses 5 s). */
  timeoutMs?: number;
  /** Refresh this long before a token expires. */
  refreshMarginMs?: number;
  clientIdTtlMs?: number;
  /** When a cached token is refreshed (the fetch's deadline is an I/O watchdog, on the runtime's timer). */
  clock: Clock;
  /** For metrics: every lookup (cache hit or not) and every fetch from Entra with its duration. */
  observe?: { lookup(hit: boolean): void; fetched(seconds: number, ok: boolean): void };
}

interface Cached {
  token: string;
  expiresOn: number;
  refreshAt: number;
  /** The token's `oid`: the principal Azure sees call (its Activity Log's `caller`), when the token says. */
  principalId?: string;
}

export class AzureTokenProvider {
  readonly mode: "workload" | "managed-identity";
  readonly cloud: AzureCloud;
  private readonly cache = new Map<string, Cached>();
  private readonly inflight = new Map<string, Promise<Cached>>();
  private readonly clientIds = new Map<string, { clientId: string; until: number }>();
  private readonly credentials = new Map<string, TokenCredential>();
  private readonly timeoutMs: number;
  private readonly margin: number;
  /** Counters for the metrics and the benchmark. */
  readonly stats = { hits: 0, fetches: 0 };

  constructor(private readonly opts: TokenProviderOptions) {
    const e = opts.env;
    this.mode = e.AZURE_CLIENT_ID && e.AZURE_TENANT_ID && e.AZURE_FEDERATED_TOKEN_FILE ? "workload" : "managed-identity";
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.margin = opts.refreshMarginMs ?? 5 * 60_000;
    this.cloud = cloudByName(opts.cloud);
    const authority = e.AZURE_AUTHORITY_HOST ? cloudOfAuthority(e.AZURE_AUTHORITY_HOST) : null;
    if (authority && authority !== this.cloud) {
      throw new AzgateError(
        "config_invalid",
        `the agent's apps are in ${this.cloud.name} but AZURE_AUTHORITY_HOST (${e.AZURE_AUTHORITY_HOST}) is Entra ID of ${authority.name}; an agent serves the cloud its identity lives in`,
      );
    }
  }

  /** The scope of an ARM token in the agent's cloud (identity lookups, identity facts). */
  get armScope(): string {
    return armScope(this.cloud);
  }

  /**
   * A real token for `identity` (an ARM resource ID in the one grammar,
   * azure/resource-id.ts) and `scope`. The agent checks it again, whatever
   * the proxy decided: an ID ARM would read as another identity (a query
   * string, say) gets nothing.
   */
  async getToken(identity: string, scope: string): Promise<{ token: string; expiresOn: number; principalId?: string }> {
    const parsed = parseIdentityId(identity);
    if (!parsed) throw new TokenUnavailable("not_an_identity", identityRefusal(identity) ?? "not an identity");
    return this.tokenFor(parsed, scope);
  }

  private async tokenFor(whom: Whom, scope: string): Promise<{ token: string; expiresOn: number; principalId?: string }> {
    const key = `${whom === AGENT_SELF ? "agent:self" : whom.canonical}\n${scope}`;
    const hit = this.cache.get(key);
    if (hit && this.opts.clock.now() < hit.refreshAt) {
      this.stats.hits++;
      this.opts.observe?.lookup(true);
      return hit;
    }
    this.opts.observe?.lookup(false);
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.fetchWithDeadline(whom, scope).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    const fresh = await pending;
    this.cache.set(key, fresh);
    return fresh;
  }

  private async fetchWithDeadline(identity: Whom, scope: string): Promise<Cached> {
    this.stats.fetches++;
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        abort.abort();
        reject(new TokenUnavailable("timeout", `timeout waiting for an Azure token for ${identity === AGENT_SELF ? "the agent's own identity" : `identity "${identity.name}"`} (${scope}) after ${this.timeoutMs / 1000}s`));
      }, this.timeoutMs);
    });
    const started = performance.now();
    let ok = false;
    try {
      const t = await Promise.race([this.fetch(identity, scope, abort.signal), deadline]);
      ok = true;
      const lifetime = t.expiresOnTimestamp - this.opts.clock.now();
      // Short-lived tokens are refreshed at half-life rather than never cached.
      const refreshAt = t.expiresOnTimestamp - Math.min(this.margin, lifetime / 2);
      return { token: t.token, expiresOn: t.expiresOnTimestamp, refreshAt, principalId: principalOf(t.token) };
    } finally {
      clearTimeout(timer);
      this.opts.observe?.fetched((performance.now() - started) / 1000, ok);
    }
  }

  private async fetch(identity: Whom, scope: string, abortSignal: AbortSignal): Promise<AccessToken> {
    if (this.mode === "managed-identity") {
      if (identity === AGENT_SELF) throw new TokenUnavailable("unavailable", "a VM managed identity agent has no identity of its own to look identities up with");
      const cred = this.credential(`mi:${identity.canonical}`, () => new ManagedIdentityCredential({ resourceId: identity.id, httpClient: this.opts.httpClient }));
      return this.call(cred, scope, abortSignal, identity, undefined);
    }
    // The agent's own identity is the one the environment names; others are looked up in ARM.
    const clientId = identity === AGENT_SELF ? this.opts.env.AZURE_CLIENT_ID! : await this.clientIdOf(identity, abortSignal);
    const cred = this.credential(`wi:${clientId}`, () => this.workloadCredential(clientId));
    return this.call(cred, scope, abortSignal, identity, clientId);
  }

  private workloadCredential(clientId: string): TokenCredential {
    const e = this.opts.env;
    return new WorkloadIdentityCredential({
      clientId,
      tenantId: e.AZURE_TENANT_ID,
      tokenFilePath: e.AZURE_FEDERATED_TOKEN_FILE,
      authorityHost: e.AZURE_AUTHORITY_HOST || `https://${this.cloud.loginHost}`,
      httpClient: this.opts.httpClient,
    });
  }

  private credential(key: string, make: () => TokenCredential): TokenCredential {
    let c = this.credentials.get(key);
    if (!c) this.credentials.set(key, (c = make()));
    return c;
  }

  private async call(cred: TokenCredential, scope: string, abortSignal: AbortSignal, identity: Whom, clientId: string | undefined): Promise<AccessToken> {
    for (let attempt = 0; ; attempt++) {
      try {
        const t = await cred.getToken(scope, { abortSignal });
        if (!t) throw new Error("no token returned");
        return t;
      } catch (e) {
        // A token request that got no answer (MSAL's network_error: a pooled connection the other end closed as it
        // was reused, seen under load) is asked once more, within the same deadline: it changes nothing to ask twice.
        if (attempt === 0 && !abortSignal.aborted && /network_error/.test(`${(e as { errorCode?: string }).errorCode ?? ""} ${(e as Error).message}`)) continue;
        throw this.explain(e as Error, identity, clientId);
      }
    }
  }

  /**
   * A GET on the agent's ARM host with the agent's own identity (Workload ID
   * only: a VM managed identity agent has none of its own). `path` is a path
   * and query built by the caller, or a nextLink, which must be on the ARM
   * host over HTTPS: the agent's token goes nowhere else.
   */
  async armGetAsAgent(path: string, abortSignal?: AbortSignal): Promise<{ status: number; body: string }> {
    const url = new URL(path, `https://${this.cloud.armHost}`);
    if (url.protocol !== "https:" || url.host.toLowerCase() !== this.cloud.armHost) throw new TokenUnavailable("unavailable", `refusing to send the agent's ARM token to ${url.host}: not ${this.cloud.armHost}`);
    if (this.mode !== "workload") throw new TokenUnavailable("unavailable", "a VM managed identity agent has no identity of its own to read ARM with");
    const res = await this.armGet(url, abortSignal);
    return { status: res.status, body: res.bodyAsText ?? "" };
  }

  /** A GET to ARM with the agent's own token; callers build the URL on this cloud's ARM host. */
  private async armGet(url: URL, abortSignal?: AbortSignal) {
    const armToken = await this.tokenFor(AGENT_SELF, this.armScope);
    return await this.opts.httpClient.sendRequest({
      url: url.toString(),
      method: "GET",
      headers: createHttpHeaders({ authorization: `Bearer ${armToken.token}`, accept: "application/json" }),
      timeout: this.timeoutMs,
      withCredentials: false,
      requestId: crypto.randomUUID(),
      abortSignal,
    } as PipelineRequest);
  }

  /**
   * The identity's client ID, read from ARM with the agent's own Workload ID
   * (cached 30 min). The URL is built from the parsed segments, each encoded,
   * and the one query parameter set as a parameter: nothing the proxy sent is
   * pasted into it.
   */
  private async clientIdOf(parsed: IdentityResourceId, abortSignal: AbortSignal): Promise<string> {
    const key = parsed.canonical;
    const cached = this.clientIds.get(key);
    if (cached && this.opts.clock.now() < cached.until) return cached.clientId;
    const own = this.opts.env.AZURE_CLIENT_ID!;
    const url = new URL(`https://${this.cloud.armHost}`);
    url.pathname = identityArmPath(parsed);
    url.searchParams.set("api-version", ARM_IDENTITY_API);
    const res = await this.armGet(url, abortSignal);
    const name = parsed.name;
    if (res.status === 404) {
      throw new TokenUnavailable("identity_not_found", `Azure identity "${name}" was not found (resource group ${parsed.resourceGroup}, subscription ${parsed.subscription}); check the ID in the role's azure_identities`);
    }
    if (res.status === 401 || res.status === 403) {
      throw new TokenUnavailable(
        "agent_cannot_read_identity",
        `the agent's own identity (client ID ${own}) cannot read Azure identity "${name}": grant it Microsoft.ManagedIdentity/userAssignedIdentities/read on the identity or its resource group (for example the "Managed Identity Operator" role)`,
      );
    }
    let clientId: unknown;
    try {
      clientId = (JSON.parse(res.bodyAsText ?? "{}") as { properties?: { clientId?: unknown } }).properties?.clientId;
    } catch {
      // handled below
    }
    if (res.status !== 200 || typeof clientId !== "string") {
      throw new TokenUnavailable("unavailable", `cannot find the client ID of Azure identity "${name}" (ARM answered HTTP ${res.status})`);
    }
    this.clientIds.set(key, { clientId, until: this.opts.clock.now() + (this.opts.clientIdTtlMs ?? 30 * 60_000) });
    return clientId;
  }

  /** Turns Entra's AADSTS codes into a cause an operator can act on. */
  private explain(e: Error, identity: Whom, clientId: string | undefined): Error {
    if (e instanceof TokenUnavailable) return e;
    if (e.name === "AbortError") return e;
    const name = identity === AGENT_SELF ? `the agent's own identity (client ID ${this.opts.env.AZURE_CLIENT_ID})` : `Azure identity "${identity.name}"`;
    const code = /AADSTS(\d+)/.exec(e.message)?.[1];
    const sa = this.serviceAccount();
    if (code === "70021" || code === "700211" || code === "700212") {
      return new TokenUnavailable(
        "no_federated_credential",
        `Entra ID refused Workload ID for ${name}${clientId ? ` (client ID ${clientId})` : ""}: no federated credential on it trusts this agent's service account token` +
          (sa ? ` (issuer ${sa.iss}, subject ${sa.sub}); add one: az identity federated-credential create --identity-name ${identity === AGENT_SELF ? "<name>" : identity.name} --resource-group ${identity === AGENT_SELF ? "<rg>" : identity.resourceGroup} --issuer ${sa.iss} --subject ${sa.sub} --audience api://AzureADTokenExchange` : "") +
          ` [AADSTS${code}]`,
      );
    }
    if (code === "700016") return new TokenUnavailable("entra", `Entra ID does not know the client ID of ${name}${clientId ? ` (${clientId})` : ""} in tenant ${this.opts.env.AZURE_TENANT_ID} [AADSTS700016]`);
    if (code) return new TokenUnavailable("entra", `Entra ID refused a token for ${name}: ${e.message.split("\n")[0]}`);
    return new TokenUnavailable("unavailable", `cannot get a token for ${name}: ${e.message.split("\n")[0]}`);
  }

  private serviceAccount(): { iss: string; sub: string } | null {
    try {
      const claims = decodeJwt(readFileSync(this.opts.env.AZURE_FEDERATED_TOKEN_FILE ?? "", "utf8").trim());
      return typeof claims.iss === "string" && typeof claims.sub === "string" ? { iss: claims.iss, sub: claims.sub } : null;
    } catch {
      return null;
    }
  }
}

/** The `oid` claim of an Entra token, read once when it is fetched (not verified: Azure verifies it; this only names it). */
function principalOf(token: string): string | undefined {
  try {
    const oid = decodeJwt(token).oid;
    return typeof oid === "string" && isGuid(oid) ? oid : undefined;
  } catch {
    return undefined;
  }
}
