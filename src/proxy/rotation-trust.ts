/**
 * What agents and workstations are told of the cluster's CAs, and how they
 * move to a rotated one without a person: the host CAs /v1/ping offers and
 * the trust call pushes (with each CA's word for the other), the refusal of
 * a tunnel whose CA was retired, and a user's or app session's certificate
 * reissued from the user CA that signs now. The phases themselves are
 * rotation.ts's.
 */
import { audit } from "../audit/events.ts";
import { AzgateError } from "../errors/index.ts";
import type { AuthorityType } from "../pki/authority.ts";
import type { Identity } from "../pki/identity.ts";
import { importPublicKeyPem } from "../pki/keys.ts";
import { issueIdentityCert, RetiredCertificate } from "../pki/certificate.ts";
import type { PingResponse } from "../api/types.ts";
import type { ControlRequest } from "../api/control.ts";
import { resolveCaller } from "./caller.ts";
import { endorsePair, pemOf } from "./cluster.ts";
import { ENDORSEMENT_TTL_S, type CaEndorsement } from "../pki/endorsement.ts";
import type { ProxyContext } from "./context.ts";

/** The host CAs as PEM, the one the proxy's TLS certificate comes from first (older clients keep the first). */
export function hostCaPems(ctx: ProxyContext): string[] {
  const host = ctx.cluster.views.host;
  return [host.tls.cert, ...host.trusted.filter((c) => c !== host.tls.cert)].map(pemOf);
}

/**
 * While the host CA rotates, each CA's word for the other, good for minutes (pki/endorsement.ts): signed again
 * here when half their time is gone, so whoever reads them always gets ones good for a while.
 */
export async function currentEndorsements(ctx: ProxyContext): Promise<CaEndorsement[]> {
  const host = ctx.cluster.views.host;
  if (!host.next) return [];
  if (ctx.clock.now() >= host.endorsementsRenewAt) {
    host.endorsements = await endorsePair(host.current, host.next, ctx.cluster.name, ctx.clock.date());
    host.endorsementsRenewAt = ctx.clock.now() + (ENDORSEMENT_TTL_S * 1000) / 2;
  }
  return host.endorsements;
}

/** What /v1/ping says about the host CA: its CAs and, while it rotates, their endorsements and the phases. */
export async function pingTrust(ctx: ProxyContext): Promise<Pick<PingResponse, "host_ca_pems" | "ca_endorsements" | "rotation" | "retired_ca_pins">> {
  const { host } = ctx.cluster.views;
  const endorsements = await currentEndorsements(ctx);
  const rotating = Object.fromEntries((["host", "user"] as const).filter((t) => ctx.cluster.views[t].rotation.phase !== "standby").map((t) => [t, ctx.cluster.views[t].rotation.phase]));
  return {
    host_ca_pems: hostCaPems(ctx),
    ...(endorsements.length ? { ca_endorsements: endorsements } : {}),
    ...(Object.keys(rotating).length ? { rotation: rotating } : {}),
    ...(host.retired.length ? { retired_ca_pins: host.retired.map((r) => ({ pin: r.pin, retired: r.retired })) } : {}),
  };
}

/** What the trust call tells an agent (host) or app session (user) whose certificate's CA is `issuerPin` (api/control.ts trustRequest). */
export async function trustMessage(ctx: ProxyContext, peer: AuthorityType, issuerPin: string): Promise<ControlRequest<"trust">> {
  const { host, user } = ctx.cluster.views;
  const endorsements = await currentEndorsements(ctx);
  return {
    type: "trust",
    cluster_name: ctx.cluster.name,
    host_ca_pems: hostCaPems(ctx),
    endorsements,
    signing: { host: host.pins[0], user: user.pins[0] },
    phase: { host: host.rotation.phase, user: user.rotation.phase },
    renew: issuerPin !== ctx.cluster.views[peer].pins[0],
  };
}

/**
 * An open tunnel's certificate is from a CA no longer trusted (a rotation's
 * final standby retired it): the refusal for its next request, else null.
 * The upgrade checked the certificate; this keeps the check for the tunnel's life.
 */
