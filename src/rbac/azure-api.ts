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
 * - What azgate cannot read it refuses wherever any rule applies, whatever
 *   the options say: a path it will not decode, a method override, a batch.
 * - An operation it reads but cannot name (action null) is refused wherever
 *   any rule applies, unless `options.azure_api_unknown: allow` says
 *   otherwise, role by role: each role with deny rules refuses it unless that
 *   role says allow (a deny role's option speaks for itself only: it opens
 *   nothing another role refuses), and where roles restrict the identity, one
 *   of them must say allow (or match it by method, host and path), as with
 *   an allow rule.
 */
import { rolesAllowingIdentity } from "./engine.ts";
import { expandFor } from "./template.ts";
import type { App, AzureApiRule, Role, Traits } from "./types.ts";
import { readHost, UnsafePath, type AzureOperation, type CanonicalRequest, type RequestReading } from "../azure/operation.ts";
import type { CloudName } from "../azure/clouds.ts";
import { globMatch as linearGlob } from "../util/glob.ts";
import { compilePattern, isRegexValue, isUnreadableRegex } from "../util/regex.ts";

/** Named sets of deny rules (`deny.azure_api: [{ preset: NAME }]`). */
export const PRESETS: Record<string, AzureApiRule[]> = {
  /**
   * What would let a user out of azgate's control or above the identity's
   * purpose, one rule per family: granting access, another way in to the
   * identity, credentials that work without azgate, code that runs under a
   * resource's own identity, running code where other identities live, and
   * deploying (many writes, or code, under one operation). Built by pattern
   * from Azure's published operations
   * (test/fixtures/azure-operations.txt); test/fixtures/preset-catches.txt
   * lists every one of them it catches, and docs/policy.md summarises it. What
   * hides inside a request body (an access policy in a vault PUT, an
   * extension profile in a scale-set PUT) a name cannot show.
   */
  "no-privilege-escalation": [
    // Granting access: Azure roles, locks and policy; delegation to another tenant; Key Vault access policies; Cosmos DB's own role assignments.
    {
      actions: [
        "Microsoft.Authorization/*/write",
        "Microsoft.Authorization/*/delete",
        "Microsoft.Authorization/elevateAccess/action",
        "Microsoft.ManagedServices/registrationAssignments/write",
        "Microsoft.ManagedServices/registrationDefinitions/write",
        "Microsoft.KeyVault/vaults/accessPolicies/write",
        "Microsoft.DocumentDB/databaseAccounts/*RoleAssignments/write",
        "Microsoft.DocumentDB/databaseAccounts/*RoleDefinitions/write",
      ],
    },
    // Another way in to the identity: a federated credential, or the identity assigned to a resource the user controls.
    { actions: ["Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write", "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"] },
    // Credentials that work without azgate: keys, connection strings, SAS and delegation keys, kubeconfigs, publishing profiles, function keys.
    {
      actions: [
        "*/listKeys/action",
        "*/regenerate*Key/action",
        "*/regenerate*Keys/action",
        "*/regenerateCredential/action",
        "*/regeneratePassword/action",
        "*/listConnectionStrings/action",
        "*/readonlykeys/action",
        "*/listAdminKeys/action",
        "*/listQueryKeys/action",
        "*/createQueryKey/action",
        "*/sharedKeys/action",
        "*/list*Secrets/action",
        "*/list*Credential*/action",
        "*/list*Kubeconfig/action",
        "*/generate*Credentials/action",
        "*/listTokens/action",
        "*/list*Sas/action",
        "*/generateUserDelegationKey/action",
        "*/beginGetAccess/action",
        "*/retrieveSasUris/action",
        "Microsoft.Web/sites/*config/list/action",
        "Microsoft.Web/sites/*publishxml/*",
        "Microsoft.Web/sites/*keys/write",
        "Microsoft.Web/sites/*keys/read",
        "Microsoft.Web/sites/*masterkey/read",
        "Microsoft.Web/sites/*_master/read",
        "Microsoft.Web/sites/*token/read",
        "Microsoft.Web/staticSites/*list*settings/action",
        "Microsoft.App/*authtoken/action",
        "Microsoft.ContainerRegistry/registries/*/listDetails/action",
        "Microsoft.ContainerRegistry/registries/*/listBuildArguments/action",
        "Microsoft.HDInsight/clusters/getGatewaySettings/action",
        "Microsoft.HDInsight/clusters/configurations/action",
        // A Logic Apps workflow's or trigger's callback URL carries its SAS signature: whoever holds it runs the
        // workflow (under its identity) without azgate; the workflow's access keys sign those URLs.
        "*/listCallbackUrl/action",
        "Microsoft.Logic/workflows/accessKeys/list/action",
        "Microsoft.Logic/workflows/accessKeys/regenerate/action",
        // Cosmos DB's read-only keys by GET (the POST twin is readonlykeys/action, above); API Management's named
        // values hold secrets (backend keys, tokens), listValue returns them.
        "Microsoft.DocumentDB/databaseAccounts/readonlykeys/read",
        "Microsoft.ApiManagement/service/namedValues/listValue/action",
      ],
    },
    // Code that runs under the resource's own managed identity, set by writing the resource or its configuration:
    // whoever sets it acts as that identity. A web app's config (app settings: WEBSITE_RUN_FROM_PACKAGE pointing
    // at any package; the startup command; the container image; connection strings), the site and slot writes
    // (their siteConfig carries the same settings, so denying config alone would leave the same write open), and
    // a function's files; a container app's and a job's template (image, command); a job's start (its body may
    // override the template); a Logic Apps workflow's definition, and the workflow artifacts deployed to Logic
    // Apps on Container Apps. Their names cannot tell a tag change from new code, so the preset refuses both.
    {
      actions: [
        "Microsoft.Web/sites/config/*write",
        "Microsoft.Web/sites/slots/config/*write",
        "Microsoft.Web/sites/write",
        "Microsoft.Web/sites/slots/write",
        "Microsoft.Web/sites/*functions/write",
        "Microsoft.App/containerApps/write",
        "Microsoft.App/jobs/write",
        "Microsoft.App/jobs/start/action",
        "Microsoft.App/logicApps/deployWorkflowArtifacts/action",
        "Microsoft.Logic/workflows/write",
        // Issue 29, round 2 (F8). Logic Apps Standard is a Microsoft.Web site: its workflow artifacts, as on Container
        // Apps. A site's sidecar containers run under its identity. A site's code and settings restored from a backup
        // blob, a snapshot or a deleted app the user names (the body says which) are new code as a write is.
        "Microsoft.Web/sites/*deployWorkflowArtifacts/action",
        "Microsoft.Web/sites/*sitecontainers/write",
        "Microsoft.Web/sites/*restoreFromBackupBlob/action",
        "Microsoft.Web/sites/*backups/restore/action",
        "Microsoft.Web/sites/*restoreFromDeletedApp/action",
        "Microsoft.Web/sites/*restoreSnapshot/action",
        "Microsoft.Web/sites/*recover/action",
        "Microsoft.Web/sites/*restore/write",
        // A container group's image and command (its identities attached), as a container app's; a Spring Apps job's
        // template and its start (which takes an override), as a Container Apps job's; a Spring app's deployment (its
        // jar or image runs under the app's identity), as a container app's write.
        "Microsoft.ContainerInstance/containerGroups/write",
        "Microsoft.AppPlatform/Spring/apps/deployments/write",
        "Microsoft.AppPlatform/Spring/jobs/write",
        "Microsoft.AppPlatform/Spring/jobs/start/action",
        // A Data Factory pipeline runs under the factory's identity (a web activity can hand its token anywhere), as a
        // workflow does. An API Management policy (any level, a fragment included in one) can fetch the gateway's
        // managed-identity token and return it; a restore sets every policy from a blob the user names.
        "Microsoft.DataFactory/factories/pipelines/write",
        "Microsoft.ApiManagement/service/*policies/write",
        "Microsoft.ApiManagement/service/*policy/write",
        "Microsoft.ApiManagement/service/policyFragments/write",
        "Microsoft.ApiManagement/service/restore/action",
      ],
    },
    // Running code on machines, containers and clusters (which may hold other identities).
    {
      actions: [
        "*runCommand/action",
        "*runCommands/write",
        "*/extensions/write",
        "Microsoft.Web/sites/*siteextensions/write",
        "Microsoft.Web/sites/*extensions/api/action",
        "Microsoft.Web/sites/*hostruntime/host/action",
        "Microsoft.ContainerInstance/containerGroups/containers/exec/action",
        // Guest Configuration applies a package (any script) on a machine as root or SYSTEM.
        "Microsoft.GuestConfiguration/*guestConfigurationAssignments/write",
        "Microsoft.AVS/privateClouds/scriptExecutions/write",
        "Microsoft.HDInsight/clusters/executeScriptActions/action",
        "Microsoft.ContainerRegistry/registries/scheduleRun/action",
        "Microsoft.ContainerRegistry/registries/tasks/write",
        "Microsoft.ContainerRegistry/registries/taskruns/write",
        "Microsoft.Automation/automationAccounts/jobs/write",
        "Microsoft.Automation/automationAccounts/jobSchedules/write",
        "Microsoft.Automation/automationAccounts/runbooks/*write",
        "Microsoft.Automation/automationAccounts/runbooks/publish/action",
        "Microsoft.Automation/automationAccounts/webhooks/write",
        "Microsoft.Automation/automationAccounts/modules/write",
        "Microsoft.Automation/automationAccounts/*Packages/write",
        "Microsoft.Automation/automationAccounts/sourceControls/write",
        "Microsoft.Automation/automationAccounts/hybridRunbookWorkerGroups/hybridRunbookWorkers/write",
      ],
    },
    // Deploying: templates (one operation, many writes, through any path), deployment scripts and stacks; app code from source control or a package.
    {
      actions: [
        "Microsoft.Resources/deployments/write",
        "Microsoft.Resources/*/deployments/write",
        "Microsoft.Resources/deploymentStacks/write",
        "Microsoft.Resources/deploymentScripts/write",
        "Microsoft.Web/sites/*sourcecontrols/write",
        "Microsoft.Web/sourcecontrols/write",
        "Microsoft.Web/sites/publish/action",
        "Microsoft.Web/sites/slots/publish/action",
        "Microsoft.Web/sites/sync/action",
        "Microsoft.Web/sites/slots/sync/action",
        "Microsoft.Web/staticSites/*zipdeploy/action",
        "Microsoft.App/containerApps/sourcecontrols/write",
        // A managed application is a template deployment under another name: its definition's mainTemplate, and its
        // `authorizations`, which grant a principal a role on the managed resource group.
        "Microsoft.Solutions/applicationDefinitions/write",
        "Microsoft.Solutions/applications/write",
      ],
    },
    // Moving resources out of a resource group takes them out of every rule scoped to it (then deleted, say, where
    // no deny applies): Azure asks only moveResources on the source and write on the target, so it is refused here.
    { actions: ["Microsoft.Resources/subscriptions/resourceGroups/moveResources/action"] },
  ],
};

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
const lets = (r: Role) => r.spec.options?.azure_api_unknown === "allow";
const plural = (rs: Role[], one: string, many: string) => `role${rs.length > 1 ? "s" : ""} ${rs.map((r) => r.metadata.name).join(", ")} ${rs.length > 1 ? many : one}`;

