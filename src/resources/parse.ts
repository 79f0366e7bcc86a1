import { parseAllDocuments } from "yaml";
import { AzgateError } from "../errors/index.ts";
import type { Role } from "../rbac/types.ts";
import { formatIssues } from "./issues.ts";
import { ignoredRoleFields, roleSchema } from "./role.ts";
import { userSchema, type User } from "./user.ts";
import { githubSchema, oidcSchema, samlSchema, type Connector } from "./connector.ts";
import { notificationTargetSchema, type NotificationTarget } from "./notification-target.ts";
import { accessRuleSchema, type AccessRule } from "./access-rule.ts";
import { joinTokenSchema, joinTokenWarnings, type JoinToken } from "./join-token.ts";

export type Resource = Role | User | Connector | NotificationTarget | AccessRule | JoinToken;

export interface ParsedResources {
  resources: Resource[];
  warnings: string[];
}

const SCHEMAS = { role: roleSchema, user: userSchema, github: githubSchema, oidc: oidcSchema, saml: samlSchema, notification_target: notificationTargetSchema, access_rule: accessRuleSchema, token: joinTokenSchema } as const;
export const CREATABLE_KINDS = Object.keys(SCHEMAS);

/**
 * Parses one or more YAML (or JSON) documents and validates every one before
 * anything is written, so a bad document leaves nothing half-applied. Errors
 * name the source, the document and the field.
 */
/**
 * What loading would refuse in a resource as it is stored (the backend keeps
 * what an earlier release accepted): its problems, one a line; none when it
 * loads.
 */
export function storedResourceProblems(value: unknown): string[] {
  const kind = (value as { kind?: unknown } | null)?.kind;
  if (typeof kind !== "string" || !Object.hasOwn(SCHEMAS, kind)) return [`unknown kind ${JSON.stringify(kind)}`];
  const result = SCHEMAS[kind as keyof typeof SCHEMAS].safeParse(value);
  return result.success ? [] : formatIssues(result.error.issues);
}

export function parseResources(text: string, source: string): ParsedResources {
  const docs = parseAllDocuments(text, { uniqueKeys: true });
  const problems: string[] = [];
  const resources: Resource[] = [];
  const warnings: string[] = [];
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, i) => {
    const where = list.length > 1 ? `${source}: document ${i + 1}` : source;
    if (doc.errors.length > 0) {
      const e = doc.errors[0];
      const line = e.linePos?.[0] ? ` (line ${e.linePos[0].line}, column ${e.linePos[0].col})` : "";
      problems.push(`${where}: malformed YAML${line}: ${e.message.split("\n")[0]}`);
      return;
    }
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) return; // empty document between separators
    if (typeof value !== "object" || Array.isArray(value)) {
      problems.push(`${where}: expected a resource (a mapping with kind, version, metadata, spec)`);
      return;
    }
    const kind = (value as { kind?: unknown }).kind;
    if (typeof kind !== "string" || !(kind in SCHEMAS)) {
      problems.push(`${where}: kind: ${kind === undefined ? "missing" : `unknown kind ${JSON.stringify(kind)}`}; supported kinds: ${CREATABLE_KINDS.join(", ")}`);
      return;
    }
    const result = SCHEMAS[kind as keyof typeof SCHEMAS].safeParse(value);
    if (!result.success) {
      const name = (value as { metadata?: { name?: string } }).metadata?.name;
      const label = name ? `${where} (${kind} "${name}")` : where;
      for (const line of formatIssues(result.error.issues)) problems.push(`${label}: ${line}`);
      return;
    }
    const resource = result.data as Resource;
    if (resource.kind === "role") {
      const ignored = ignoredRoleFields(resource);
      if (ignored.length) warnings.push(`role "${resource.metadata.name}": ignored fields not used by azgate: ${ignored.join(", ")}`);
    }
    if (resource.kind === "token") warnings.push(...joinTokenWarnings(resource));
    resources.push(resource);
  });
  if (problems.length > 0) throw new AzgateError("resource_invalid", problems.join("\n"));
  if (resources.length === 0) throw new AzgateError("resource_invalid", `${source}: no resources found`);
  return { resources, warnings };
}
