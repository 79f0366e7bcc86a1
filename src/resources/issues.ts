import type { z } from "zod";

/** Turns zod issues into "field: reason" lines a person can act on. */
export function formatIssues(issues: z.core.$ZodIssue[], prefix = ""): string[] {
  return issues.map((i) => {
    const field = [prefix, ...i.path.map((p) => (typeof p === "number" ? `[${p}]` : String(p)))]
      .filter(Boolean)
      .join(".")
      .replace(/\.\[/g, "[");
    if (i.code === "unrecognized_keys") {
      return i.keys.map((k) => `${field ? field + "." : ""}${k}: unknown field`).join("; ");
    }
    return `${field || "(document)"}: ${i.message}`;
  });
}
