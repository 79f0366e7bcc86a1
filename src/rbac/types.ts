/** Role resources as Teleport writes them (kind: role, version v5 to v7), reduced to what azgate reads. */
export type LabelSelector = Record<string, string | string[]>;

export interface Rule {
  resources: string[];
  verbs: string[];
}

/**
 * One rule of `allow.azure_api` / `deny.azure_api` (rbac/azure-api.ts): ARM
 * actions within scopes, data actions on hosts, or methods and paths on hosts
 * without a mapping; in deny, a preset instead.
 */
export interface AzureApiRule {
  actions?: string[];
  scopes?: string[];
  data_actions?: string[];
  hosts?: string[];
  methods?: string[];
  paths?: string[];
  preset?: string;
}

/** `request`: what a user may ask for through an access request (rbac/requests.ts). */
export interface RequestConditions {
  roles?: string[];
  search_as_roles?: string[];
  azure_identities?: string[];
  max_duration?: string;
  suggested_reviewers?: string[];
  /** Teleport's: approvals and denials needed, counting only reviews that match `filter` (rbac/predicate.ts). */
  thresholds?: { name?: string; approve?: number; deny?: number; filter?: string }[];
  reason?: { mode?: "required" | "optional"; prompt?: string };
  ticket?: { mode?: "required" | "optional"; pattern?: string };
}

/** `review_requests`: whose requests a user may approve or deny. */
export interface ReviewConditions {
  roles?: string[];
  azure_identities?: string[];
  /** Teleport's: only requests for which this predicate holds (rbac/predicate.ts). */
  where?: string;
}

export interface RoleConditions {
  request?: RequestConditions;
  review_requests?: ReviewConditions;
  app_labels?: LabelSelector;
  azure_identities?: string[];
  rules?: Rule[];
  azure_api?: AzureApiRule[];
}

export interface Role {
  kind: "role";
  version: "v5" | "v6" | "v7";
  metadata: { name: string; description?: string; labels?: Record<string, string> };
  spec: {
    allow?: RoleConditions;
    deny?: RoleConditions;
    options?: { max_session_ttl?: string; azure_api_mode?: "enforce" | "audit"; azure_api_unknown?: "deny" | "allow"; request_prompt?: string; review_mfa?: boolean; require_session_mfa?: boolean; [k: string]: unknown };
    [k: string]: unknown;
  };
}

/** A user's traits. `{{internal.X}}` and `{{external.X}}` both read trait X, as in Teleport. */
export type Traits = Record<string, string[]>;

export interface App {
  name: string;
  labels: Record<string, string>;
}

export interface Decision {
  allowed: boolean;
  reason: string;
}

/** Admin resources named in `rules`, and the verbs on them. */
/** Every resource the proxy authorises on (authorize and checkRule calls): a role file may name each. */
export const RULE_RESOURCES = ["role", "user", "token", "event", "app", "cluster", "github", "oidc", "saml", "connector", "access_request", "access_rule", "notification_target", "lock", "bot", "cert_authority", "*"] as const;
/** `rotate` is Teleport's, on cert_authority (a CA rotation's phases). */
export const RULE_VERBS = ["list", "read", "readnosecrets", "create", "update", "delete", "rotate", "*"] as const;
