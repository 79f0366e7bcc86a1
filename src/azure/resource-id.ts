export interface IdentityResourceId {
  subscription: string;
  resourceGroup: string;
  name: string;
}

const IDENTITY_ID = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.ManagedIdentity\/userAssignedIdentities\/([^/]+)$/i;

/** Parses a user-assigned managed identity's ARM resource ID; null when it is not one. */
export function parseIdentityId(id: string): IdentityResourceId | null {
  const m = IDENTITY_ID.exec(id.trim());
  return m ? { subscription: m[1], resourceGroup: m[2], name: m[3] } : null;
}

/** The short name of an identity ("teleport-reader"), or the input when it is not an identity ID. */
export function identityName(id: string): string {
  return parseIdentityId(id)?.name ?? id;
}
