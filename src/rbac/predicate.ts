/**
 * Teleport's predicate subset for access requests, so its role files load
 * and mean here what they mean there: `thresholds[].filter` (which reviews
 * count toward a threshold) and `review_requests.where` (which requests a
 * reviewer may review).
 *
 *   contains(reviewer.roles, "prod-approver") && !equals(request.reason, "")
 *   regexp.match(request.roles, "^db-.*$") || request.reason == "incident"
 *   contains(reviewer.traits["team"], "sre")       # or reviewer.traits.team
 *
 * Functions: equals, contains, regexp.match; operators ==, !=, &&, ||, !,
 * parentheses; strings in "double quotes" (backslash escapes) or `backquotes`.
 * Checked when the role is loaded: an unknown name, a bad regular
 * expression or an expression that is not true-or-false is refused there, so
 * a typo can never silently widen who may approve.
 *
 * `request.azure_identity(ies)` compare as Azure compares identities, in
 * their canonical form (src/azure/resource-id.ts): `==`, `!=`, `equals` and
 * `contains` on both sides' canonical forms, `regexp.match` ignoring case.
 * Otherwise `!= "/.../teleport-contributor"` would hold for the contributor
 * requested as `.../Teleport-Contributor`.
 */
import { identityKey } from "../azure/resource-id.ts";
import { compilePattern, patternProblem } from "../util/regex.ts";


export type Value = string | string[] | Record<string, string[]> | boolean;
type Type = "string" | "list" | "map" | "bool";

/** The names an expression may read, with their types. */
const NAMES: Record<string, Type> = {
  "reviewer.name": "string",
  "reviewer.roles": "list",
  "reviewer.traits": "map",
  "review.reason": "string",
  "user.roles": "list",
  "user.traits": "map",
  "request.user": "string",
  "request.app": "string",
  "request.azure_identity": "string",
  "request.azure_identities": "list",
  "request.roles": "list",
  "request.reason": "string",
  "request.ticket": "string",
  "request.suggested_reviewers": "list",
  "request.system_annotations": "map",
};

export type Vars = Partial<Record<keyof typeof NAMES, Value>>;

/** Names whose values are Azure identity IDs. */
const IDENTITY_NAMES = new Set(["request.azure_identity", "request.azure_identities"]);
const namesIdentity = (n: Node | undefined) => n?.k === "name" && IDENTITY_NAMES.has(n.name);
/** A value in canonical form where it is an identity ID; as it is otherwise. */
const canonical = (v: Value): Value => (typeof v === "string" ? (identityKey(v) ?? v) : Array.isArray(v) ? v.map((x) => identityKey(x) ?? x) : v);

type Node =
  | { k: "str"; v: string }
  | { k: "name"; name: string; key?: string }
  | { k: "not"; e: Node }
  | { k: "and" | "or"; l: Node; r: Node }
  | { k: "eq" | "ne"; l: Node; r: Node }
  | { k: "call"; fn: "equals" | "contains" | "regexp.match"; args: Node[]; re?: string };

export class PredicateError extends Error {}

export interface Predicate {
  source: string;
  test(vars: Vars): boolean;
}

/**
 * Parses and checks an expression; throws PredicateError saying what is
 * wrong and where. `roots` limits what it may read (an auto-review rule has
 * no reviewer: `["request", "user"]`).
 */
export function compilePredicate(source: string, roots?: string[]): Predicate {
  const tokens = tokenize(source);
  let pos = 0;
  const peek = () => tokens[pos]?.t;
  const fail = (what: string): never => {
    throw new PredicateError(`${what} at character ${(tokens[pos]?.at ?? source.length) + 1} of ${JSON.stringify(source)}`);
  };
  const take = (t: string) => (peek() === t ? (pos++, true) : false);
  const expect = (t: string) => take(t) || fail(`expected ${t}`);

  const or = (): Node => {
    let l = and();
    while (take("||")) l = { k: "or", l, r: and() };
    return l;
  };
  const and = (): Node => {
    let l = unary();
    while (take("&&")) l = { k: "and", l, r: unary() };
    return l;
  };
  const unary = (): Node => (take("!") ? { k: "not", e: unary() } : comparison());
  const comparison = (): Node => {
    const l = primary();
    if (take("==")) return { k: "eq", l, r: primary() };
    if (take("!=")) return { k: "ne", l, r: primary() };
    return l;
  };
  const primary = (): Node => {
    const tok = tokens[pos];
    if (!tok) return fail("unexpected end");
    if (take("(")) {
      const e = or();
      expect(")");
      return e;
    }
    if (tok.t === "str") return (pos++, { k: "str", v: tok.v! });
    if (tok.t !== "ident") return fail(`unexpected ${JSON.stringify(tok.v ?? tok.t)}`);
    pos++;
    if (peek() === "(") {
      pos++;
      const args: Node[] = [];
      if (!take(")")) {
        do args.push(or());
        while (take(","));
        expect(")");
      }
      return call(tok.v!, args);
    }
    let name = tok.v!;
    let key: string | undefined;
    if (roots && !roots.includes(name.split(".")[0])) return fail(`${name} cannot be used here (only ${roots.map((r) => `${r}.*`).join(", ")})`);
    if (NAMES[name] === undefined) {
      // reviewer.traits.team is reviewer.traits["team"]
      const dot = name.lastIndexOf(".");
      if (dot > 0 && NAMES[name.slice(0, dot)] === "map") [name, key] = [name.slice(0, dot), name.slice(dot + 1)];
      else return fail(`unknown name ${name} (known: ${Object.keys(NAMES).join(", ")})`);
    }
    if (take("[")) {
      if (NAMES[name] !== "map" || key !== undefined) return fail(`${name} cannot be indexed`);
      const k = tokens[pos];
      if (k?.t !== "str") return fail("expected a quoted key");
      pos++;
      key = k.v;
      expect("]");
    }
    return { k: "name", name, key };
  };
  const call = (fn: string, args: Node[]): Node => {
    if (fn !== "equals" && fn !== "contains" && fn !== "regexp.match") return fail(`unknown function ${fn} (known: equals, contains, regexp.match)`);
    if (args.length !== 2) return fail(`${fn} takes two arguments`);
    if (fn === "regexp.match") {
      const re = args[1];
      if (re.k !== "str") return fail("regexp.match takes a quoted regular expression");
      const problem = patternProblem(re.v);
      if (problem) return fail(`invalid regular expression ${JSON.stringify(re.v)} (${problem})`);
      return { k: "call", fn, args, re: re.v };
    }
    return { k: "call", fn, args };
  };

  const ast = or();
  if (pos < tokens.length) fail(`unexpected ${JSON.stringify(tokens[pos].v ?? tokens[pos].t)}`);
  const problem = typeProblem(ast);
  if (problem) throw new PredicateError(`${problem} in ${JSON.stringify(source)}`);
  return { source, test: (vars) => evaluate(ast, vars) === true };
}

