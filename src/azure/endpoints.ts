/**
 * Azure API hosts: the suffix list from the reference notes (Teleport's
 * IsAzureEndpoint). A host matches a suffix exactly or as "." + suffix, so
 * "my.azurefd.net" matches and "my-azurefd.net" or "core.windows.net.example.com"
 * do not. DNS names are case-insensitive, so matching is too.
 */
export const AZURE_HOST_SUFFIXES = [
  "management.azure.com",
  "graph.windows.net",
  "batch.core.windows.net",
  "rest.media.azure.net",
  "datalake.azure.net",
  "management.core.windows.net",
  "gallery.azure.com",
  "azuredatalakestore.net",
  "azurecr.io",
  "database.windows.net",
  "azuredatalakeanalytics.net",
  "vault.azure.net",
  "core.windows.net",
  "azurefd.net",
  "login.microsoftonline.com",
  "graph.microsoft.com",
] as const;

export function isAzureEndpoint(host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, "");
  if (!h || h.includes("/") || h.includes(":")) return false;
  return AZURE_HOST_SUFFIXES.some((s) => h === s || h.endsWith("." + s));
}
