/**
 * docs/reference/configuration.md, generated from the configuration's schema
 * (schema.ts: each key's type, default and description) and the environment
 * variables that set keys (ENV_FIELDS in load.ts). `npm run docs` writes the
 * page; test/docs-reference.test.ts fails when it is stale.
 */
import { z } from "zod";
import { configSchema } from "./schema.ts";
import { ENV_FIELDS } from "./load.ts";

/** The part of JSON Schema that zod writes for this schema. */
interface Node {
  type?: string;
  /** A name for the type, where schema.ts gives one (duration, host:port). */
  title?: string;
  const?: unknown;
  enum?: unknown[];
  default?: unknown;
  description?: string;
  properties?: Record<string, Node>;
  additionalProperties?: Node | boolean;
  items?: Node;
  anyOf?: Node[];
  oneOf?: Node[];
  minimum?: number;
  maximum?: number;
}

interface Row {
  key: string;
  type: string;
  default: string;
  description: string;
}

const code = (v: unknown) => "`" + (typeof v === "string" ? v : JSON.stringify(v)) + "`";

function typeOf(n: Node): string {
  if (n.title) return n.title;
  if (n.const !== undefined) return code(n.const);
  if (n.enum) return n.enum.map(code).join(" or ");
  if (n.anyOf) return n.anyOf.some((a) => a.type === "boolean") ? "boolean" : n.anyOf.map(typeOf).join(", or ");
  if (n.type === "array") return `list of ${n.items ? typeOf(n.items).replace(/^string$/, "strings") : "values"}`;
  if (n.type === "integer") return n.minimum !== undefined && n.maximum !== undefined ? `integer, ${n.minimum} to ${n.maximum}` : "integer";
  if (n.type === "object" && !n.properties && typeof n.additionalProperties === "object") return `map of ${typeOf(n.additionalProperties).replace(/^string$/, "strings")}`;
  return n.type ?? "any";
}

/**
 * A row per key, depth first; an object's keys below it, a list of objects'
 * keys as `key[].name`, a union's keys merged. Defaults are what parsing an
 * empty configuration gives (zod's JSON Schema leaves out a default in front
 * of a transform), else the schema's.
 */
function rows(n: Node, key: string, defaults: unknown): Row[] {
  const own = (type: string): Row => ({ key, type, default: shownDefault(key.includes("[]") ? n.default : valueAt(defaults, key) ?? n.default), description: n.description ?? "" });
  const below = (child: Node, k: string) => rows(child, key ? `${key}.${k}` : k, defaults);
  if (n.oneOf) return [...(n.description ? [own("one of the shapes below")] : []), ...mergeVariants(n.oneOf.map((v) => rows(v, key, defaults)))];
  if (n.properties) return [...(key && n.description ? [own("object")] : []), ...Object.entries(n.properties).flatMap(([k, v]) => below(v, k))];
  if (n.type === "array" && n.items?.properties) return [own("list of objects"), ...rows({ ...n.items, description: undefined }, `${key}[]`, defaults)];
  if (n.type === "array" && n.items?.oneOf) return [own("list of objects, each one of the shapes below"), ...mergeVariants(n.items.oneOf.map((v) => rows(v, `${key}[]`, defaults)))];
  return [own(typeOf(n))];
}

function valueAt(tree: unknown, key: string): unknown {
  return key.split(".").reduce<unknown>((node, k) => (node && typeof node === "object" ? (node as Record<string, unknown>)[k] : undefined), tree);
}

/** Scalars and lists; an object's default is its keys' defaults, shown on their rows. */
const shownDefault = (v: unknown) => (v === undefined || (typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length > 0) ? "" : code(v));

/** The shapes of a union (storage: file or postgres) as one set of keys: the discriminator's values joined, each key once. */
function mergeVariants(variants: Row[][]): Row[] {
  const merged = new Map<string, Row>();
  for (const row of variants.flat()) {
    const seen = merged.get(row.key);
    if (!seen) merged.set(row.key, { ...row });
    else {
      // A key the shapes share (a name, a CA file) reads once where they say the same.
      const type = seen.type.split(" or ").includes(row.type) ? seen.type : `${seen.type} or ${row.type}`;
      const description = !row.description || seen.description.includes(row.description) ? seen.description : [seen.description, row.description].filter(Boolean).join(" ");
      merged.set(row.key, { ...seen, type, description });
    }
  }
  return [...merged.values()];
}

/** A table cell: no pipe splits it, no <...> reads as HTML. */
const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/\n/g, " ");

export function configurationMarkdown(): string {
  const schema = z.toJSONSchema(configSchema, { io: "input", unrepresentable: "any" }) as Node;
  const env = new Map(Object.entries(ENV_FIELDS).map(([name, keys]) => [keys.join("."), name]));
  const table = rows(schema, "", configSchema.parse({})).map((r) => `| \`${r.key}\` | ${cell(r.type)} | ${cell(r.default)} | ${env.has(r.key) ? `\`${env.get(r.key)}\`` : ""} | ${cell(r.description)} |`);
  return [
    "# Configuration reference",
    "",
    "Every key of the configuration, generated from its schema (`src/config/schema.ts`) and the environment variables that",
    "set keys (`ENV_FIELDS` in `src/config/load.ts`) by `npm run docs`; `test/docs-reference.test.ts` fails when this page is stale.",
    "",
    "A YAML file (`azgate start --config FILE`), then `AZGATE_*` environment variables, then flags (`azgate start --help`,",
    "[CLI reference](cli.md#azgate-start)); a problem is reported with the key's name. An annotated example is in",
    "[deploying](../deploying.md#configuration). A duration is written like `30m`, `1h` or `24h`.",
    "",
    "| key | type | default | environment | what it sets |",
    "|---|---|---|---|---|",
    ...table,
    "",
  ].join("\n");
}
