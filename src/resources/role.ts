import { z } from "zod";
import type { Role } from "../rbac/types.ts";
import { RULE_RESOURCES, RULE_VERBS } from "../rbac/types.ts";
import { templateProblem } from "../rbac/template.ts";
import { invalidRegexMessage, isRegexValue } from "../util/regex.ts";
import { parseDuration } from "../util/duration.ts";
import { AZURE_METHODS } from "../azure/methods.ts";
import { PRESETS } from "../rbac/azure-api.ts";
import { compilePredicate, PredicateError } from "../rbac/predicate.ts";
import { identityPatternProblem, roleIdentityProblem } from "../azure/resource-id.ts";

/** A Teleport predicate (threshold filter, review where), checked now so a typo cannot widen who may approve later. */
const predicate = z.string().superRefine((v, ctx) => {
  try {
    compilePredicate(v, ["reviewer", "review", "request"]);
  } catch (e) {
    if (!(e instanceof PredicateError)) throw e;
    ctx.addIssue({ code: "custom", message: e.message });
  }
});

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
  "impersonate", "join_sessions", "cluster_labels", "group_labels", "spiffe",
  "account_assignments", "github_permissions", "workload_identity_labels", "require_session_join",
] as const;

const IGNORED_OPTION_FIELDS = [
  "forward_agent", "port_forwarding", "ssh_port_forwarding", "cert_format", "client_idle_timeout",
  "disconnect_expired_cert", "enhanced_recording", "permit_x11_forwarding", "max_connections", "max_sessions",
  "record_session", "desktop_clipboard", "desktop_directory_sharing", "pin_source_ip",
  "ssh_file_copy", "create_host_user", "create_host_user_mode", "create_db_user", "create_db_user_mode",
  "create_desktop_user", "idp", "lock", "device_trust_mode", "max_kubernetes_connections", "request_access",
  "cert_extensions", "create_host_user_default_shell", "ssh_max_sessions",
] as const;

const ignoredShape = (names: readonly string[]) => Object.fromEntries(names.map((n) => [n, z.unknown().optional()]));

const stringOrList = z.union([z.string(), z.array(z.string())]);

const labelSelector = z.record(z.string(), stringOrList).superRefine((sel, ctx) => {
  for (const [key, raw] of Object.entries(sel)) {
    for (const v of Array.isArray(raw) ? raw : [raw]) {
      const problem = templateProblem(v) ?? (isRegexValue(v) ? regexProblem(v) : null);
      if (problem) ctx.addIssue({ code: "custom", path: [key], message: problem });
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
      } else if (id !== "*") {
        // An identity ID in the one grammar (azure/resource-id.ts); a template as far as its literal parts go.
        const problem = templateProblem(id) ?? roleIdentityProblem(id);
        if (problem) ctx.addIssue({ code: "custom", path: [i], message: id.includes("{{") ? problem : `${JSON.stringify(id)} ${problem}` });
      }
    });
  });

const duration = z.string().superRefine((v, ctx) => {
  try {
    parseDuration(v);
  } catch {
    ctx.addIssue({ code: "custom", message: `"${v}" is not a duration (examples: 30m, 8h, 1h30m)` });
  }
});

/** A pattern list: templates valid, `^...$` regular expressions compile, each other value checked by `check`. */
const patterns = (check: (v: string) => string | null) =>
  z.array(z.string().min(1)).min(1).superRefine((values, ctx) => {
    values.forEach((v, i) => {
      const problem = templateProblem(v) ?? (isRegexValue(v) ? regexProblem(v) : check(v));
      if (problem) ctx.addIssue({ code: "custom", path: [i], message: problem });
    });
  });

const ACTION = /^(\*|[A-Za-z0-9*]+(\.[A-Za-z0-9*]+)*\/[A-Za-z0-9*./_-]+)$/;
const actionPattern = patterns((v) => (ACTION.test(v) ? null : `"${v}" is not an Azure action pattern (like Microsoft.Compute/virtualMachines/read or */read)`));
const scopePattern = patterns((v) => (v === "*" || (v.startsWith("/") && !v.includes("//") && !/\s/.test(v)) ? null : `"${v}" is not a resource ID pattern (it starts with /subscriptions/...)`));
const hostPattern = patterns((v) => (/^[a-z0-9*.-]+$/i.test(v) ? null : `"${v}" is not a host name pattern`));
const methodList = z.array(z.enum(AZURE_METHODS, { message: `methods are ${AZURE_METHODS.join(", ")}` })).min(1);
// Paths are matched decoded (the canonical request, azure/operation.ts): a percent-encoding in a pattern could never match.
const pathPattern = patterns((v) => (!(v.startsWith("/") || v === "*") ? `"${v}" is not a path pattern (it starts with /)` : /%[0-9a-f]{2}/i.test(v) ? `"${v}": paths are matched decoded; write the characters themselves, not percent-encodings` : null));

