/**
 * A CI runner's token service, as a job step reaches it: GitHub Actions'
 * (GET ACTIONS_ID_TOKEN_REQUEST_URL&audience=..., bearer
 * ACTIONS_ID_TOKEN_REQUEST_TOKEN, answering {"value": JWT}) and Azure
 * DevOps' (POST SYSTEM_OIDCREQUESTURI?api-version=7.1[&serviceConnectionId=],
 * bearer SYSTEM_ACCESSTOKEN, answering {"oidcToken": JWT}). A test or the
 * demo registers a job with what its run is, and gets the environment the
 * job's steps would see; GitLab's ID tokens are environment variables
 * already, so they are signed directly. Served on the emulator's own
 * address (https://127.0.0.1:PORT/_runner/...).
 */
import { Hono, type Context } from "hono";
import { adoIssuer, ADO_AUDIENCE, ADO_ORGANIZATION_ID, type CiIssuers } from "./ci-issuers.ts";

export interface GithubRun {
  repository: string;
  /** The repository's and its owner's numeric IDs (stable across renames; a re-created repository of the same name has others). */
  repository_id: string;
  repository_owner_id: string;
  ref: string;
  environment?: string;
  event_name: string;
  actor: string;
  workflow: string;
  sha: string;
  run_id: string;
  run_attempt: string;
  /** Any other claim, as given (head_ref of a fork's pull request, say). */
  extra?: Record<string, unknown>;
}

export interface AzureDevopsRun {
  organization: string;
  organization_id: string;
  project: string;
  project_id: string;
  pipeline: string;
  definition_id: string;
  repository: string;
  ref: string;
  sha: string;
  run_id: string;
}

export interface GitlabRun {
  project_path: string;
  ref: string;
  ref_protected: boolean;
  environment?: string;
  sha: string;
  pipeline_id: string;
  job_id: string;
  user_login: string;
  pipeline_source: string;
}

/** acme/infra's repository ID and acme's owner ID on the emulated GitHub (the docs' and fixtures' rules pin them). */
export const ACME_INFRA_REPOSITORY_ID = "892712345";
export const ACME_OWNER_ID = "73125678";

const hex = (n: number) => Array.from(crypto.getRandomValues(new Uint8Array(n / 2)), (b) => b.toString(16).padStart(2, "0")).join("");
const runId = () => String(1_000_000 + Math.floor(Math.random() * 8_000_000));

export function githubClaims(given: Partial<GithubRun> = {}): Record<string, unknown> {
  const r: GithubRun = { repository: "acme/infra", repository_id: ACME_INFRA_REPOSITORY_ID, repository_owner_id: ACME_OWNER_ID, ref: "refs/heads/main", event_name: "push", actor: "octocat", workflow: "deploy", sha: hex(40), run_id: runId(), run_attempt: "1", ...given };
  const sub = r.environment ? `repo:${r.repository}:environment:${r.environment}` : r.event_name.startsWith("pull_request") ? `repo:${r.repository}:pull_request` : `repo:${r.repository}:ref:${r.ref}`;
  const workflowRef = `${r.repository}/.github/workflows/${r.workflow}.yml@${r.ref}`;
  return {
    sub,
    repository: r.repository,
    repository_id: r.repository_id,
    repository_owner: r.repository.split("/")[0],
    repository_owner_id: r.repository_owner_id,
    repository_visibility: "private",
    ref: r.ref,
    ref_type: r.ref.startsWith("refs/tags/") ? "tag" : "branch",
    sha: r.sha,
    run_id: r.run_id,
    run_number: "7",
    run_attempt: r.run_attempt,
    workflow: r.workflow,
    workflow_ref: workflowRef,
    job_workflow_ref: workflowRef,
    job_workflow_sha: r.sha,
    actor: r.actor,
    event_name: r.event_name,
    runner_environment: "github-hosted",
    ...(r.environment ? { environment: r.environment } : {}),
    ...r.extra,
  };
}

export function azureDevopsClaims(given: Partial<AzureDevopsRun> = {}): Record<string, unknown> {
  const r: AzureDevopsRun = { organization: "acme", organization_id: ADO_ORGANIZATION_ID, project: "infra", project_id: "271ef6f7-0000-4000-8000-00000000ad01", pipeline: "deploy", definition_id: "1", repository: "acme/infra", ref: "refs/heads/main", sha: hex(40), run_id: runId(), ...given };
  return {
    sub: `p://${r.organization}/${r.project}/${r.pipeline}`,
    org_id: r.organization_id,
    prj_id: r.project_id,
    def_id: r.definition_id,
    rpo_id: r.repository,
    rpo_uri: `https://github.com/${r.repository}.git`,
    rpo_ver: r.sha,
    rpo_ref: r.ref,
    run_id: r.run_id,
  };
}

