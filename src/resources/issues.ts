import type { z } from "zod";

/**
 * Field names people write by mistake (often from another product's docs),
 * keyed by the list they appear in: the field they meant.
 */
const MEANT: Record<string, Record<string, string>> = {
  claims_to_roles: { name: "claim", claims: "claim", values: "value", role: "roles" },
  attributes_to_roles: { attribute: "name", values: "value", role: "roles" },
  teams_to_roles: { org: "organization", organisation: "organization", teams: "team", role: "roles" },
  allow: { azure_identity: "azure_identities", app_label: "app_labels", rule: "rules" },
  deny: { azure_identity: "azure_identities", app_label: "app_labels", rule: "rules" },
};

function didYouMean(path: PropertyKey[], key: string): string {
  const list = [...path].reverse().find((p) => typeof p === "string" && MEANT[p as string]) as string | undefined;
  const meant = list ? MEANT[list][key] : undefined;
  return meant ? `; did you mean "${meant}"?` : "";
}

/** Turns zod issues into "field: reason" lines a person can act on. */
export function formatIssues(issues: z.core.$ZodIssue[], prefix = ""): string[] {
  return issues.map((i) => {
    const field = [prefix, ...i.path.map((p) => (typeof p === "number" ? `[${p}]` : String(p)))]
      .filter(Boolean)
      .join(".")
      .replace(/\.\[/g, "[");
    if (i.code === "unrecognized_keys") {
      return i.keys.map((k) => `${field ? field + "." : ""}${k}: unknown field${didYouMean(i.path, k)}`).join("; ");
    }
    return `${field || "(document)"}: ${i.message}`;
  });
}
