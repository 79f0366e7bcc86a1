/**
 * The seed guide's world: resource group myResourceGroup, the agent identity
 * (may read identities), teleport-reader (Reader), both federated to the
 * agent's service account, plus VMs and a contributor identity.
 */
export const DEFAULT_WORLD_YAML = `
tenant_id: aaaaaaaa-0000-4000-8000-000000000001
aks_oidc_issuer: https://oidc.prod-aks.azure.com/00000000-0000-4000-8000-0000000000aa/
subscriptions:
  - { id: 00000000-0000-0000-0000-000000000000, display_name: Emulated Subscription }
resource_groups:
  - { subscription: 00000000-0000-0000-0000-000000000000, name: myResourceGroup, location: eastus }
  - { subscription: 00000000-0000-0000-0000-000000000000, name: production, location: westeurope }
identities:
  - subscription: 00000000-0000-0000-0000-000000000000
    resource_group: myResourceGroup
    name: teleport-azure-cli-aks-agent
    client_id: 00000000-0000-0000-0000-000000000001
    principal_id: 10000000-0000-4000-8000-000000000001
    federated_credentials:
      - name: federated-teleport-azure-cli-aks-agent
        issuer: https://oidc.prod-aks.azure.com/00000000-0000-4000-8000-0000000000aa/
        subject: system:serviceaccount:teleport-ns:teleport-azure-cli-aks-service-account
  - subscription: 00000000-0000-0000-0000-000000000000
    resource_group: myResourceGroup
    name: teleport-reader
    client_id: 00000000-0000-4000-8000-000000000002
    principal_id: 10000000-0000-4000-8000-000000000002
    federated_credentials:
      - name: federated-teleport-reader
        issuer: https://oidc.prod-aks.azure.com/00000000-0000-4000-8000-0000000000aa/
        subject: system:serviceaccount:teleport-ns:teleport-azure-cli-aks-service-account
  - subscription: 00000000-0000-0000-0000-000000000000
    resource_group: myResourceGroup
    name: teleport-contributor
    client_id: 00000000-0000-4000-8000-000000000003
    principal_id: 10000000-0000-4000-8000-000000000003
    federated_credentials:
      - name: federated-teleport-contributor
        issuer: https://oidc.prod-aks.azure.com/00000000-0000-4000-8000-0000000000aa/
        subject: system:serviceaccount:teleport-ns:teleport-azure-cli-aks-service-account
applications:
  - { display_name: ci-pipeline, client_id: 00000000-0000-4000-8000-000000000010, principal_id: 10000000-0000-4000-8000-000000000010, secret: emulated-client-secret }
key_vaults:
  - subscription: 00000000-0000-0000-0000-000000000000
    resource_group: myResourceGroup
    name: teleport-demo-kv
    secrets: { db-password: emulated-secret-value, api-key: emulated-api-key }
storage_accounts:
  - { subscription: 00000000-0000-0000-0000-000000000000, resource_group: myResourceGroup, name: teleportdemostore, containers: [reports] }
role_definitions:
  - { name: teleport-azure-cli-aks-agent-role, actions: [Microsoft.ManagedIdentity/userAssignedIdentities/read] }
role_assignments:
  - { principal_id: 10000000-0000-4000-8000-000000000001, role: teleport-azure-cli-aks-agent-role, scope: /subscriptions/00000000-0000-0000-0000-000000000000 }
  - { principal_id: 10000000-0000-4000-8000-000000000002, role: Reader, scope: /subscriptions/00000000-0000-0000-0000-000000000000 }
  - { principal_id: 10000000-0000-4000-8000-000000000003, role: Contributor, scope: /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/myResourceGroup }
  - { principal_id: 10000000-0000-4000-8000-000000000002, role: Key Vault Secrets User, scope: /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/myResourceGroup/providers/Microsoft.KeyVault/vaults/teleport-demo-kv }
  - { principal_id: 10000000-0000-4000-8000-000000000002, role: Storage Blob Data Reader, scope: /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/myResourceGroup/providers/Microsoft.Storage/storageAccounts/teleportdemostore }
  - { principal_id: 10000000-0000-4000-8000-000000000003, role: Storage Blob Data Contributor, scope: /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/myResourceGroup/providers/Microsoft.Storage/storageAccounts/teleportdemostore }
imds:
  user_assigned: [teleport-azure-cli-aks-agent, teleport-reader, teleport-contributor]
virtual_machines:
  - { subscription: 00000000-0000-0000-0000-000000000000, resource_group: myResourceGroup, name: web-01 }
  - { subscription: 00000000-0000-0000-0000-000000000000, resource_group: myResourceGroup, name: web-02 }
  - { subscription: 00000000-0000-0000-0000-000000000000, resource_group: production, name: db-01, vm_size: Standard_D4s_v5 }
`;