/**
 * The decision for one request, read once (operation.ts readRequest): every
 * rule sees its canonical form, never the spelling it was sent in. What else
 * the request does (its reading's parts: a rename's or a copy's source) is
 * decided the same way, and a refusal of any part refuses it: enforced
 * before "would deny", the request's own operation before its parts.
 */
export function decideAzureApi(roles: Role[], traits: Traits, app: App, identity: string, reading: RequestReading, policy: IdentityPolicy = identityPolicy(roles, traits, app, identity)): AzureApiDecision {
  const { restricting, denying } = policy;
  if (restricting.length === 0 && denying.length === 0) return { outcome: "unrestricted", enforced: false, operation: null, matched: null, reason: "no azure_api rule applies to this identity" };
  const concerned = [...new Set([...restricting, ...denying])];
  const anyEnforces = (rs: Role[]) => rs.some((r) => mode(r) === "enforce");

  // A request that cannot be read (or a batch, or a method override) is refused whenever a rule applies: it could mean one thing here and another at Azure.
  if (reading.refused) return { outcome: "deny", enforced: anyEnforces(concerned), operation: reading.operation, matched: null, reason: reading.refused };
  const own = decideOperation({ restricting, denying }, traits, reading.operation!, reading.canonical!);
  const parts = reading.parts.map((p) => ({ p, d: decideOperation({ restricting, denying }, traits, p.operation, p.canonical) }));
  const refusedPart = (enforced: boolean) => parts.find(({ d }) => d.outcome === "deny" && d.enforced === enforced);
  const ofPart = (found: (typeof parts)[number] | undefined): AzureApiDecision | null => (found ? { ...found.d, reason: `${found.p.what}: ${found.d.reason}` } : null);
  if (own.outcome === "deny" && own.enforced) return own;
  return ofPart(refusedPart(true)) ?? (own.outcome === "deny" ? own : null) ?? ofPart(refusedPart(false)) ?? own;
}

