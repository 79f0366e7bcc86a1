/**
 * From what an identity provider said to roles and traits. Pure: OIDC claims
 * and SAML attributes both become external traits (so `{{external.NAME}}`
 * in roles expands to them), and the connector's mapping picks the roles.
 */
import { matchLabelValue } from "../rbac/labels.ts";
import { asciiLower } from "../util/ascii.ts";
import type { Traits } from "../rbac/types.ts";
import { TRAIT_LIMITS, traitNameOk, traitValueOk, USER_NAME } from "../resources/user.ts";

/**
 * How much of what an IdP says becomes traits (traits travel in every
 * certificate): the limits every user's traits have (resources/user.ts).
 * Here longer values, more values or more claims, and control characters,
 * are dropped rather than refused: one huge or hostile claim cannot make a
 * certificate that breaks every later request, nor fail the login.
 */
export { TRAIT_LIMITS };

/** Each claim as a list of strings; objects, nulls and values over the limits or with control characters are dropped (they cannot feed a template). */
export function claimsToTraits(claims: Record<string, unknown>): Traits {
  const traits: Traits = {};
  let count = 0;
  for (const [name, value] of Object.entries(claims)) {
    if (count >= TRAIT_LIMITS.traits || !traitNameOk(name)) continue;
    const list = (Array.isArray(value) ? value : [value])
      .filter((v) => ["string", "number", "boolean"].includes(typeof v))
      .map(String)
      .filter(traitValueOk)
      .slice(0, TRAIT_LIMITS.valuesPerTrait);
    if (list.length) {
      traits[name] = list;
      count++;
    }
  }
  return traits;
}

export interface TraitRule {
  /** The claim (OIDC) or attribute (SAML) name. */
  name: string;
  /** Literal, glob with `*`, or a regular expression in `^...$`. */
  value: string;
  roles: string[];
}

/** The roles of every rule one of whose trait values matches; in rule order, without repeats. */
export function rolesFromTraits(rules: TraitRule[], traits: Traits): string[] {
  const roles = new Set<string>();
  for (const rule of rules) {
    if ((traits[rule.name] ?? []).some((v) => matchLabelValue(rule.value, v))) for (const r of rule.roles) roles.add(r);
  }
  return [...roles];
}

export interface GithubTeam {
  organization: string;
  team: string;
}

/** GitHub: the roles of every (organization, team) pair the user is in; names compare case-insensitively, as GitHub's do. */
export function rolesFromTeams(rules: { organization: string; team: string; roles: string[] }[], teams: GithubTeam[]): string[] {
  const roles = new Set<string>();
  for (const rule of rules) {
    // ASCII letters only (util/ascii.ts), and the team pattern matched without case rather than lowered (a lowered \D is \d).
    const hit = teams.some((t) => asciiLower(t.organization) === asciiLower(rule.organization) && matchLabelValue(rule.team, t.team, { caseInsensitive: true }));
    if (hit) for (const r of rule.roles) roles.add(r);
  }
  return [...roles];
}

/**
 * The user name an SSO login takes: the identity provider's value as it is,
 * when it is a user name azgate allows; otherwise null, and the login is
 * refused with what to change (proxy/sso/finish.ts). Never cleaned or cut:
 * cleaning is many-to-one ("ops/lead@" and "ops_lead@" both became
 * "ops_lead@"), so whoever signed in first held the name and the other could
 * never sign in. Names as given are one per value, and the record is still
 * bound to the IdP's subject for the one conflict left (two people given the
 * very same name).
 */
export function ssoUserName(value: string): string | null {
  return USER_NAME.test(value) ? value : null;
}