export function retiredIssuer(ctx: ProxyContext, type: AuthorityType, issuerPin: string): AzgateError | null {
  const view = ctx.cluster.views[type];
  if (view.pins.includes(issuerPin)) return null;
  const gone = view.retired.find((r) => r.pin === issuerPin);
  return new AzgateError(
    "ca_retired",
    `this session's certificate is from the cluster's ${type} CA ${issuerPin}, retired by a rotation${gone ? ` at ${gone.retired}` : ""}; ${type === "host" ? "the agent reconnects with its renewed certificate" : "the local proxy gets a new certificate from the new CA on its own while the rotation runs; now run azgate login and azgate apps login again"}`,
  );
}

/**
 * A user's or app session's certificate again, from the user CA that signs
 * now, for `publicKeyPem`: the same identity, session and end (nothing is
 * extended), and only while the account is in good standing. How clients
 * move to a new user CA without logging in again (POST /v1/certs/reissue for
 * a login's certificate, the reissue call on an app session's tunnel).
 */
export async function reissueCert(ctx: ProxyContext, identity: Identity, notAfter: Date, issuerPin: string, publicKeyPem: string): Promise<{ cert_pem: string; expires: string }> {
  if (identity.kind !== "user") throw new AzgateError("access_denied", "only users' and app sessions' certificates are reissued; agents renew theirs");
  // Only to move to the CA that signs now: not a way to certify another key for the same session whenever one likes.
  if (issuerPin === ctx.cluster.views.user.pins[0]) throw new AzgateError("bad_parameter", "this certificate is already from the user CA that signs now; there is nothing to reissue (a rotation's update_clients phase is when certificates move)");
  await resolveCaller(ctx, identity);
  let publicKey: CryptoKey;
  try {
    publicKey = await importPublicKeyPem(publicKeyPem);
  } catch {
    throw new AzgateError("bad_parameter", "public_key_pem must be an ECDSA P-256 public key in PEM");
  }
  const cert = await issueIdentityCert({ ca: ctx.cluster.user, publicKey, identity, now: ctx.clock.date(), notAfter });
  await ctx.audit.emit(audit("CERT_CREATED", { cert_type: identity.route ? "app" : "user", user: identity.name, session_id: identity.session_id, expires: cert.notAfter.toISOString(), reason: "reissued by the CA that signs now (rotation)", ca_pin: ctx.cluster.views.user.pins[0] }));
  return { cert_pem: pemOf(cert), expires: cert.notAfter.toISOString() };
}


/**
 * The value of the answer header TRUST_HEADER (api/client.ts) to a signed-in
 * client: `host=<pin>,<pin>`, the host CAs trusted now, and `; reissue` when the
 * caller's certificate is not from the user CA that signs now: the client
 * compares the first with what it trusts, and on the second gets its
 * certificate again (POST /v1/certs/reissue). A hint, decided on by the
 * client only after it checks what /v1/ping offers.
 */
export function trustHeader(ctx: ProxyContext, issuerPin: string): string {
  const { host, user } = ctx.cluster.views;
  return `host=${host.pins.join(",")}${issuerPin === user.pins[0] ? "" : "; reissue"}`;
}

/**
 * A certificate from a retired CA was refused (pki/certificate.ts
 * RetiredCertificate): audited, as a known caller's refusal is, with what
 * the certificate says. Other errors pass untouched.
 */
export async function auditRetired(ctx: ProxyContext, e: unknown, where: string): Promise<void> {
  if (!(e instanceof RetiredCertificate)) return;
  const id = e.identity;
  await ctx.audit
    .emit(audit("CERT_RETIRED_REFUSED", { user: id?.name ?? "(unknown)", cert_type: id ? (id.route ? "app" : id.kind) : "unknown", ca_pin: e.caPin, error_code: e.code, reason: e.message, where, ...(id?.session_id ? { session_id: id.session_id } : {}), success: false }))
    .catch((err) => console.error("[proxy] audit failed:", err));
}
