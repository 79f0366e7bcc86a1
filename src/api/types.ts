/**
 * The proxy API's wire types: what the proxy, the agent and the client say to
 * each other, in one place every mode imports and that imports no mode
 * (Teleport's api/types plays this part).
 */

import type { CloudName } from "../azure/clouds.ts";
import type { Identity } from "../pki/identity.ts";
import type { CaEndorsement } from "../pki/endorsement.ts";
import type { AuditEvent } from "../audit/sink.ts";

/** GET /v1/ping: the cluster as an unauthenticated caller sees it. */
/** A cluster's auth.second_factor, as Teleport names them. */
export type SecondFactor = "otp" | "webauthn" | "on" | "optional" | "off";

export interface PingResponse {
  cluster_name: string;
  version: string;
  second_factor: SecondFactor;
  /** The host CAs: one, or two while it rotates (the one the proxy's TLS certificate comes from first). */
  host_ca_pems: string[];
  ca_pins: string[];
  /** The audience a CI token must name for a bot to join (absent from proxies before bots). */
  bot_audience?: string;
  /** While the host CA rotates: each CA's signed word for the other (pki/endorsement.ts), how a peer that trusts one learns the other. */
  ca_endorsements?: CaEndorsement[];
  /** Each CA's rotation phase, when one is under way (a hint for messages, decided on by nobody). */
  rotation?: Partial<Record<"host" | "user", string>>;
  /** Host CA pins retired by rotations, newest first: tells "rotated while you were away" from "another cluster" in a refusal. */
  retired_ca_pins?: { pin: string; retired: string }[];
}

/** POST /v1/join's answer to a bot, and POST /v1/bots/renew's: a short user certificate carrying the bot and its run. */
export interface BotCertificate {
  cert_pem: string;
  expires: string;
  /** No renewal goes past this. */
  session_expires: string;
  cluster_name: string;
  identity: Identity;
}

/** An app as an agent announces it in its heartbeats. */
export interface AppSpec {
  name: string;
  /** Azure (public), AzureUSGovernment or AzureChinaCloud. */
  cloud: CloudName;
  uri: string;
  description?: string;
  labels: Record<string, string>;
  /** The Entra tenant the agent's identities live in, when it knows (Workload ID). */
  tenant_id?: string;
}

/** An app as a user sees it (GET /v1/apps): one row per app name and label set the user's roles allow. */
export interface AppView extends AppSpec {
  /** Live agents serving it. */
  servers: number;
  /** Azure identities the caller may use with this app. */
  azure_identities: string[];
}

/** POST /v1/join and the renew call over the tunnel: an agent's host certificate. */
export interface HostCertificate {
  host_id: string;
  cluster_name: string;
  cert_pem: string;
  expires: string;
  /** The host CA: it signs the proxy's TLS certificate, so the agent trusts it from now on. */
  host_ca_pem: string;
  /** Every host CA trusted now (two while it rotates), with each one's word for the other. */
  host_ca_pems?: string[];
  ca_endorsements?: CaEndorsement[];
}

/**
 * Proxy to agent, at `apps login`: the facts of an Azure identity, read by the
 * agent from a real ARM token it fetched for it (`appid`, `oid`, `tid`), so
 * the workstation's placeholder carries the identity's real claims and its
 * token endpoint recognises the identity by client and principal ID.
 */
export const IDENTITY_FACTS_CALL = "identity_facts";
/** Proxy to agent, for access requests: the identities the agent can read in ARM (api/control.ts identityListRequest). */
export const IDENTITY_LIST_CALL = "identity_list";
/** At most this many identities in one agent's identity_list answer (more: truncated). */
export const MAX_LISTED_IDENTITIES = 5_000;
export interface IdentityFacts {
  client_id: string;
  principal_id: string;
  tenant_id: string;
}

/** GET /v1/admin/audit/export: one page of the log in the order it was written (proxy/audit-export/pages.ts). */
export interface AuditExportPage {
  /** This page's events that match the filters (none, when none did). */
  items: AuditEvent[];
  /** Where the next page starts (pass it back as `after`). */
  cursor: string | null;
  /** True when the log has nothing after this page. */
  done: boolean;
  /** Later events wait for a transaction still open in the database (PostgreSQL): ask again from `cursor` in a moment. */
  held?: boolean;
}
