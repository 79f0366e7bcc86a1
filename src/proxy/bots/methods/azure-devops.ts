/**
 * Azure DevOps: a pipeline step POSTs to SYSTEM_OIDCREQUESTURI with its
 * SYSTEM_ACCESSTOKEN and gets a token signed by the organisation's issuer,
 * https://vstoken.dev.azure.com/ORGANIZATION_ID. Its audience is fixed by
 * Azure DevOps (api://AzureADTokenExchange), so the replay cache and its
 * five-minute life are what keep it to one join. A pipeline's token
 * (sub p://org/project/pipeline) carries the run's facts; a service
 * connection's (sub sc://org/project/connection, asked for with
 * serviceConnectionId) names only the connection.
 */
import { azureDevopsRuleShape, type AzureDevopsSpec } from "../../../resources/join-token.ts";
import { claim, keptFacts, type Claims, type MethodImpl } from "../rules.ts";

export const ADO_ISSUER_HOST = "https://vstoken.dev.azure.com";
export const ADO_AUDIENCE = "api://AzureADTokenExchange";

/** sub: p://ORG/PROJECT/PIPELINE or sc://ORG/PROJECT/CONNECTION. */
function subject(claims: Claims): { kind: "p" | "sc"; organization: string; project: string; name: string } | null {
  const m = /^(p|sc):\/\/([^/]+)\/([^/]+)\/(.+)$/.exec(claim(claims, "sub") ?? "");
  return m ? { kind: m[1] as "p" | "sc", organization: m[2], project: m[3], name: m[4] } : null;
}

const CLAIM_OF: Record<string, string> = { project_id: "prj_id", definition_id: "def_id", repository_uri: "rpo_uri", repository_version: "rpo_ver", repository_ref: "rpo_ref", sub: "sub" };

export const azureDevops: MethodImpl<AzureDevopsSpec> = {
  method: "azure_devops",
  issuer: (s) => `${ADO_ISSUER_HOST}/${s.organization_id.toLowerCase()}`,
  defaultAudience: () => ADO_AUDIENCE,
  maxAgeMs: 10 * 60_000,
  singleUse: true,
  ruleFields: Object.keys(azureDevopsRuleShape),
  field(claims, name) {
    const sub = subject(claims);
    if (name === "project_name") return sub?.project;
    if (name === "pipeline_name") return sub?.kind === "p" ? sub.name : undefined;
    if (name === "service_connection") return sub?.kind === "sc" ? sub.name : undefined;
    return CLAIM_OF[name] ? claim(claims, CLAIM_OF[name]) : undefined;
  },
  precheck(spec, claims) {
    if (!subject(claims)) return "its subject is neither a pipeline's (p://...) nor a service connection's (sc://...)";
    const org = claim(claims, "org_id");
    if (org !== undefined && org.toLowerCase() !== spec.organization_id.toLowerCase()) return `it is from organisation ${org}, not ${spec.organization_id}`;
    return null;
  },
  facts(c) {
    const sub = subject(c);
    return keptFacts([
      ["organization", sub?.organization],
      ["project", sub?.project],
      [sub?.kind === "sc" ? "service_connection" : "pipeline", sub?.name],
      ["definition_id", claim(c, "def_id")],
      ["repository", claim(c, "rpo_id") ?? claim(c, "rpo_uri")],
      ["ref", claim(c, "rpo_ref")],
      ["sha", claim(c, "rpo_ver")],
      ["run_id", claim(c, "run_id")],
    ]);
  },
};
