/**
 * What the demo sets up, from the seed guide: its role file (embedded, so the
 * single binary needs no other file; a test keeps it equal to
 * test/fixtures/seed/azure-cli-access-internal.yaml), its user, its
 * identity, and the agent's Workload ID service account.
 */
export const DEMO_ROLE_YAML = `kind: role
version: v5
metadata:
  name: azure-cli-access
spec:
  allow:
    app_labels:
      '*': '*'
    azure_identities:
      - '{{internal.azure_identities}}'
`;

export const DEMO_USER = "alice";
export const DEMO_APP = "azure-cli";
export const DEMO_IDENTITY_NAME = "teleport-reader";
export const AGENT_IDENTITY_NAME = "teleport-azure-cli-aks-agent";
export const AGENT_SERVICE_ACCOUNT = { namespace: "teleport-ns", serviceAccount: "teleport-azure-cli-aks-service-account" };

/**
 * The demo's pipeline: a bot that a GitHub Actions run of acme/infra's main
 * branch, in its production environment, joins with its own OIDC token (the
 * emulator plays GitHub's issuer and the runner's token service). It may read
 * with the demo's identity and never delete a resource group.
 */
export const DEMO_BOT = "deploy";
export const DEMO_BOT_TOKEN = "deploy";
export const DEMO_PIPELINE_RUN = { repository: "acme/infra", repository_id: "892712345", ref: "refs/heads/main", environment: "production", workflow: "deploy" };

export function demoBotYaml(identity: string): string {
  return `kind: role
version: v7
metadata:
  name: demo-pipeline
spec:
  allow:
    app_labels:
      '*': '*'
    azure_identities:
      - '${identity}'
    azure_api:
      - actions: ['*/read']
  deny:
    azure_api:
      - actions: ['Microsoft.Resources/subscriptions/resourceGroups/delete']
`;
}

export const DEMO_BOT_TOKEN_YAML = `kind: token
version: v2
metadata:
  name: ${DEMO_BOT_TOKEN}
spec:
  roles: [Bot]
  bot_name: ${DEMO_BOT}
  join_method: github
  github:
    allow:
      - { repository: ${DEMO_PIPELINE_RUN.repository}, repository_id: "${DEMO_PIPELINE_RUN.repository_id}", ref: ${DEMO_PIPELINE_RUN.ref}, environment: ${DEMO_PIPELINE_RUN.environment} }
`;