/** One operation against the identity's rules: deny wins; an operation azgate cannot name is refused unless the roles say otherwise. */
function decideOperation({ restricting, denying }: IdentityPolicy, traits: Traits, op: AzureOperation, req: CanonicalRequest): AzureApiDecision {
  const anyEnforces = (rs: Role[]) => rs.some((r) => mode(r) === "enforce");
  const what = describe(op, req);

  // Deny wins, from any role: an enforcing role's deny rule ends it here.
  const denied = denying.flatMap((role) => matchingRules(role, "deny", op, req, traits).map((m) => ({ role, m })));
  const byRule = (d: (typeof denied)[number]): AzureApiDecision => {
    const by = `role ${d.role.metadata.name} (${d.m.preset ? `preset ${d.m.preset}` : `deny rule ${d.m.rule + 1}`})`;
    return { outcome: "deny", enforced: mode(d.role) === "enforce", operation: op, matched: d.m, reason: `${what} is denied by ${by}` };
  };
  const enforcedDeny = denied.find((d) => mode(d.role) === "enforce");
  if (enforcedDeny) return byRule(enforcedDeny);
  // A deny role cannot tell whether its rules cover an operation azgate cannot name: it refuses it, unless it says azure_api_unknown: allow itself.
  const unsure = op.action === null ? denying.filter((r) => !lets(r)) : [];
  const byUnsure = (rs: Role[]): AzureApiDecision => ({ outcome: "deny", enforced: anyEnforces(rs), operation: op, matched: null, reason: `${what}: azgate cannot name this Azure operation, so ${plural(rs, "denies", "deny")} it (azure_api_unknown: deny)` });
  if (unsure.some((r) => mode(r) === "enforce")) return byUnsure(unsure.filter((r) => mode(r) === "enforce"));
  // What is left of the deny side is audit mode ("would deny"): it never lets through what an enforcing restricting role refuses.
  const allowSide = decideAllowSide(restricting, op, req, traits, what);
  if (allowSide.outcome === "deny" && allowSide.enforced) return allowSide;
  if (denied.length > 0) return byRule(denied[0]);
  if (unsure.length > 0) return byUnsure(unsure);
  return allowSide;
}

