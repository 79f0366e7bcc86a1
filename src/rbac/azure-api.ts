/**
 * Per-request Azure API policy (`allow.azure_api`, `deny.azure_api`): may this
 * request, named as Azure RBAC names it (azure/operation.ts), go to Azure with
 * this identity? Pure: roles, traits and the request in; the decision, with
 * the role and rule that made it, out. The proxy enforces it on every
 * request; `roles explain` prints it.
 *
 * - A user none of whose roles that allow the identity has `allow.azure_api`
 *   keeps what the identity's Azure role allows ("unrestricted"), less any
 *   deny rule.
 * - Once one does, the identity is default-deny: a request needs an allow
 *   rule of a role that also allows the identity (app labels and
 *   azure_identities), and no deny rule of any role.
 * - Rules are ORed; the fields of a rule are ANDed; deny wins.
 * - `options.azure_api_mode: audit` makes a role's refusals "would deny":
 *   forwarded and recorded. A refusal is enforced when any role it comes
 *   from enforces.
 * - `options.azure_api_unknown: allow` in a role that restricts the identity
 *   lets operations the mapper cannot name through; the default refuses them.
 */
import { rolesAllowingIdentity } from "./engine.ts";
import { expandAll } from "./template.ts";
import type { App, AzureApiRule, Role, Traits } from "./types.ts";
import { mapRequest, METHOD_OVERRIDE_HEADERS, UnsafePath, type AzureOperation, type RequestShape } from "../azure/operation.ts";
import type { CloudName } from "../azure/clouds.ts";
import { globMatch as linearGlob } from "../util/glob.ts";

/** Named sets of deny rules (`deny.azure_api: [{ preset: NAME }]`). */
export const PRESETS: Record<string, AzureApiRule[]> = {
  /**
   * What would let a user out of azgate's control or above the identity's
   * purpose: granting roles, elevating, giving the identity another way in
   * (a federated credential), reading keys and credentials that work
   * without azgate, running code on machines (which may hold other
   * identities), and template deployments (many writes under one operation).
   * Names as in Azure's resource provider operations list.
   */
  "no-privilege-escalation": [
    {
      actions: [
        "Microsoft.Authorization/*/write",
        "Microsoft.Authorization/*/delete",
        "Microsoft.Authorization/elevateAccess/action",
        "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write",
        "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action",
        "*/listKeys/action",
        "*/listCredentials/action",
        "*/listAccountSas/action",
        "*/listServiceSas/action",
        "Microsoft.Web/sites/config/list/action",
        "Microsoft.Web/sites/publishxml/action",
        "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action",
        "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action",
        "Microsoft.Compute/virtualMachines/runCommand/action",
        "Microsoft.Compute/virtualMachines/runCommands/write",
        "Microsoft.Compute/virtualMachines/extensions/write",
        "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommand/action",
        "Microsoft.Compute/virtualMachineScaleSets/extensions/write",
        "Microsoft.KeyVault/vaults/accessPolicies/write",
        "Microsoft.Resources/deployments/write",
        "Microsoft.Resources/deploymentScripts/write",
      ],
    },
  ],
};

export interface PolicyRequest extends RequestShape {
  headers?: [string, string][];
}

export interface RuleRef {
  role: string;
  side: "allow" | "deny";
  /** Index in the role's list (0-based). */
  rule: number;
  preset?: string;
}

export interface AzureApiDecision {
  /** unrestricted: no azure_api rule concerns this identity; allow / deny: a rule (or the default) decided. */
  outcome: "unrestricted" | "allow" | "deny";
  /** For a deny: true when it is enforced, false when every role it comes from is in audit mode ("would deny"). */
  enforced: boolean;
  operation: AzureOperation | null;
  matched: RuleRef | null;
  reason: string;
}

const mode = (r: Role) => (r.spec.options?.azure_api_mode === "audit" ? "audit" : "enforce");