export function gitlabClaims(given: Partial<GitlabRun> = {}): Record<string, unknown> {
  const r: GitlabRun = { project_path: "acme/infra", ref: "main", ref_protected: true, sha: hex(40), pipeline_id: runId(), job_id: runId(), user_login: "alice", pipeline_source: "push", ...given };
  const namespace = r.project_path.split("/").slice(0, -1).join("/");
  return {
    sub: `project_path:${r.project_path}:ref_type:branch:ref:${r.ref}`,
    namespace_id: "42",
    namespace_path: namespace,
    project_id: "4242",
    project_path: r.project_path,
    user_id: "7",
    user_login: r.user_login,
    pipeline_id: r.pipeline_id,
    pipeline_source: r.pipeline_source,
    job_id: r.job_id,
    ref: r.ref,
    ref_type: "branch",
    ref_path: `refs/heads/${r.ref}`,
    ref_protected: String(r.ref_protected),
    sha: r.sha,
    runner_environment: "gitlab-hosted",
    ...(r.environment ? { environment: r.environment, environment_protected: "true" } : {}),
  };
}

interface Job {
  kind: "github" | "ado";
  secret: string;
  claims: Record<string, unknown>;
}

export interface CiRunner {
  app: Hono;
  /** The emulator's own address, once it listens (https://127.0.0.1:PORT). */
  baseUrl: string;
  /** The environment of a GitHub Actions step with `permissions: id-token: write`. */
  githubJob(run?: Partial<GithubRun>): Record<string, string>;
  /** The environment of an Azure Pipelines step that maps SYSTEM_ACCESSTOKEN in. */
  azureDevopsJob(run?: Partial<AzureDevopsRun>): Record<string, string>;
  /** A GitLab job's ID token (its `id_tokens:` entry with `aud:`). */
  gitlabToken(audience: string, run?: Partial<GitlabRun>): Promise<string>;
}

export function ciRunner(issuers: CiIssuers): CiRunner {
  const jobs = new Map<string, Job>();
  const add = (job: Job) => {
    const id = crypto.randomUUID();
    jobs.set(id, job);
    if (jobs.size > 10_000) jobs.delete(jobs.keys().next().value!);
    return id;
  };
  const bearer = (c: Context, job: Job | undefined) => !!job && c.req.header("authorization")?.replace(/^bearer\s+/i, "") === job.secret;
  const app = new Hono()
    .get("/_runner/github/:job/idtoken", async (c) => {
      const job = jobs.get(c.req.param("job"));
      if (job?.kind !== "github" || !bearer(c, job)) return c.json({ message: "Bad credentials" }, 401);
      const audience = c.req.query("audience") || `https://github.com/${job.claims.repository_owner}`;
      return c.json({ count: 1, value: await issuers.github.sign(job.claims, { audience }) });
    })
    .post("/_runner/ado/:job/oidctoken", async (c) => {
      const job = jobs.get(c.req.param("job"));
      if (job?.kind !== "ado" || !bearer(c, job)) return c.json({ message: "TF400813: The user is not authorized to access this resource." }, 401);
      const issuer = adoIssuer(String(job.claims.org_id));
      const connection = c.req.query("serviceConnectionId");
      // A service connection's token names the connection, and nothing of the run.
      const [, org, project] = /^p:\/\/([^/]+)\/([^/]+)\//.exec(String(job.claims.sub)) ?? [];
      const claims = connection ? { sub: `sc://${org}/${project}/${connection}` } : job.claims;
      return c.json({ oidcToken: await issuers.azureDevops.sign(claims, { audience: ADO_AUDIENCE, issuer, ttlSeconds: 900 }) });
    });
  const runner: CiRunner = {
    app,
    baseUrl: "",
    githubJob(run) {
      const claims = githubClaims(run);
      const secret = crypto.randomUUID();
      const id = add({ kind: "github", secret, claims });
      return { GITHUB_ACTIONS: "true", ACTIONS_ID_TOKEN_REQUEST_URL: `${runner.baseUrl}/_runner/github/${id}/idtoken?api-version=2.0`, ACTIONS_ID_TOKEN_REQUEST_TOKEN: secret, GITHUB_REPOSITORY: String(claims.repository), GITHUB_SHA: String(claims.sha), GITHUB_RUN_ID: String(claims.run_id) };
    },
    azureDevopsJob(run) {
      const claims = azureDevopsClaims(run);
      const secret = crypto.randomUUID();
      const id = add({ kind: "ado", secret, claims });
      return { TF_BUILD: "True", SYSTEM_OIDCREQUESTURI: `${runner.baseUrl}/_runner/ado/${id}/oidctoken`, SYSTEM_ACCESSTOKEN: secret, BUILD_BUILDID: String(claims.run_id) };
    },
    gitlabToken: (audience, run) => issuers.gitlab.sign(gitlabClaims(run), { audience, ttlSeconds: 3600 }),
  };
  return runner;
}
