/**
 * A CI issuer's signing keys, as the proxy reads them: the OIDC discovery
 * document at ISSUER/.well-known/openid-configuration (its `issuer` must be
 * exactly the one asked for), then its `jwks_uri`. Both over HTTPS only,
 * trusting the web PKI and `bots.issuer_ca_file`, bounded in size and time.
 *
 * Kept for an hour per issuer. A token signed by a key the cached set does
 * not hold (the issuer rotated its keys) makes one fresh read of the set,
 * at most once a minute per set: a stream of tokens with made-up key IDs
 * cannot make the proxy hammer an issuer, and a rotation is seen within a
 * minute. Times by the proxy's clock (ctx.clock), so a test moves them.
 */
import type { JSONWebKeySet } from "jose";
import { AzgateError } from "../../errors/index.ts";
import { request } from "../../runtime/index.ts";
import type { Clock } from "../../util/clock.ts";
import type { BotSettings, ProxyContext } from "../context.ts";

export const KEYS_TTL_MS = 3_600_000;
/** The least time between two reads of one key set forced by an unknown key ID. */
export const UNKNOWN_KID_REFETCH_MS = 60_000;
const MAX_DOCUMENT_BYTES = 256 * 1024;
const MAX_KEYS = 100;
const TIMEOUT_MS = 10_000;

interface Cached<T> {
  value: T;
  at: number;
  /** When an unknown key ID last made it read the set (rate-limited apart from the hourly read). */
  forcedAt?: number;
}

export class IssuerKeys {
  private readonly discovered = new Map<string, Cached<string>>();
  private readonly sets = new Map<string, Cached<JSONWebKeySet>>();
  private readonly inFlight = new Map<string, Promise<unknown>>();

  constructor(
    private readonly settings: BotSettings,
    private readonly clock: Clock,
  ) {}

  /** The issuer's current key set; re-read once (rate-limited) when it lacks `kid`. */
  async keySet(issuer: string, kid: string | undefined): Promise<JSONWebKeySet> {
    const jwksUri = await this.jwksUri(issuer);
    const now = this.clock.now();
    let set = this.sets.get(jwksUri);
    const stale = !set || now - set.at >= KEYS_TTL_MS;
    const lacksKid = !!set && kid !== undefined && !set.value.keys.some((k) => k.kid === kid);
    const forced = !stale && lacksKid && !(now - (set!.forcedAt ?? -Infinity) < UNKNOWN_KID_REFETCH_MS);
    if (stale || forced) {
      set = { value: await this.once(`jwks ${jwksUri}`, () => this.readKeys(jwksUri)), at: now, forcedAt: forced ? now : set?.forcedAt };
      this.sets.set(jwksUri, set);
    }
    return set!.value;
  }

  private async jwksUri(issuer: string): Promise<string> {
    const cached = this.discovered.get(issuer);
    if (cached && this.clock.now() - cached.at < KEYS_TTL_MS) return cached.value;
    const uri = await this.once(`discovery ${issuer}`, async () => {
      const doc = await this.readJson(`${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`, issuer);
      if (doc.issuer !== issuer) throw unavailable(issuer, `its discovery document names issuer ${JSON.stringify(String(doc.issuer).slice(0, 200))}, not ${issuer}`);
      if (typeof doc.jwks_uri !== "string" || !doc.jwks_uri.startsWith("https://")) throw unavailable(issuer, "its discovery document has no https jwks_uri");
      return doc.jwks_uri;
    });
    this.discovered.set(issuer, { value: uri, at: this.clock.now() });
    return uri;
  }

  private async readKeys(uri: string): Promise<JSONWebKeySet> {
    const doc = await this.readJson(uri, uri);
    if (!Array.isArray(doc.keys) || doc.keys.length > MAX_KEYS) throw unavailable(uri, `the key set is not a JWKS of at most ${MAX_KEYS} keys`);
    return { keys: doc.keys.filter((k): k is JSONWebKeySet["keys"][number] => !!k && typeof k === "object") };
  }

  private async readJson(url: string, what: string): Promise<Record<string, unknown>> {
    if (!url.startsWith("https://")) throw unavailable(what, "issuers are read over https only");
    let res;
    try {
      res = await request(url, { headers: { accept: "application/json" }, ca: this.settings.issuerCas, connectTo: this.settings.connectTo, timeoutMs: TIMEOUT_MS, maxBytes: MAX_DOCUMENT_BYTES });
    } catch (e) {
      throw unavailable(what, (e as Error).message);
    }
    if (res.status !== 200) throw unavailable(what, `${url} answered HTTP ${res.status}`);
    try {
      const doc = JSON.parse(res.body) as unknown;
      if (doc && typeof doc === "object" && !Array.isArray(doc)) return doc as Record<string, unknown>;
    } catch {
      // said below
    }
    throw unavailable(what, `${url} did not answer with a JSON object`);
  }

  /** One read at a time per document: joins that arrive together share it. */
  private once<T>(key: string, read: () => Promise<T>): Promise<T> {
    let p = this.inFlight.get(key) as Promise<T> | undefined;
    if (!p) {
      p = read().finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, p);
    }
    return p;
  }
}

const unavailable = (issuer: string, why: string) => new AzgateError("issuer_unavailable", `cannot read the keys of CI issuer ${issuer}: ${why}`);

const perContext = new WeakMap<ProxyContext, IssuerKeys>();

/** The proxy's one cache of issuer keys (per context: a test's cluster has its own). */
export function issuerKeys(ctx: ProxyContext): IssuerKeys {
  let keys = perContext.get(ctx);
  if (!keys) perContext.set(ctx, (keys = new IssuerKeys(ctx.settings.bots, ctx.clock)));
  return keys;
}
