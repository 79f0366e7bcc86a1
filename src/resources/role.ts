import { z } from "zod";
import type { Role } from "../rbac/types.ts";
import { RULE_RESOURCES, RULE_VERBS } from "../rbac/types.ts";
import { templateProblem } from "../rbac/template.ts";
import { compileRegex } from "../rbac/labels.ts";
import { parseDuration } from "../util/duration.ts";

/**
 * Teleport role fields that azgate does not use. A Teleport role file must load
 * unchanged, so they are accepted, kept, and reported as ignored. Fields that
 * would narrow access if honoured (label expressions, rule `where`) are refused
 * instead: ignoring them would grant more than the author wrote.
 */
const IGNORED_CONDITION_FIELDS = [
  "logins", "node_labels", "kubernetes_groups", "kubernetes_users", "kubernetes_labels", "kubernetes_resources",
  "db_labels", "db_names", "db_users", "db_roles", "db_service_labels", "aws_role_arns", "gcp_service_accounts",
  "windows_desktop_labels", "windows_desktop_logins", "host_groups", "host_sudoers", "desktop_groups",
  "request", "review_requests", "impersonate", "join_sessions", "cluster_labels", "group_labels", "spiffe",
  "account_assignments", "github_permissions", "workload_identity_labels", "require_session_join",
] as const;

const IGNORED_OPTION_FIELDS = [
  "forward_agent", "port_forwarding", "ssh_port_forwarding", "cert_format", "client_idle_timeout",
  "disconnect_expired_cert", "enhanced_recording", "permit_x11_forwarding", "max_connections", "max_sessions",
  "require_session_mfa", "record_session", "desktop_clipboard", "desktop_directory_sharing", "pin_source_ip",
  "ssh_file_copy", "create_host_user", "create_host_user_mode", "create_db_user", "create_db_user_mode",
  "create_desktop_user", "idp", "lock", "device_trust_mode", "max_kubernetes_connections", "request_access",
  "request_prompt", "cert_extensions", "create_host_user_default_shell", "ssh_max_sessions",
] as const;

const ignoredShape = (names: readonly string[]) => Object.fromEntries(names.map((n) => [n, z.unknown().optional()]));

const stringOrList = z.union([z.string(), z.array(z.string())]);

const labelSelector = z.record(z.string(), stringOrList).superRefine((sel, ctx) => {
  for (const [key, raw] of Object.entries(sel)) {
    for (const v of Array.isArray(raw) ? raw : [raw]) {
      const problem = templateProblem(v);
      if (problem) ctx.addIssue({ code: "custom", path: [key], message: problem });
      else if (v.startsWith("^") && v.endsWith("$") && !compileRegex(v)) ctx.addIssue({ code: "custom", path: [key], message: `invalid regular expression ${v}` });
    }
  }
});

const rule = z.strictObject({
  resources: z.array(z.enum(RULE_RESOURCES)).min(1),
  verbs: z.array(z.enum(RULE_VERBS)).min(1),
});

const azureIdentities = (side: "allow" | "deny") =>
  z.array(z.string().min(1)).superRefine((ids, ctx) => {
    ids.forEach((id, i) => {
      if (side === "allow" && id.includes("*")) {
        ctx.addIssue({ code: "custom", path: [i], message: "wildcard matcher is not allowed in allow.azure_identities" });
      } else if (side === "deny" && id !== "*" && id.includes("*")) {
        ctx.addIssue({ code: "custom", path: [i], message: "only a whole '*' is a wildcard in deny.azure_identities; partial globs are not supported" });
      }
      const problem = templateProblem(id);
      if (problem) ctx.addIssue({ code: "custom", path: [i], message: problem });
    });
  });

const conditions = (side: "allow" | "deny") =>
  z.strictObject({
    app_labels: labelSelector.optional(),
    azure_identities: azureIdentities(side).optional(),
    rules: z.array(rule).optional(),
    ...ignoredShape(IGNORED_CONDITION_FIELDS),
  });

const duration = z.string().superRefine((v, ctx) => {
  try {
    parseDuration(v);
  } catch {
    ctx.addIssue({ code: "custom", message: `"${v}" is not a duration (examples: 30m, 8h, 1h30m)` });
  }
});

export const roleSchema = z.strictObject({
  kind: z.literal("role"),
  version: z.enum(["v5", "v6", "v7"], { message: "version must be v5, v6 or v7" }),
  metadata: z.strictObject({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$/, "name must be 1-63 letters, digits, '.', '_', '@' or '-'"),
    description: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    namespace: z.string().optional(),
    revision: z.string().optional(),
    expires: z.string().optional(),
  }),
  spec: z.strictObject({
    allow: conditions("allow").optional(),
    deny: conditions("deny").optional(),
    options: z.strictObject({ max_session_ttl: duration.optional(), ...ignoredShape(IGNORED_OPTION_FIELDS) }).optional(),
  }),
});

/** Fields present in the role that azgate accepts but does not enforce. */
export function ignoredRoleFields(role: Role): string[] {
  const out: string[] = [];
  for (const side of ["allow", "deny"] as const) {
    const c = role.spec[side] as Record<string, unknown> | undefined;
    for (const f of IGNORED_CONDITION_FIELDS) if (c?.[f] !== undefined) out.push(`spec.${side}.${f}`);
  }
  const o = role.spec.options as Record<string, unknown> | undefined;
  for (const f of IGNORED_OPTION_FIELDS) if (o?.[f] !== undefined) out.push(`spec.options.${f}`);
  return out;
}