/** The allow side alone: with no restricting role, anything; else a matching allow rule (or, unnamed, a lenient role), or the default deny. */
function decideAllowSide(restricting: Role[], op: AzureOperation, req: CanonicalRequest, traits: Traits, what: string): AzureApiDecision {
  const anyEnforces = (rs: Role[]) => rs.some((r) => mode(r) === "enforce");
  if (restricting.length === 0) return { outcome: "allow", enforced: false, operation: op, matched: null, reason: `${what}: no deny rule matches, and no role restricts this identity` };
  for (const role of restricting) {
    const [m] = matchingRules(role, "allow", op, req, traits);
    if (m) return { outcome: "allow", enforced: false, operation: op, matched: m, reason: `${what} is allowed by role ${role.metadata.name} (allow rule ${m.rule + 1})` };
  }
  const names = restricting.map((r) => r.metadata.name).join(", ");
  if (op.action === null) {
    // On the allow side, as an allow rule would: one restricting role that lets unnamed operations through is enough.
    const lenient = restricting.find(lets);
    if (lenient) return { outcome: "allow", enforced: false, operation: op, matched: null, reason: `${what}: an operation azgate cannot name, let through by role ${lenient.metadata.name} (azure_api_unknown: allow)` };
    return { outcome: "deny", enforced: anyEnforces(restricting), operation: op, matched: null, reason: `${what}: azgate cannot name this Azure operation, and ${plural(restricting, "allows", "allow")} only operations named in azure_api (azure_api_unknown: deny)` };
  }
  return { outcome: "deny", enforced: anyEnforces(restricting), operation: op, matched: null, reason: `${what} is not allowed by any azure_api rule of role${restricting.length > 1 ? "s" : ""} ${names}` };
}

