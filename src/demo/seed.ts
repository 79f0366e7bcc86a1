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