function typeOf(n: Node): Type {
  switch (n.k) {
    case "str":
      return "string";
    case "name":
      return n.key !== undefined ? "list" : NAMES[n.name];
    default:
      return "bool";
  }
}

/** The first type mistake: a string where true-or-false is needed, contains on a non-list, and so on. */
function typeProblem(n: Node, want: Type | "value" = "bool"): string | null {
  const t = typeOf(n);
  if (want === "bool" && t !== "bool") return `${describe(n)} is not true or false`;
  if (want === "value" && t === "bool") return `${describe(n)} is true or false, not a value to compare`;
  switch (n.k) {
    case "not":
      return typeProblem(n.e);
    case "and":
    case "or":
      return typeProblem(n.l) ?? typeProblem(n.r);
    case "eq":
    case "ne":
      return typeProblem(n.l, "value") ?? typeProblem(n.r, "value");
    case "call": {
      const [a, b] = n.args;
      if (n.fn === "equals") return typeProblem(a, "value") ?? typeProblem(b, "value");
      if (typeOf(a) !== "list" && typeOf(a) !== "string") return `${n.fn} needs a list or a string first, not ${describe(a)}`;
      return typeOf(b) === "string" ? null : `${n.fn} needs a string second, not ${describe(b)}`;
    }
    default:
      return null;
  }
}

const describe = (n: Node) => (n.k === "str" ? JSON.stringify(n.v) : n.k === "name" ? n.name + (n.key !== undefined ? `[${JSON.stringify(n.key)}]` : "") : `a ${n.k} expression`);

function evaluate(n: Node, vars: Vars): Value {
  switch (n.k) {
    case "str":
      return n.v;
    case "name": {
      const v = vars[n.name as keyof Vars] ?? (NAMES[n.name] === "list" || n.key !== undefined ? [] : NAMES[n.name] === "map" ? {} : "");
      return n.key !== undefined ? ((v as Record<string, string[]>)[n.key] ?? []) : v;
    }
    case "not":
      return evaluate(n.e, vars) !== true;
    case "and":
      return evaluate(n.l, vars) === true && evaluate(n.r, vars) === true;
    case "or":
      return evaluate(n.l, vars) === true || evaluate(n.r, vars) === true;
    case "eq":
    case "ne": {
      const identities = namesIdentity(n.l) || namesIdentity(n.r);
      const [l, r] = [evaluate(n.l, vars), evaluate(n.r, vars)].map((v) => (identities ? canonical(v) : v));
      return same(l, r) === (n.k === "eq");
    }
    case "call": {
      const identities = n.args.some(namesIdentity);
      const a = identities ? canonical(evaluate(n.args[0], vars)) : evaluate(n.args[0], vars);
      const b = evaluate(n.args[1], vars) as string;
      if (n.fn === "equals") return same(a, identities ? canonical(b) : b);
      const list = typeof a === "string" ? [a] : (a as string[]);
      if (n.fn === "contains") return list.includes(identities ? (canonical(b) as string) : b);
      // RE2, linear (util/regex.ts); an identity compares without case, as sameIdentity does.
      const re = compilePattern(n.re!, { caseInsensitive: identities });
      return re !== null && list.some((x) => re.test(x));
    }
  }
}

function same(a: Value, b: Value): boolean {
  if (typeof a === "string" || typeof b === "string") return a === b;
  return JSON.stringify(a) === JSON.stringify(b);
}

interface Token {
  t: string;
  v?: string;
  at: number;
}

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const two = src.slice(i, i + 2);
    if (["&&", "||", "==", "!="].includes(two)) {
      out.push({ t: two, at: i });
      i += 2;
      continue;
    }
    if ("()[],!".includes(c)) {
      out.push({ t: c, at: i++ });
      continue;
    }
    if (c === '"' || c === "`") {
      const at = i++;
      let v = "";
      while (i < src.length && src[i] !== c) {
        if (c === '"' && src[i] === "\\" && i + 1 < src.length) i++;
        v += src[i++];
      }
      if (i >= src.length) throw new PredicateError(`unterminated string at character ${at + 1} of ${JSON.stringify(src)}`);
      i++;
      out.push({ t: "str", v, at });
      continue;
    }
    const word = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/.exec(src.slice(i));
    if (!word) throw new PredicateError(`unexpected ${JSON.stringify(c)} at character ${i + 1} of ${JSON.stringify(src)}`);
    out.push({ t: "ident", v: word[0], at: i });
    i += word[0].length;
  }
  return out;
}