/** Which roles' azure_api rules concern an identity on an app: the one selection the decision and the summary read. */
export interface IdentityPolicy {
  /** Roles that allow the identity and say `allow.azure_api` at all (an empty list allows nothing): the identity is default-deny. */
  restricting: Role[];
  /** Roles with `deny.azure_api` rules, whichever identity they allow: deny wins from any role. */
  denying: Role[];
}

export function identityPolicy(roles: Role[], traits: Traits, app: App, identity: string): IdentityPolicy {
  return {
    restricting: rolesAllowingIdentity(roles, traits, app, identity).filter((r) => r.spec.allow?.azure_api !== undefined),
    denying: roles.filter((r) => (r.spec.deny?.azure_api ?? []).length > 0),
  };
}

/** What the policy for one identity is, in parts (the web UI's "API policy" line): from identityPolicy, as decideAzureApi reads it. */
export interface AzureApiSummary {
  /** unrestricted: no rule applies; only: the allow rules name what goes (none: nothing goes); except: anything but the deny rules. */
  kind: "unrestricted" | "only" | "except";
  allows: AzureApiRule[];
  denies: AzureApiRule[];
  /** Operations azgate cannot name (Microsoft Graph, say) are refused, as decideAzureApi refuses them. */
  unnamedRefused: boolean;
  /** none: every refusal is enforced; all: every role in audit mode (refusals recorded, not enforced); some: mixed. */
  audit: "none" | "some" | "all";
}

export function summarizeAzureApi(roles: Role[], traits: Traits, app: App, identity: string): AzureApiSummary {
  const { restricting, denying } = identityPolicy(roles, traits, app, identity);
  const concerned = [...new Set([...restricting, ...denying])];
  const audits = concerned.filter((r) => mode(r) === "audit").length;
  return {
    kind: restricting.length > 0 ? "only" : denying.length > 0 ? "except" : "unrestricted",
    allows: restricting.flatMap((r) => r.spec.allow?.azure_api ?? []),
    denies: denying.flatMap((r) => r.spec.deny?.azure_api ?? []),
    // As the decision: every deny role must let them through itself, and one restricting role must, when there is one.
    unnamedRefused: concerned.length > 0 && !(denying.every(lets) && (restricting.length === 0 || restricting.some(lets))),
    audit: audits === 0 ? "none" : audits === concerned.length ? "all" : "some",
  };
}

/** The summary in a sentence or three. */
export function azureApiSummaryText(s: AzureApiSummary): string {
  const rules = (rs: AzureApiRule[], join: string) => rs.map(ruleText).join(join);
  const what =
    s.kind === "unrestricted" ? "Anything the identity's Azure role allows." :
    s.kind === "except" ? "Anything the identity's Azure role allows, except what is listed next." :
    s.allows.length === 0 ? "Nothing: a role's azure_api allows no operation, so every request is refused." :
    `Only ${rules(s.allows, "; or ")}.`;
  const never = s.denies.length ? ` Never ${rules(s.denies, "; ")}.` : "";
  const unnamed = s.unnamedRefused ? " Operations azgate cannot name (Microsoft Graph, for one) are refused." : "";
  const audit = s.audit === "all" ? " (Audit mode: refusals are recorded, not enforced.)" : s.audit === "some" ? " (Some of these roles are in audit mode: their refusals are recorded, not enforced.)" : "";
  return `${what}${never}${unnamed}${audit}`;
}