/** One azure_api rule: exactly one kind (actions, data_actions, methods/paths on hosts, or a preset in deny). */
const azureApiRule = (side: "allow" | "deny") =>
  z
    .strictObject({
      actions: actionPattern.optional(),
      scopes: scopePattern.optional(),
      data_actions: actionPattern.optional(),
      hosts: hostPattern.optional(),
      methods: methodList.optional(),
      paths: pathPattern.optional(),
      preset: z.string().optional(),
    })
    .superRefine((r, ctx) => {
      const kinds = [r.actions && "actions", r.data_actions && "data_actions", (r.methods || r.paths) && "methods/paths", r.preset !== undefined && "preset"].filter(Boolean);
      if (kinds.length !== 1) {
        ctx.addIssue({ code: "custom", message: kinds.length === 0 ? "a rule needs actions, data_actions, methods or paths (with hosts), or (in deny) a preset" : `a rule is one kind: actions, data_actions, methods/paths or preset, not ${kinds.join(" and ")}` });
        return;
      }
      if (r.scopes && !r.actions) ctx.addIssue({ code: "custom", path: ["scopes"], message: "scopes go with actions (ARM operations); data-plane rules name hosts" });
      if ((r.methods || r.paths) && !r.hosts) ctx.addIssue({ code: "custom", path: ["hosts"], message: "a methods/paths rule names the hosts it applies to" });
      if (r.actions && r.hosts) ctx.addIssue({ code: "custom", path: ["hosts"], message: "actions are ARM operations, named by scopes, not hosts" });
      if (r.preset !== undefined) {
        if (side === "allow") ctx.addIssue({ code: "custom", path: ["preset"], message: "presets are deny rules; put them under deny.azure_api" });
        else if (!PRESETS[r.preset]) ctx.addIssue({ code: "custom", path: ["preset"], message: `unknown preset "${r.preset}" (known: ${Object.keys(PRESETS).join(", ")})` });
        if (Object.keys(r).length > 1) ctx.addIssue({ code: "custom", path: ["preset"], message: "a preset rule has no other fields" });
      }
    });

/** Azure identity patterns (resource IDs; `*` stays within a segment), in the grammar of azure/resource-id.ts as far as a pattern can be. */
const identityPatterns = patterns((v) => {
  if (!v.startsWith("/") && v !== "*") return `"${v}" is not an Azure identity resource ID pattern (it starts with /subscriptions/...)`;
  const problem = identityPatternProblem(v);
  return problem ? `${JSON.stringify(v)} ${problem}` : null;
});

/**
 * `request`: what a user may ask for (Teleport's fields; `azure_identities`
 * and `ticket` are azgate's).
 */
const requestConditions = z
  .strictObject({
    roles: z.array(z.string().min(1)).optional(),
    search_as_roles: z.array(z.string().min(1)).optional(),
    azure_identities: identityPatterns.optional(),
    max_duration: duration.optional(),
    suggested_reviewers: z.array(z.string().min(1)).optional(),
    thresholds: z.array(z.strictObject({ name: z.string().optional(), approve: z.number().int().min(1).max(10).optional(), deny: z.number().int().min(1).max(10).optional(), filter: predicate.optional() })).optional(),
    reason: z.strictObject({ mode: z.enum(["required", "optional"]).optional(), prompt: z.string().optional() }).optional(),
    ticket: z
      .strictObject({ mode: z.enum(["required", "optional"]).optional(), pattern: z.string().optional() })
      .superRefine((t, ctx) => {
        const invalid = t.pattern !== undefined ? invalidRegexMessage(t.pattern) : null;
        if (invalid) ctx.addIssue({ code: "custom", path: ["pattern"], message: invalid });
      })
      .optional(),
    // Teleport fields azgate does not use; ignoring them grants nothing more.
    claims_to_roles: z.unknown().optional(),
    annotations: z.unknown().optional(),
    kubernetes_resources: z.unknown().optional(),
  });

/** `review_requests`: whose requests a user may review. */
const reviewConditions = z
  .strictObject({
    roles: z.array(z.string().min(1)).optional(),
    azure_identities: identityPatterns.optional(),
    where: predicate.optional(),
    preview_as_roles: z.unknown().optional(),
    claims_to_roles: z.unknown().optional(),
  });

const conditions = (side: "allow" | "deny") =>
  z.strictObject({
    request: requestConditions.optional(),
    review_requests: reviewConditions.optional(),
    app_labels: labelSelector.optional(),
    azure_identities: azureIdentities(side).optional(),
    rules: z.array(rule).optional(),
    azure_api: z.array(azureApiRule(side)).optional(),
    ...ignoredShape(IGNORED_CONDITION_FIELDS),
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
    options: z
      .strictObject({
        max_session_ttl: duration.optional(),
        azure_api_mode: z.enum(["enforce", "audit"]).optional(),
        azure_api_unknown: z.enum(["deny", "allow"]).optional(),
        request_prompt: z.string().optional(),
        /** azgate's: a reviewer with this role gives an authenticator code with each review. */
        review_mfa: z.boolean().optional(),
        /** Teleport's: an app session to an Azure identity this role allows needs a fresh passkey check, and its certificate lives a minute on disk. */
        require_session_mfa: z.boolean().optional(),
        ...ignoredShape(IGNORED_OPTION_FIELDS),
      })
      .optional(),
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

/**
 * What a role file is told of a `^...$` value RE2 (util/regex.ts) cannot read, in RE2's words, which name the
 * construct; or of a template right after `\` or `{`, where a trait's text (escaped only where it is syntax)
 * would be read with the character before it: `x{{{internal.n}}}` a count the trait chooses, `\{{internal.c}}` an escape.
 */
function regexProblem(v: string): string | null {
  const invalid = invalidRegexMessage(v);
  if (invalid) return invalid;
  return /[\\{]\{\{/.test(v) ? `a {{...}} template right after \\ or { in a regular expression (${v}) would let a trait's text be read with it` : null;
}
