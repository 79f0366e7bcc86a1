/**
 * The RBAC engine: pure functions, data in, decision and reason out. It is the
 * one place that decides; proxy, agent and client call it. Deny wins over
 * allow in every role, for every field.
 */
import type { App, Decision, Role, Rule, Traits } from "./types.ts";
import { expandAll, expandAllow } from "./template.ts";
import { matchLabels } from "./labels.ts";
import { parseDuration } from "../util/duration.ts";
import { identityIdProblem, identityKey, identityRefusal, parseIdentityId } from "../azure/resource-id.ts";

export const DEFAULT_SESSION_TTL_MS = 12 * 3_600_000;

/**
 * Identities denied by any role, by canonical ID (azure/resource-id.ts).
 * `*` in deny removes every identity, and so does a value azgate cannot read
 * as an identity ID (a trait expanded into one): a deny it cannot name
 * fails closed. Labels do not narrow a deny.
 */
function deniedIdentities(roles: Role[], traits: Traits): { all: string | null; ids: Map<string, string> } {
  const ids = new Map<string, string>();
  let all: string | null = null;
  for (const role of roles) {
    for (const id of expandAll(role.spec.deny?.azure_identities, traits)) {
      const key = id === "*" ? null : identityKey(id);
      if (key) ids.set(key, role.metadata.name);
      else all ??= id === "*" ? `role "${role.metadata.name}" denies all Azure identities` : `role "${role.metadata.name}" denies ${JSON.stringify(id)}, which ${identityIdProblem(id)}: a deny azgate cannot read as one identity refuses them all`;
    }
  }
  return { all, ids };
}

/**
 * Every Azure identity the roles allow (Azure's spelling, first one kept,
 * sorted), after removing denied ones. Carried in certificates as a hint and
 * used by the client to resolve `--azure-identity`. A value that is no
 * identity ID allows nothing.
 */
export function allowedAzureIdentities(roles: Role[], traits: Traits): string[] {
  const denied = deniedIdentities(roles, traits);
  if (denied.all) return [];
  const out = new Map<string, string>();
  for (const role of roles) {
    for (const value of expandAllow(role.spec.allow?.azure_identities, traits)) {
      // A wildcard can only come from a trait value; it never grants anything in allow.
      const id = value === "*" ? null : parseIdentityId(value);
      if (!id || denied.ids.has(id.canonical) || out.has(id.canonical)) continue;
      out.set(id.canonical, id.id);
    }
  }
  return [...out.values()].sort((a, b) => a.localeCompare(b));
}

/** The refusal for an identity that is no identity ID (an app certificate from before the grammar, say); null for one that is. */
function unreadable(identity: string): Decision | null {
  const refused = identityRefusal(identity);
  return refused ? { allowed: false, reason: refused } : null;
}

/** A role whose deny.app_labels match the app, as a refusal; null when none does. */
function appDenial(roles: Role[], traits: Traits, app: App): Decision | null {
  const denying = roles.find((role) => matchLabels(role.spec.deny?.app_labels, app.labels, traits, "deny"));
  return denying ? { allowed: false, reason: `role "${denying.metadata.name}" denies app "${app.name}"` } : null;
}

export function checkAppAccess(roles: Role[], traits: Traits, app: App): Decision {
  const denied = appDenial(roles, traits, app);
  if (denied) return denied;
  const allowing = roles.find((r) => matchLabels(r.spec.allow?.app_labels, app.labels, traits, "allow"));
  return allowing
    ? { allowed: true, reason: `role "${allowing.metadata.name}" allows app "${app.name}"` }
    : { allowed: false, reason: `no role allows app "${app.name}"` };
}

/**
 * The app and the Azure identity must be allowed by the same role (a role that
 * grants an identity for dev apps does not grant it for prod apps); any deny wins.
 */
export function checkAzureIdentity(roles: Role[], traits: Traits, app: App, identity: string): Decision {
  const appDecision = checkAppAccess(roles, traits, app);
  if (!appDecision.allowed) return appDecision;
  const denied = unreadable(identity) ?? identityDenial(roles, traits, identity);
  if (denied) return denied;
  const [allowing] = rolesAllowingIdentity(roles, traits, app, identity);
  return allowing
    ? { allowed: true, reason: `role "${allowing.metadata.name}" allows Azure identity "${identity}" on app "${app.name}"` }
    : { allowed: false, reason: `no role allows Azure identity "${identity}" on app "${app.name}"` };
}

/** The roles that allow this identity on this app (its labels): the allow side alone, denials aside. */
export function rolesAllowingIdentity(roles: Role[], traits: Traits, app: App, identity: string): Role[] {
  const key = identityKey(identity);
  if (!key) return [];
  return roles.filter((r) => matchLabels(r.spec.allow?.app_labels, app.labels, traits, "allow") && expandAllow(r.spec.allow?.azure_identities, traits).some((id) => id !== "*" && identityKey(id) === key));
}

/** A role denying this identity (or every identity), as a refusal; null when none does. */
function identityDenial(roles: Role[], traits: Traits, identity: string): Decision | null {
  const denied = deniedIdentities(roles, traits);
  if (denied.all) return { allowed: false, reason: denied.all };
  const byDeny = denied.ids.get(identityKey(identity) ?? "");
  return byDeny ? { allowed: false, reason: `role "${byDeny}" denies Azure identity "${identity}"` } : null;
}

/**
 * The denials alone: a role denying the app (its labels) or the identity.
 * An access grant goes around the allows, never around these: deny wins.
 */
export function checkDenials(roles: Role[], traits: Traits, app: App, identity: string): Decision {
  const appDenied = appDenial(roles, traits, app);
  if (appDenied) return appDenied;
  const denied = unreadable(identity) ?? identityDenial(roles, traits, identity);
  if (denied) return denied;
  return { allowed: true, reason: "no role denies it" };
}

function ruleMatches(rules: Rule[] | undefined, resource: string, verb: string): boolean {
  return (rules ?? []).some((r) => (r.resources.includes("*") || r.resources.includes(resource)) && (r.verbs.includes("*") || r.verbs.includes(verb)));
}

/** Admin API authorisation from `rules`: a deny rule wins over any allow rule. */
export function checkRule(roles: Role[], resource: string, verb: string): Decision {
  const denying = roles.find((r) => ruleMatches(r.spec.deny?.rules, resource, verb));
  if (denying) return { allowed: false, reason: `role "${denying.metadata.name}" denies ${verb} on ${resource}` };
  const allowing = roles.find((r) => ruleMatches(r.spec.allow?.rules, resource, verb));
  return allowing
    ? { allowed: true, reason: `role "${allowing.metadata.name}" allows ${verb} on ${resource}` }
    : { allowed: false, reason: `access denied to perform action "${verb}" on "${resource}"` };
}

/** Certificates live no longer than the smallest max_session_ttl of the user's roles (12h when unset). */
export function sessionTtlMs(roles: Role[]): number {
  let ttl = Infinity;
  for (const role of roles) {
    const raw = role.spec.options?.max_session_ttl;
    ttl = Math.min(ttl, raw ? parseDuration(raw, `role ${role.metadata.name}: spec.options.max_session_ttl`) : DEFAULT_SESSION_TTL_MS);
  }
  return ttl === Infinity ? DEFAULT_SESSION_TTL_MS : ttl;
}
