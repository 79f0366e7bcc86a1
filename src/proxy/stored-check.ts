/**
 * At start, the resources an earlier release stored that this one would not
 * load (a pattern RE2 cannot read, one past its size, a scope regex with
 * anchors inside...). The proxy reads stored resources as they are, and
 * serves with them: each matcher takes what it cannot read as matching in a
 * deny and nothing in an allow (util/regex.ts). An operator is told which,
 * and why, so that an allow that stopped opening anything is found before
 * its users do.
 */
import { storedResourceProblems } from "../resources/parse.ts";
import type { ProxyContext } from "./context.ts";
import { KEYS } from "./keys.ts";

/** Kinds whose rules hold patterns, by where they are stored. */
const STORED = [KEYS.roles, KEYS.accessRules, KEYS.notificationTargets, KEYS.connectors("github"), KEYS.connectors("oidc"), KEYS.connectors("saml")];

/** One line per stored resource this release would not load: kind, name and every problem. */
export async function storedResourcesNotLoading(ctx: ProxyContext): Promise<string[]> {
  const lines: string[] = [];
  for (const prefix of STORED) {
    for (const { key, value } of await ctx.backend.list<{ kind?: unknown; metadata?: { name?: unknown } } | null>(prefix)) {
      // Whatever is stored there, the check says so and the proxy starts.
      let problems: string[];
      try {
        problems = storedResourceProblems(value);
      } catch (e) {
        problems = [`cannot be checked: ${(e as Error).message}`];
      }
      if (problems.length) lines.push(`${String(value?.kind ?? "resource")} "${String(value?.metadata?.name ?? key)}": ${problems.join("; ")}`);
    }
  }
  return lines;
}
