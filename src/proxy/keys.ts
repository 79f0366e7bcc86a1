import { createHash, randomBytes } from "node:crypto";

/** Backend key layout, in one place so a newcomer can see all state at a glance. */
export const KEYS = {
  clusterName: "cluster/name",
  publicUrl: "cluster/public-url",
  authority: (type: "user" | "host") => `authorities/${type}`,
  role: (name: string) => `roles/${name}`,
  roles: "roles/",
  user: (name: string) => `users/${name}`,
  users: "users/",
  userAuth: (name: string) => `user-auth/${name}`,
  loginFailures: (name: string) => `login-failures/${name}`,
  /** A reviewer's wrong authenticator codes (review_mfa): a count of their own, so a stranger's wrong passwords cannot block reviews. */
  reviewFailures: (name: string) => `review-failures/${name}`,
  invite: (tokenHash: string) => `invites/${tokenHash}`,
  invites: "invites/",
  /** Locks by id (Teleport's lock resource): every replica reads them on every request. */
  lock: (id: string) => `locks/${id}`,
  locks: "locks/",
  token: (tokenHash: string) => `tokens/${tokenHash}`,
  tokens: "tokens/",
  /** Bots' join tokens by name (resources/join-token.ts): not secrets, so stored by name. */
  joinToken: (name: string) => `join-tokens/${name}`,
  joinTokens: "join-tokens/",
  /** CI tokens that joined, by the hash of their issuer and jti, until they expire: a CI token joins once. */
  ciTokenId: (hash: string) => `ci-token-ids/${hash}`,
  ciTokenIds: "ci-token-ids/",
  /** Joined agents by host id: the proxy renews certificates only for hosts listed here. */
  agent: (hostId: string) => `agents/${hostId}`,
  agents: "agents/",
  /** SSO connectors (github, oidc, saml) by kind and name; they hold secrets, shown only to `read`. */
  connector: (kind: string, name: string) => `connectors/${kind}/${name}`,
  connectors: (kind: string) => `connectors/${kind}/`,
  /** Proxy replicas that advertise an address for agents (expire unless refreshed). */
  proxy: (id: string) => `proxies/${id}`,
  proxies: "proxies/",
  /** SSO login attempts by the hash of their id (which travels in URLs as state). */
  ssoAttempt: (idHash: string) => `sso-attempts/${idHash}`,
  ssoAttempts: "sso-attempts/",
  /** Access requests by id (a UUID); their grants by the same id (proxy/access-requests.ts). */
  accessRequest: (id: string) => `access-requests/${id}`,
  accessRequests: "access-requests/",
  /** Grants in force or to come: every replica reads them on every request that no role allows. */
  accessGrant: (id: string) => `access-grants/${id}`,
  accessGrants: "access-grants/",
  /** Auto-review rules: read when a request is created (proxy/access-requests.ts). */
  accessRule: (name: string) => `access-rules/${name}`,
  accessRules: "access-rules/",
  /** Where access-request notifications go (they hold secrets: URLs, passwords), and the outbox of those not yet sent. */
  notificationTarget: (name: string) => `notification-targets/${name}`,
  notificationTargets: "notification-targets/",
  notification: (id: string) => `notifications/${id}`,
  notifications: "notifications/",
  /** Browser sessions by the hash of their cookie's token (proxy/web/session.ts). */
  webSession: (tokenHash: string) => `web-sessions/${tokenHash}`,
  webSessions: "web-sessions/",
  /** SAML request ids awaiting their response (InResponseTo), shared by every proxy. */
  samlRequest: (id: string) => `saml-requests/${id}`,
  samlRequests: "saml-requests/",
  /** Each audit export target's cursor and which replica sends for it now (proxy/audit-export). */
  auditExport: (target: string) => `audit-export/${target}`,
  /** A WebAuthn ceremony's challenge by its hash, until it is answered or expires (proxy/webauthn.ts). */
  webauthnCeremony: (challengeHash: string) => `webauthn-ceremonies/${challengeHash}`,
  /** A CLI's login or fresh check done in the browser, by the hash of its id (proxy/browser-attempt.ts). */
  browserAttempt: (idHash: string) => `browser-attempts/${idHash}`,
};

/** Secrets (invites, join tokens) are stored by hash, so a copy of the backend cannot be used to join or sign up. */
export function secretHash(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

export function newSecret(bytes = 24): string {
  return randomBytes(bytes).toString("hex");
}
