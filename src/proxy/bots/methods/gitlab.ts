/**
 * GitLab CI: a job's `id_tokens:` (with `aud:` the cluster's name) are
 * environment variables signed by the instance (https://gitlab.com, or a
 * self-managed `domain`). Rules name project_path, namespace_path, ref,
 * ref_type, ref_protected, environment, environment_protected,
 * pipeline_source, user_login or sub; GitLab writes its booleans as the
 * strings "true" and "false", which a rule's true and false match.
 */
import type { GitlabSpec } from "../../../resources/join-token.ts";
import { claim, keptFacts, type MethodImpl } from "../rules.ts";

export const gitlab: MethodImpl<GitlabSpec> = {
  method: "gitlab",
  issuer: (s) => `https://${s.domain ?? "gitlab.com"}`,
  defaultAudience: (cluster) => cluster,
  // A job's ID token lives as long as the job may (its timeout): its exp decides.
  singleUse: true,
  field: (claims, name) => claim(claims, name),
  facts: (c) => keptFacts(["project_path", "ref", "sha", "pipeline_id", "job_id", "user_login", "environment", "pipeline_source"].map((k) => [k, claim(c, k)])),
};
