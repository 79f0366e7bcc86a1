const OIDC_SCOPES = new Set(["openid", "profile", "offline_access", "email"]);

/**
 * The Entra ID scope for a v1 resource: `<resource>/.default`. A resource
 * ending in "/" keeps it (`https://management.core.windows.net//.default`),
 * which is what Entra expects for v1 resources with a trailing slash.
 * Scopes that are already `.default` or OIDC pass through.
 */
export function scopeForResource(resource: string): string {
  const r = resource.trim();
  if (r.endsWith("/.default") || OIDC_SCOPES.has(r)) return r;
  return `${r}/.default`;
}
