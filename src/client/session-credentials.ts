/**
 * An app session's credentials while its local proxy runs, as a rotation of
 * the cluster's CAs moves them (docs/rotation.md): the host CAs its tunnel
 * trusts, and its key and certificate, which a user CA rotation replaces (a
 * new key, certified by the CA that signs now, over the reissue call). The
 * placeholder-signing key rotates with it: tokens handed out under an earlier
 * key of this session are signed again with the key of the tunnel they go on
 * (clients keep the token they cached), and only those this session signed.
 */
import { calculateJwkThumbprint } from "jose";
import { generateKeyPair, privateKeyToPem, publicKeyOf, publicKeyToPem } from "../pki/keys.ts";
import { placeholderKid, resignPlaceholder } from "../azure/placeholder.ts";
import type { TunnelSession } from "../tunnel/index.ts";

interface SessionKey {
  key: CryptoKey;
  jwk: JsonWebKey;
  kid: string;
}

/** Earlier keys kept to sign their tokens again: a session sees a rotation or two, not many. */
const KEYS_KEPT = 4;

async function sessionKey(key: CryptoKey, publicKey?: CryptoKey): Promise<SessionKey> {
  const pub = publicKey ?? (await publicKeyOf(key));
  const { d: _d, key_ops: _ops, ext: _ext, ...jwk } = (await crypto.subtle.exportKey("jwk", pub)) as JsonWebKey;
  return { key, jwk, kid: await calculateJwkThumbprint(jwk as Parameters<typeof calculateJwkThumbprint>[0]) };
}

export class SessionCredentials {
  private keys: SessionKey[];
  private tunnelKids = new WeakMap<TunnelSession, string>();

  private constructor(
    current: SessionKey,
    private cert: string,
    private cas: string[],
  ) {
    this.keys = [current];
  }

  static async create(key: CryptoKey, certPem: string, hostCas: string[]): Promise<SessionCredentials> {
    return new SessionCredentials(await sessionKey(key), certPem, hostCas);
  }

  /** The key and certificate tunnels are opened with now, and the key tokens are signed with. */
  get key(): CryptoKey {
    return this.keys[0].key;
  }
  get kid(): string {
    return this.keys[0].kid;
  }
  get certPem(): string {
    return this.cert;
  }
  /** The cluster's host CAs the tunnel trusts now. */
  get hostCas(): string[] {
    return this.cas;
  }

  setHostCas(pems: string[]): void {
    this.cas = pems;
  }

  /** Remembers which key opened a tunnel (the proxy gives the agent that key to check its tokens). */
  opened(session: TunnelSession, kid: string): void {
    this.tunnelKids.set(session, kid);
  }

  /** A renewed certificate for the same key (a bot renews in memory: local-proxy.ts renew). */
  renewed(certPem: string): void {
    this.cert = certPem;
  }

  /**
   * A new key, certified by `reissue` (the proxy's answer for its public
   * key): from now on tunnels open with it and tokens are signed with it.
   * Returns the key and certificate in PEM, to be stored.
   */
  async rekey(reissue: (publicKeyPem: string) => Promise<string>): Promise<{ keyPem: string; certPem: string }> {
    const pair = await generateKeyPair();
    const certPem = await reissue(await publicKeyToPem(pair.publicKey));
    this.keys = [await sessionKey(pair.privateKey, pair.publicKey), ...this.keys].slice(0, KEYS_KEPT);
    this.cert = certPem;
    return { keyPem: await privateKeyToPem(pair.privateKey), certPem };
  }

  /**
   * The Authorization value for a request going on `session`: a placeholder
   * this session signed with an earlier key is signed again with the key that
   * opened the tunnel; anything else goes as it is (the agent judges it).
   */
  async authorizationFor(value: string, session: TunnelSession): Promise<string> {
    const m = /^Bearer (\S+)$/.exec(value);
    const kid = m && placeholderKid(m[1]);
    const want = this.tunnelKids.get(session);
    if (!m || !kid || !want || kid === want) return value;
    const signer = this.keys.find((k) => k.kid === kid);
    const target = this.keys.find((k) => k.kid === want);
    if (!signer || !target) return value;
    const again = await resignPlaceholder(m[1], signer.jwk, target.key, target.kid);
    return again ? `Bearer ${again}` : value;
  }
}
