/**
 * GitHub Actions: a job with `permissions: id-token: write` asks the runner
 * (ACTIONS_ID_TOKEN_REQUEST_URL with &audience=) for a token signed by
 * https://token.actions.githubusercontent.com (an enterprise's own slug, or
 * a GitHub Enterprise Server's /_services/token). Rules name repository,
 * repository_owner, ref, ref_type, environment, workflow, job_workflow_ref,
 * actor, event_name or sub.
 *
 * A pull request's run (pull_request, pull_request_target: the run of a
 * fork's pull request among them) matches only a rule that names that event:
 * a rule written for pushes to main must not open to whoever opens a pull
 * request. A token without an event_name matches nothing.
 */
import { githubRuleShape, type GithubSpec } from "../../../resources/join-token.ts";
import { claim, keptFacts, type MethodImpl } from "../rules.ts";

export const GITHUB_ISSUER = "https://token.actions.githubusercontent.com";

export const github: MethodImpl<GithubSpec> = {
  method: "github",
  issuer: (s) => (s.enterprise_server_host ? `https://${s.enterprise_server_host}/_services/token` : s.enterprise_slug ? `${GITHUB_ISSUER}/${s.enterprise_slug}` : GITHUB_ISSUER),
  defaultAudience: (cluster) => cluster,
  // GitHub's tokens live minutes; the runner hands out a fresh one on every request.
  maxAgeMs: 10 * 60_000,
  singleUse: true,
  ruleFields: Object.keys(githubRuleShape),
  field: (claims, name) => claim(claims, name),
  extra(rule, run) {
    const event = run.event_name;
    if (event === undefined) return "this run's token names no event_name";
    if (event.startsWith("pull_request") && rule.event_name !== event) return `a ${event} run (a pull request's, perhaps from a fork) matches only a rule that names event_name: ${event}`;
    return null;
  },
  facts: (c) =>
    keptFacts(["repository", "ref", "sha", "run_id", "run_attempt", "workflow", "actor", "event_name", "environment", "job_workflow_ref"].map((k) => [k, claim(c, k)])),
};