export function decideAzureApi(roles: Role[], traits: Traits, app: App, identity: string, req: PolicyRequest, cloud: CloudName = "Azure"): AzureApiDecision {
  // A role that says azure_api at all, even an empty list, restricts: an empty list allows nothing.
  const restricting = rolesAllowingIdentity(roles, traits, app, identity).filter((r) => r.spec.allow?.azure_api !== undefined);
  const denying = roles.filter((r) => (r.spec.deny?.azure_api ?? []).length > 0);
  if (restricting.length === 0 && denying.length === 0) return { outcome: "unrestricted", enforced: false, operation: null, matched: null, reason: "no azure_api rule applies to this identity" };
  const concerned = [...new Set([...restricting, ...denying])];
  const anyEnforces = (rs: Role[]) => rs.some((r) => mode(r) === "enforce");

  // A request the mapper will not read is refused whenever a rule applies: it could mean one thing here and another at Azure.
  const override = (req.headers ?? []).find(([k]) => METHOD_OVERRIDE_HEADERS.includes(k.toLowerCase()));
  if (override) return { outcome: "deny", enforced: anyEnforces(concerned), operation: null, matched: null, reason: `the ${override[0]} header is not allowed where an azure_api policy applies` };
  let op: AzureOperation;
  try {
    op = mapRequest(req, cloud);
  } catch (e) {
    if (!(e instanceof UnsafePath)) throw e;
    return { outcome: "deny", enforced: anyEnforces(concerned), operation: null, matched: null, reason: `${req.method} ${req.host}${req.path} is refused: ${e.message}` };
  }
  const what = describe(op, req);

  // Deny wins, from any role.
  const denied = denying.flatMap((role) => matchingRules(role, "deny", op, req, traits).map((m) => ({ role, m })));
  if (denied.length > 0) {
    const first = denied.find((d) => mode(d.role) === "enforce") ?? denied[0];
    const by = `role ${first.role.metadata.name} (${first.m.preset ? `preset ${first.m.preset}` : `deny rule ${first.m.rule + 1}`})`;
    return { outcome: "deny", enforced: anyEnforces(denied.map((d) => d.role)), operation: op, matched: first.m, reason: `${what} is denied by ${by}` };
  }
  if (restricting.length === 0) return { outcome: "allow", enforced: false, operation: op, matched: null, reason: `${what}: no deny rule matches, and no role restricts this identity` };

  for (const role of restricting) {
    const [m] = matchingRules(role, "allow", op, req, traits);
    if (m) return { outcome: "allow", enforced: false, operation: op, matched: m, reason: `${what} is allowed by role ${role.metadata.name} (allow rule ${m.rule + 1})` };
  }
  const names = restricting.map((r) => r.metadata.name).join(", ");
  if (op.action === null) {
    const lenient = restricting.find((r) => r.spec.options?.azure_api_unknown === "allow");
    if (lenient) return { outcome: "allow", enforced: false, operation: op, matched: null, reason: `${what}: an operation azgate cannot name, let through by role ${lenient.metadata.name} (azure_api_unknown: allow)` };
    return { outcome: "deny", enforced: anyEnforces(restricting), operation: op, matched: null, reason: `${what}: azgate cannot name this Azure operation, and role${restricting.length > 1 ? "s" : ""} ${names} allow${restricting.length > 1 ? "" : "s"} only operations named in azure_api (azure_api_unknown: deny)` };
  }
  return { outcome: "deny", enforced: anyEnforces(restricting), operation: op, matched: null, reason: `${what} is not allowed by any azure_api rule of role${restricting.length > 1 ? "s" : ""} ${names}` };
}

/** "Microsoft.X/y/write on /subscriptions/..." or, unnamed, "POST host/path". */
function describe(op: AzureOperation, req: PolicyRequest): string {
  return op.action ? `${op.action} on ${op.scope}` : `${req.method.toUpperCase()} https://${req.host}${req.path}`;
}

/**
 * Traits as allow rules read them: a value with a wildcard or a regular
 * expression's anchors is left out, so a trait (from an identity provider,
 * where a user may be able to edit an attribute) can never widen an allow
 * rule into a pattern. Deny rules take traits as they are: wider is safer there.
 */
export function literalTraits(traits: Traits): Traits {
  return Object.fromEntries(Object.entries(traits).map(([k, vs]) => [k, vs.filter((v) => !/[*^$]/.test(v))]));
}

function matchingRules(role: Role, side: "allow" | "deny", op: AzureOperation, req: PolicyRequest, allTraits: Traits): RuleRef[] {
  const traits = side === "allow" ? literalTraits(allTraits) : allTraits;
  const out: RuleRef[] = [];
  (role.spec[side]?.azure_api ?? []).forEach((rule, i) => {
    const rules = rule.preset ? PRESETS[rule.preset] ?? [] : [rule];
    if (rules.some((r) => ruleMatches(r, op, req, traits))) out.push({ role: role.metadata.name, side, rule: i, ...(rule.preset ? { preset: rule.preset } : {}) });
  });
  return out;
}

