/**
 * The CI's own OIDC token, fetched where each CI hands it to a job step:
 *
 * | method       | where                                                            | detected by              |
 * |--------------|------------------------------------------------------------------|--------------------------|
 * | github       | GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=AUD, bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN (`permissions: id-token: write`) | GITHUB_ACTIONS=true |
 * | azure_devops | POST $SYSTEM_OIDCREQUESTURI?api-version=7.1[&serviceConnectionId=], bearer $SYSTEM_ACCESSTOKEN (mapped into the step's env) | TF_BUILD=True |
 * | gitlab       | the job's `id_tokens:` variable (AZGATE_ID_TOKEN unless --id-token-env), with `aud:` the audience | GITLAB_CI=true |
 * | kubernetes   | a projected service-account token file (/var/run/secrets/tokens/azgate unless --id-token-file) | KUBERNETES_SERVICE_HOST |
 *
 * Read into memory only, bounded, and never printed.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { AzgateError } from "../errors/index.ts";
import { request } from "../runtime/http.ts";
import type { JoinMethod } from "../resources/join-token.ts";

export const DEFAULT_ID_TOKEN_ENV = "AZGATE_ID_TOKEN";
export const DEFAULT_ID_TOKEN_FILE = "/var/run/secrets/tokens/azgate";
const MAX_TOKEN_CHARS = 16 * 1024;

export interface CiTokenOptions {
  method: JoinMethod;
  /** What the token must name as its audience (the proxy's bot_audience, or --audience). */
  audience: string;
  env: Record<string, string | undefined>;
  idTokenEnv?: string;
  idTokenFile?: string;
  /** Azure DevOps: a service connection's token instead of the pipeline's. */
  serviceConnection?: string;
  /** More CAs for the token service (a GitHub Enterprise Server or Azure DevOps Server behind a company CA); the web PKI is trusted anyway. */
  caPems?: string[];
}

/** The CI this runs in, from what each one sets in every job. */
export function detectJoinMethod(env: Record<string, string | undefined>): JoinMethod | null {
  if (env.GITHUB_ACTIONS === "true") return "github";
  if ((env.TF_BUILD ?? "").toLowerCase() === "true") return "azure_devops";
  if (env.GITLAB_CI === "true") return "gitlab";
  if (env.KUBERNETES_SERVICE_HOST) return "kubernetes";
  return null;
}

/** The variable a token came from, for a child's environment to lose it (azgate bot exec). */
export function tokenVariables(o: Pick<CiTokenOptions, "method" | "idTokenEnv">): string[] {
  return o.method === "gitlab" ? [o.idTokenEnv ?? DEFAULT_ID_TOKEN_ENV] : [];
}

export async function fetchCiToken(o: CiTokenOptions): Promise<string> {
  const token = (await fromCi(o)).trim();
  if (!token) throw new AzgateError("bad_parameter", `the ${o.method} CI token is empty`);
  if (token.length > MAX_TOKEN_CHARS) throw new AzgateError("bad_parameter", `the ${o.method} CI token is longer than ${MAX_TOKEN_CHARS} characters`);
  return token;
}

async function fromCi(o: CiTokenOptions): Promise<string> {
  const need = (name: string, hint: string) => {
    const v = o.env[name];
    if (!v) throw new AzgateError("bad_parameter", `${name} is not set: ${hint}`);
    return v;
  };
  switch (o.method) {
    case "github": {
      const url = new URL(need("ACTIONS_ID_TOKEN_REQUEST_URL", "give the job `permissions: id-token: write` (docs/bots.md)"));
      const bearer = need("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "give the job `permissions: id-token: write` (docs/bots.md)");
      url.searchParams.set("audience", o.audience);
      return field(await ask(url.toString(), "GET", bearer, "GitHub Actions' token service", o.caPems), "value", "GitHub Actions' token service");
    }
    case "azure_devops": {
      const url = new URL(need("SYSTEM_OIDCREQUESTURI", "run in an Azure Pipelines job"));
      const bearer = need("SYSTEM_ACCESSTOKEN", "map it into the step: env: { SYSTEM_ACCESSTOKEN: $(System.AccessToken) } (docs/bots.md)");
      url.searchParams.set("api-version", "7.1");
      if (o.serviceConnection) url.searchParams.set("serviceConnectionId", o.serviceConnection);
      return field(await ask(url.toString(), "POST", bearer, "Azure DevOps' token service", o.caPems), "oidcToken", "Azure DevOps' token service");
    }
    case "gitlab": {
      const name = o.idTokenEnv ?? DEFAULT_ID_TOKEN_ENV;
      return need(name, `add it to the job: id_tokens: { ${name}: { aud: ${o.audience} } } (docs/bots.md)`);
    }
    case "kubernetes": {
      const file = o.idTokenFile ?? DEFAULT_ID_TOKEN_FILE;
      try {
        return readBounded(file, MAX_TOKEN_CHARS + 1);
      } catch (e) {
        throw new AzgateError("bad_parameter", `cannot read the projected service-account token ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): project one with audience ${o.audience} there, or pass --id-token-file (docs/bots.md)`);
      }
    }
  }
}

/** At most `max` bytes of a file: a token file that is not one (a device, a log) is not read whole. */
function readBounded(file: string, max: number): string {
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.alloc(max);
    let n = 0;
    for (let r; n < max && (r = readSync(fd, buf, n, max - n, null)) > 0; ) n += r;
    return buf.subarray(0, n).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

async function ask(url: string, method: string, bearer: string, what: string, ca: string[] | undefined): Promise<Record<string, unknown>> {
  let res;
  try {
    res = await request(url, { method, ca, headers: { authorization: `Bearer ${bearer}`, accept: "application/json", "content-type": "application/json" }, ...(method === "POST" ? { body: "" } : {}), timeoutMs: 30_000, maxBytes: 64 * 1024 });
  } catch (e) {
    throw new AzgateError("connection_failed", `cannot reach ${what}: ${(e as Error).message}`);
  }
  if (res.status !== 200) throw new AzgateError("token_invalid", `${what} refused the token request (HTTP ${res.status})`);
  try {
    return JSON.parse(res.body) as Record<string, unknown>;
  } catch {
    throw new AzgateError("bad_request", `${what} did not answer with JSON`);
  }
}

function field(body: Record<string, unknown>, name: string, what: string): string {
  const v = body[name];
  if (typeof v !== "string") throw new AzgateError("bad_request", `${what} answered without "${name}"`);
  return v;
}
