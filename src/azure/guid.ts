/**
 * Entra ID's tenant, client (application) and object (principal) IDs are
 * GUIDs, and nothing else is taken for one: such an ID travels from an agent
 * to the proxy to the workstation, where `proxy azure` prints it into shell
 * exports and the token endpoint into tokens. One grammar, checked wherever
 * one enters (the agent's heartbeat and its identity_facts answer, the
 * agent's AZURE_TENANT_ID, the apps login answer the workstation stores).
 */
export const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isGuid(value: unknown): boolean {
  return typeof value === "string" && GUID.test(value);
}