function ruleText(r: AzureApiRule): string {
  if (r.preset) return `the ${r.preset} preset`;
  const parts = [
    r.actions && r.actions.join(", "),
    r.data_actions && r.data_actions.join(", "),
    r.methods && `${r.methods.join("/")} requests`,
    r.paths && `to ${r.paths.join(", ")}`,
    r.hosts && `on ${r.hosts.join(", ")}`,
    r.scopes && `in ${r.scopes.join(", ")}`,
  ].filter(Boolean);
  return parts.join(" ");
}

/** "Microsoft.X/y/write on /subscriptions/..." or, unnamed, "POST https://host/path" (canonical). */
function describe(op: AzureOperation, req: CanonicalRequest): string {
  return op.action ? `${op.action} on ${op.scope}` : `${req.method} https://${req.host}${req.path}`;
}

function matchingRules(role: Role, side: "allow" | "deny", op: AzureOperation, req: CanonicalRequest, traits: Traits): RuleRef[] {
  const out: RuleRef[] = [];
  (role.spec[side]?.azure_api ?? []).forEach((rule, i) => {
    const rules = rule.preset ? PRESETS[rule.preset] ?? [] : [rule];
    if (rules.some((r) => ruleMatches(r, op, req, traits, side))) out.push({ role: role.metadata.name, side, rule: i, ...(rule.preset ? { preset: rule.preset } : {}) });
  });
  return out;
}

/**
 * Every field present must hold (AND); within a field, any value (OR).
 * Against the canonical request: `hosts` see the host in lower case without
 * port or trailing dot (ARM's regional hosts as the ARM host; a storage
 * account's blob host, and its dfs host as an alias), `paths` the decoded
 * path without a trailing slash, as a pattern is read the same way.
 */
export function ruleMatches(rule: AzureApiRule, op: AzureOperation, req: CanonicalRequest, traits: Traits, side: "allow" | "deny"): boolean {
  // Allow rules read traits as literals, deny rules as they are (rbac/template.ts): a trait never widens an allow.
  const expand = expandFor(side);
  // A trait-made regular expression RE2 cannot read matches in a deny (fail closed), nothing in an allow (util/regex.ts).
  const unreadable = side === "deny" ? isUnreadableRegex : () => false;
  const any = (values: string[] | undefined, test: (v: string) => boolean) => values === undefined || expand(values, traits).some((p) => unreadable(p) || test(p));
  if (rule.actions && (op.plane !== "control" || !op.action || !any(rule.actions, (p) => globMatch(p, op.action!, "any")))) return false;
  if (rule.data_actions && (op.plane !== "data" || !op.action || !any(rule.data_actions, (p) => globMatch(p, op.action!, "any")))) return false;
  if (!any(rule.scopes, (p) => scopeCovers(p, op.scope))) return false;
  // A storage account's blob and dfs hosts are one account's data: a hosts rule naming either applies to both.
  const hostNames = [req.host, ...req.aliases];
  if (!any(rule.hosts, (p) => hostNames.some((h) => globMatch(hostPattern(p, req.cloud), h, "label")))) return false;
  if (!any(rule.methods, (m) => m.toUpperCase() === req.method)) return false;
  // Blob names compare with case (`/data/PUBLIC/x` is another blob), every other service's paths without (CanonicalRequest.caseSensitivePath).
  if (!any(rule.paths, (p) => globMatch(literal(p) && p !== "/" ? p.replace(/\/+$/, "") : p, req.path, "any", req.caseSensitivePath))) return false;
  return true;
}

/** A glob pattern, not a regular expression. */
const literal = (p: string) => !isRegexValue(p);

/**
 * A hosts pattern read as the request's host is: a name without `*` through the same reader (a storage
 * account's secondary or private-link name as its primary, a regional ARM host as ARM), so a rule naming any
 * of them names the one host the request is read as; a glob or a regular expression as written (a glob
 * matches the host as read: `sa1-*` is not a secondary of sa1).
 */