/** Every field present must hold (AND); within a field, any value (OR). */
export function ruleMatches(rule: AzureApiRule, op: AzureOperation, req: PolicyRequest, traits: Traits): boolean {
  const any = (values: string[] | undefined, test: (v: string) => boolean) => values === undefined || expandAll(values, traits).some(test);
  if (rule.actions && (op.plane !== "control" || !op.action || !any(rule.actions, (p) => globMatch(p, op.action!, "any")))) return false;
  if (rule.data_actions && (op.plane !== "data" || !op.action || !any(rule.data_actions, (p) => globMatch(p, op.action!, "any")))) return false;
  if (!any(rule.scopes, (p) => scopeCovers(p, op.scope))) return false;
  if (!any(rule.hosts, (p) => globMatch(p, req.host.toLowerCase(), "label"))) return false;
  if (!any(rule.methods, (m) => m.toUpperCase() === req.method.toUpperCase())) return false;
  if (!any(rule.paths, (p) => globMatch(p, req.path, "any"))) return false;
  return true;
}

/**
 * `^...$` is a regular expression; otherwise `*` is a wildcard: across
 * anything ("any": actions, paths) or within one DNS label ("label": hosts).
 * Case-insensitive, whole string.
 */
export function globMatch(pattern: string, value: string, star: "any" | "label" | "segment"): boolean {
  if (pattern.startsWith("^") && pattern.endsWith("$")) {
    try {
      return new RegExp(pattern, "i").test(value);
    } catch {
      return false;
    }
  }
  // Linear in time (util/glob.ts): the value is the caller's, and stars compiled to a regular expression backtrack.
  return linearGlob(pattern, value, { caseInsensitive: true, separator: star === "any" ? undefined : star === "label" ? "." : "/" });
}

/** A scope pattern covers a resource ID when it matches the ID or one of its ancestors (on segment boundaries); `*` stays within a segment. */
export function scopeCovers(pattern: string, scope: string): boolean {
  const p = pattern.replace(/\/+$/, "") || "/";
  if (p === "/" || p === "*") return true;
  const segments = scope.split("/").filter(Boolean);
  // A glob's stars stay within a segment, so only the ancestor with as many segments as the pattern can match:
  // one test, not one per ancestor (that was quadratic in the path, which the caller chooses).
  if (!(p.startsWith("^") && p.endsWith("$"))) {
    const n = p.split("/").length - 1;
    return n >= 1 && n <= segments.length && globMatch(p, "/" + segments.slice(0, n).join("/"), "segment");
  }
  // A regular expression may match any ancestor: each is a slice of one string, not a new join.
  const id = "/" + segments.join("/");
  for (let end = segments.length ? id.length : 0; end > 0; end = id.lastIndexOf("/", end - 1)) {
    if (globMatch(p, id.slice(0, end), "segment")) return true;
  }
  return false;
}

export interface ExplainedRule extends RuleRef {
  /** The rule as written (a preset by name). */
  text: string;
  matched: boolean;
  /** False for an allow rule of a role that does not allow this identity: it cannot widen anything. */
  counts: boolean;
}

export interface AzureApiExplanation {
  operation: AzureOperation | null;
  /** Why the path cannot be read, when it cannot. */
  unreadable: string | null;
  rules: ExplainedRule[];
  decision: AzureApiDecision;
}

/**
 * Every azure_api rule of the roles, whether it matches this request and
 * whether it counts for this identity, with the decision: what
 * `roles explain` prints. The same code as the proxy's decision.
 */
export function explainAzureApi(roles: Role[], traits: Traits, app: App, identity: string, req: PolicyRequest, cloud: CloudName = "Azure"): AzureApiExplanation {
  const decision = decideAzureApi(roles, traits, app, identity, req, cloud);
  let operation: AzureOperation | null = null;
  let unreadable: string | null = null;
  try {
    operation = mapRequest(req, cloud);
  } catch (e) {
    if (!(e instanceof UnsafePath)) throw e;
    unreadable = e.message;
  }
  const counting = new Set(rolesAllowingIdentity(roles, traits, app, identity));
  const rules: ExplainedRule[] = [];
  for (const role of roles) {
    for (const side of ["allow", "deny"] as const) {
      (role.spec[side]?.azure_api ?? []).forEach((rule, i) => {
        const expanded = rule.preset ? PRESETS[rule.preset] ?? [] : [rule];
        const matched = !!operation && expanded.some((r) => ruleMatches(r, operation!, req, side === "allow" ? literalTraits(traits) : traits));
        rules.push({ role: role.metadata.name, side, rule: i, ...(rule.preset ? { preset: rule.preset } : {}), text: rule.preset ? `preset ${rule.preset}` : JSON.stringify(rule), matched, counts: side === "deny" || counting.has(role) });
      });
    }
  }
  return { operation, unreadable, rules, decision };
}
