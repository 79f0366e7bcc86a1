/**
 * GitLab CI: a job's `id_tokens:` (with `aud:` the cluster's name) are
 * environment variables signed by the instance (https://gitlab.com, or a
 * self-managed `domain`). Rules name project_path, namespace_path, ref,
 * ref_type, ref_protected, environment, environment_protected,
 * pipeline_source, user_login or sub; GitLab writes its booleans as the
 * strings "true" and "false", which a rule's true and false match.
 *
 * GitLab's `ref` is bare for branches and tags alike (`main` may be either),
 * so a rule that names `ref` without `ref_type` means `ref_type: branch`: a
 * tag anyone may push named `main` does not match a rule written for the
 * branch. A rule for a tag says `ref_type: tag`.
 */
import { gitlabRuleShape, type GitlabSpec } from "../../../resources/join-token.ts";
import { claim, keptFacts, type MethodImpl } from "../rules.ts";

export const gitlab: MethodImpl<GitlabSpec> = {
  method: "gitlab",
  issuer: (s) => `https://${s.domain ?? "gitlab.com"}`,
  defaultAudience: (cluster) => cluster,
  // A job's ID token lives as long as the job may (its timeout): its exp decides.
  singleUse: true,
  ruleFields: Object.keys(gitlabRuleShape),
  field: (claims, name) => claim(claims, name),
  extra(rule, run) {
    if (rule.ref === undefined || rule.ref_type !== undefined) return null;
    const type = run.ref_type;
    return type === "branch" ? null : `a rule naming ref without ref_type matches a branch only (this run's ref_type is ${type === undefined ? "missing" : JSON.stringify(type)}); a rule for a tag names ref_type: tag`;
  },
  facts: (c) => keptFacts(["project_path", "ref", "sha", "pipeline_id", "job_id", "user_login", "environment", "pipeline_source"].map((k) => [k, claim(c, k)])),
};