function hostPattern(p: string, cloud: CloudName): string {
  if (!literal(p)) return p;
  const bare = p.replace(/\.$/, "");
  if (bare.includes("*")) return bare;
  try {
    return readHost(bare, cloud).host;
  } catch (e) {
    // A name no request is read as (refused wherever a rule applies): it matches nothing.
    if (e instanceof UnsafePath) return bare;
    throw e;
  }
}

/**
 * `^...$` is a regular expression (RE2, linear: util/regex.ts); otherwise `*` is a wildcard: across
 * anything ("any": actions, paths) or within one DNS label ("label": hosts).
 * Whole string; case-insensitive unless `caseSensitive` (a blob's path).
 */
export function globMatch(pattern: string, value: string, star: "any" | "label" | "segment", caseSensitive = false): boolean {
  if (isRegexValue(pattern)) return compilePattern(pattern, { caseInsensitive: !caseSensitive })?.test(value) ?? false;
  // Linear in time (util/glob.ts): the value is the caller's, and stars compiled to a regular expression backtrack.
  return linearGlob(pattern, value, { caseInsensitive: !caseSensitive, separator: star === "any" ? undefined : star === "label" ? "." : "/" });
}

/** A scope pattern covers a resource ID when it matches the ID or one of its ancestors (on segment boundaries); `*` stays within a segment. */
export function scopeCovers(pattern: string, scope: string): boolean {
  const p = pattern.replace(/\/+$/, "") || "/";
  if (p === "/" || p === "*") return true;
  const segments = scope.split("/").filter(Boolean);
  // A glob's stars stay within a segment, so only the ancestor with as many segments as the pattern can match:
  // one test, not one per ancestor (that was quadratic in the path, which the caller chooses).
  if (!isRegexValue(p)) {
    const n = p.split("/").length - 1;
    return n >= 1 && n <= segments.length && globMatch(p, "/" + segments.slice(0, n).join("/"), "segment");
  }
  // A regular expression may match any ancestor: each is tried, a slice of one string. An ARM scope has at most
  // MAX_ARM_SEGMENTS segments (a deeper path is refused wherever a rule applies: azure/operation.ts), so this is
  // at most that many linear matches. (One match of the pattern wrapped as `^(?:body)(?:/.*)?$` is not the same
  // pattern: `^a|b$` is `(^a)|(b$)` in RE2, and `\Q...\E` or a trailing `\` change what a wrapper means.)
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
  /** Why the request is refused wherever a rule applies (an unreadable path, a batch, a method override), when it is. */
  unreadable: string | null;
  rules: ExplainedRule[];
  decision: AzureApiDecision;
}

/**
 * Every azure_api rule of the roles, whether it matches this request and
 * whether it counts for this identity, with the decision: what
 * `roles explain` prints. The same code, on the same reading, as the proxy's decision.
 */
export function explainAzureApi(roles: Role[], traits: Traits, app: App, identity: string, reading: RequestReading): AzureApiExplanation {
  const decision = decideAzureApi(roles, traits, app, identity, reading);
  const operation = reading.operation;
  const canonical = reading.canonical;
  const counting = new Set(rolesAllowingIdentity(roles, traits, app, identity));
  const rules: ExplainedRule[] = [];
  for (const role of roles) {
    for (const side of ["allow", "deny"] as const) {
      (role.spec[side]?.azure_api ?? []).forEach((rule, i) => {
        const expanded = rule.preset ? PRESETS[rule.preset] ?? [] : [rule];
        // The request's own operation, or any other it performs (a rename's source).
        const read = operation && canonical ? [{ operation, canonical }, ...reading.parts] : [];
        const matched = read.some((o) => expanded.some((r) => ruleMatches(r, o.operation, o.canonical, traits, side)));
        rules.push({ role: role.metadata.name, side, rule: i, ...(rule.preset ? { preset: rule.preset } : {}), text: rule.preset ? `preset ${rule.preset}` : JSON.stringify(rule), matched, counts: side === "deny" || counting.has(role) });
      });
    }
  }
  return { operation, unreadable: reading.refused, rules, decision };
}
