/**
 * A bot's join token: which CI runs may join as which bot, in Teleport's
 * provision token shape (`kind: token`, `version: v2`, `spec.join_method`
 * and `spec.<method>.allow`). Its name is not a secret: a run proves where
 * it comes from with its CI's own signed OIDC token, which the proxy checks
 * against the issuer's keys and these allow rules (proxy/bots/). Agents'
 * join tokens stay secrets (`admin tokens add`); both are joined through
 * the one join path (proxy/join.ts). Pure: schema and names.
 *
 *   kind: token
 *   version: v2
 *   metadata: { name: deploy-prod, expires: 2027-01-01T00:00:00Z }
 *   spec:
 *     roles: [Bot]
 *     bot_name: deploy-prod
 *     join_method: github
 *     github:
 *       allow:
 *         - { repository: acme/infra, ref: refs/heads/main, environment: production }
 */
import { z } from "zod";
import { BOT_NAME } from "./user.ts";

export const JOIN_METHODS = ["github", "azure_devops", "gitlab", "kubernetes"] as const;
export type JoinMethod = (typeof JOIN_METHODS)[number];

/** 1-63 characters: never the 64 hex digits of an agent token's hash, so the two never share a name. */
export const JOIN_TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

const value = z.string().min(1).max(256).regex(/^[^\x00-\x1f\x7f]+$/, "must be printable text");
/** A numeric ID (a repository's, a project's, a pipeline definition's), as a string or a YAML number; kept as text. */
const id = z.union([z.string().regex(/^[0-9]{1,20}$/, "must be a numeric ID"), z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)]).transform(String);
const host = z.string().regex(/^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$/, "must be a host name (and port), without https://");
/** The audience the CI token must carry, when it is not the cluster's (bots.audience). */
const audience = value.optional();

/** A rule matches a run when every field it names equals the token's claim (exactly; no patterns). */
const rules = <S extends z.ZodRawShape>(shape: S, anchors: (keyof S & string)[] | ((r: Record<string, unknown>) => boolean), what: string) =>
  z
    .array(
      z.strictObject(shape).refine((r) => (typeof anchors === "function" ? anchors(r as Record<string, unknown>) : anchors.some((a) => (r as Record<string, unknown>)[a] !== undefined)), {
        message: typeof anchors === "function" ? what : `each rule names at least one of ${anchors.join(", ")}: ${what}`,
      }),
    )
    .min(1, "at least one allow rule")
    .max(64);

export const githubRuleShape = {
  sub: value.optional(),
  repository: value.optional(),
  /** The repository's numeric ID: a repository deleted or renamed and re-created under its name has another. */
  repository_id: id.optional(),
  repository_owner: value.optional(),
  repository_owner_id: id.optional(),
  ref: value.optional(),
  ref_type: z.enum(["branch", "tag"]).optional(),
  environment: value.optional(),
  /** The workflow's display name (its `name:`), which whoever can push a workflow chooses: never an anchor. */
  workflow: value.optional(),
  /** The workflow file and ref: OWNER/REPO/.github/workflows/FILE@REF. */
  workflow_ref: value.optional(),
  job_workflow_ref: value.optional(),
  job_workflow_sha: value.optional(),
  actor: value.optional(),
  event_name: value.optional(),
};

export const azureDevopsRuleShape = {
  sub: value.optional(),
  project_name: value.optional(),
  pipeline_name: value.optional(),
  project_id: value.optional(),
  /** The pipeline definition's numeric ID: unique in its project, where a pipeline's name is unique only in its folder. */
  definition_id: id.optional(),
  repository_uri: value.optional(),
  repository_version: value.optional(),
  repository_ref: value.optional(),
  service_connection: value.optional(),
};

export const gitlabRuleShape = {
  sub: value.optional(),
  project_path: value.optional(),
  /** The project's and its group's numeric IDs: a path re-created by someone else has others. */
  project_id: id.optional(),
  namespace_path: value.optional(),
  namespace_id: id.optional(),
  pipeline_source: value.optional(),
  environment: value.optional(),
  environment_protected: z.boolean().optional(),
  ref: value.optional(),
  ref_type: z.enum(["branch", "tag"]).optional(),
  ref_protected: z.boolean().optional(),
  user_login: value.optional(),
};

export const kubernetesRuleShape = {
  /** namespace:name, as Teleport writes it. */
  service_account: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, "must be namespace:name").optional(),
  namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a namespace name").optional(),
};

/**
 * An Azure DevOps rule's anchor: a pipeline definition (definition_id) or a
 * service connection, in a named project. A pipeline's name (pipeline_name,
 * a pipeline's sub p://ORG/PROJECT/NAME) is unique only within its folder,
 * so it narrows a rule but anchors none; a definition ID alone is a number
 * every project has.
 */
function adoAnchored(r: Record<string, unknown>): boolean {
  const project = r.project_id !== undefined || r.project_name !== undefined;
  if (project && (r.definition_id !== undefined || r.service_connection !== undefined)) return true;
  return typeof r.sub === "string" && r.sub.startsWith("sc://");
}

