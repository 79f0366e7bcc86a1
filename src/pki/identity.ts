/**
 * The identity a certificate carries, in a private X.509 extension holding
 * JSON as a DER UTF8String. Certificates cache identity; the backend stays the
 * authority and the proxy re-checks it on use (DESIGN.md section 2).
 */
export const IDENTITY_OID = "1.3.9999.4242.1";

export type CertKind = "user" | "host" | "local-admin";

export interface Identity {
  kind: CertKind;
  /** User name, host id, or the local admin's fixed name. */
  name: string;
  roles: string[];
  traits: Record<string, string[]>;
  /** Azure identities the roles allowed at issuance (a hint for the client; re-checked on use). */
  azure_identities: string[];
  login_method: "password" | "invite" | "local" | "join-token" | "sso" | "bot";
  session_id: string;
  /** App certificates: the login session they were issued from (a lock on it covers them too). */
  login_session_id?: string;
  /** The user record's id and credential generation at issue: a recreated or reset user's old certificates are refused. */
  user_id?: string;
  generation?: number;
  /** For app certificates: the app and, for Azure apps, the chosen identity. */
  route?: { app: string; azure_identity?: string };
  /** App certificates: when a fresh passkey check opened this session (per-session MFA); a route that asks for one refuses a session without it. */
  mfa_verified?: string;
  /** A bot's certificate (and its app certificates): what its join proved, so every audit event carries it without a lookup. */
  bot?: BotFacts;
}

export interface BotFacts {
  /** The bot's name (its user record is bot-NAME). */
  name: string;
  /** The join token it joined with, and how. */
  token: string;
  join_method: string;
  /** What the CI's signed token said about the run: repository, ref, sha, run ID and attempt, workflow, actor, or each method's equivalents. */
  ci: Record<string, string>;
  /** The bot's session cannot be renewed past this time (its roles' max_session_ttl from the join). */
  session_expires: string;
  /** The issuer its CI token was verified against, and the run's value of every field a rule of its method may name: renewal matches the join token's rules as they are now against these. */
  issuer?: string;
  run?: Record<string, string>;
}

/** The fields every audit event about a bot's certificate carries (none for a person's). */
export function botFields(id: Pick<Identity, "bot">): { bot?: string; join_method?: string; ci?: Record<string, string> } {
  return id.bot ? { bot: id.bot.name, join_method: id.bot.join_method, ci: id.bot.ci } : {};
}

export function encodeIdentity(id: Identity): ArrayBuffer {
  const body = new TextEncoder().encode(JSON.stringify(id));
  const len = derLength(body.length);
  const out = new Uint8Array(1 + len.length + body.length);
  out[0] = 0x0c; // UTF8String
  out.set(len, 1);
  out.set(body, 1 + len.length);
  return out.buffer;
}

export function decodeIdentity(der: ArrayBuffer): Identity {
  const b = new Uint8Array(der);
  if (b[0] !== 0x0c) throw new Error("identity extension is not a UTF8String");
  let offset = 2;
  let len = b[1];
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[2 + i];
    offset = 2 + n;
  }
  return JSON.parse(new TextDecoder().decode(b.subarray(offset, offset + len))) as Identity;
}

function derLength(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}