const methodSpecs = {
  github: z.strictObject({
    allow: rules(githubRuleShape, ["repository", "repository_id", "repository_owner", "repository_owner_id", "workflow_ref", "sub"], "without one, any repository on GitHub could join"),
    /** GitHub Enterprise Server: its issuer is https://HOST/_services/token. */
    enterprise_server_host: host.optional(),
    /** An enterprise's own issuer on github.com: https://token.actions.githubusercontent.com/SLUG. */
    enterprise_slug: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9-]{0,99}$/, "must be the enterprise's slug").optional(),
    audience,
  }),
  azure_devops: z.strictObject({
    /** The organisation's UUID: its issuer is https://vstoken.dev.azure.com/ORGANIZATION_ID. */
    organization_id: z.string().regex(/^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$/, "must be the organisation's ID (a UUID)"),
    allow: rules(
      azureDevopsRuleShape,
      adoAnchored,
      "each rule names a project (project_id or project_name) and, in it, definition_id (a pipeline: its name is unique only in its folder) or service_connection, or a service connection's sub (sc://...): without one, any pipeline of the organisation, or any pipeline of that name, could join",
    ),
    audience,
  }),
  gitlab: z.strictObject({
    /** A self-managed GitLab's host (gitlab.com when absent). */
    domain: host.optional(),
    allow: rules(gitlabRuleShape, ["project_path", "project_id", "namespace_path", "namespace_id", "sub"], "without one, any project on the GitLab instance could join"),
    audience,
  }),
  kubernetes: z.strictObject({
    /** Only `oidc`: the cluster's service account issuer, read by OIDC discovery and its JWKS. */
    type: z.literal("oidc").default("oidc"),
    oidc: z.strictObject({ issuer: z.string().regex(/^https:\/\/[^\s]+$/, "must be the cluster's issuer URL, https://...") }),
    allow: rules(kubernetesRuleShape, ["service_account", "namespace"], "without one, any pod of the cluster could join"),
    audience,
  }),
};

export const joinTokenSchema = z
  .strictObject({
    kind: z.literal("token"),
    version: z.literal("v2", { message: "version must be v2" }),
    metadata: z.strictObject({
      name: z.string().regex(JOIN_TOKEN_NAME, "name must be 1-63 letters, digits, '.', '_' or '-'"),
      description: z.string().max(1024).optional(),
      labels: z.record(z.string(), z.string()).optional(),
      /** After this time the token joins no bot (and renews none). */
      expires: z.iso.datetime({ offset: true, message: "expires must be a time such as 2027-01-01T00:00:00Z" }).optional(),
      revision: z.string().optional(),
    }),
    spec: z.strictObject({
      roles: z.array(z.string()).refine((r) => r.length === 1 && r[0].toLowerCase() === "bot", 'roles must be [Bot]: named join tokens join bots (agents join with azgate admin tokens add)'),
      bot_name: z.string().regex(BOT_NAME, "bot_name must be a bot's name (azgate admin bots ls)"),
      join_method: z.enum(JOIN_METHODS, { message: `join_method must be one of ${JOIN_METHODS.join(", ")}` }),
      github: methodSpecs.github.optional(),
      azure_devops: methodSpecs.azure_devops.optional(),
      gitlab: methodSpecs.gitlab.optional(),
      kubernetes: methodSpecs.kubernetes.optional(),
    }),
  })
  .superRefine((t, ctx) => {
    for (const m of JOIN_METHODS) {
      const given = t.spec[m] !== undefined;
      if (m === t.spec.join_method && !given) ctx.addIssue({ code: "custom", path: ["spec", m], message: `join_method ${m} needs spec.${m} with its allow rules` });
      if (m !== t.spec.join_method && given) ctx.addIssue({ code: "custom", path: ["spec", m], message: `spec.${m} is for join_method ${m}, but join_method is ${t.spec.join_method}` });
    }
  });

/** Fields that name a repository or project by its ID, which a name re-registered by someone else does not have. */
const ID_ANCHORS: Partial<Record<JoinMethod, string[]>> = { github: ["repository_id", "repository_owner_id"], gitlab: ["project_id", "namespace_id"] };

/** What \`admin create\` warns of in a valid join token: rules anchored by names only. */
export function joinTokenWarnings(t: JoinToken): string[] {
  const anchors = ID_ANCHORS[t.spec.join_method];
  const spec = t.spec[t.spec.join_method] as { allow: Record<string, unknown>[] } | undefined;
  if (!anchors || !spec) return [];
  return spec.allow.flatMap((rule, i) =>
    anchors.some((a) => rule[a] !== undefined)
      ? []
      : [`join token "${t.metadata.name}" rule ${i + 1} names no ${anchors.join(" or ")}: a ${t.spec.join_method === "github" ? "repository" : "project"} deleted or renamed and re-created under the same name by someone else would match it (docs/bots.md)`],
  );
}

export type JoinToken = z.infer<typeof joinTokenSchema>;
export type GithubSpec = z.infer<typeof methodSpecs.github>;
export type AzureDevopsSpec = z.infer<typeof methodSpecs.azure_devops>;
export type GitlabSpec = z.infer<typeof methodSpecs.gitlab>;
export type KubernetesSpec = z.infer<typeof methodSpecs.kubernetes>;
