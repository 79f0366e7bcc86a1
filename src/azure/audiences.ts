/**
 * Which hosts a real token for a resource may be sent to. The Azure host list
 * alone is not enough: some Azure hosts forward to origins their customers
 * run (Front Door on azurefd.net, for one), so a user could otherwise have the
 * agent attach a real ARM token to a request that ends at a server they own.
 * A token goes only to the service its audience names.
 */
const AUDIENCE_HOSTS: [resource: string, hostSuffixes: string[]][] = [
  // ARM; ACR's token exchange (az acr login) takes an ARM token too.
  ["https://management.core.windows.net", ["management.azure.com", "management.core.windows.net", "azurecr.io"]],
  ["https://management.azure.com", ["management.azure.com", "management.core.windows.net", "azurecr.io"]],
  ["https://vault.azure.net", ["vault.azure.net"]],
  ["https://storage.azure.com", ["blob.core.windows.net", "queue.core.windows.net", "table.core.windows.net", "file.core.windows.net", "dfs.core.windows.net"]],
  ["https://graph.microsoft.com", ["graph.microsoft.com"]],
  ["https://graph.windows.net", ["graph.windows.net"]],
  ["https://database.windows.net", ["database.windows.net"]],
  ["https://batch.core.windows.net", ["batch.core.windows.net"]],
  ["https://datalake.azure.net", ["datalake.azure.net", "azuredatalakestore.net", "azuredatalakeanalytics.net"]],
  ["https://rest.media.azure.net", ["rest.media.azure.net"]],
  ["https://login.microsoftonline.com", ["login.microsoftonline.com"]],
];

const matches = (host: string, suffix: string) => host === suffix || host.endsWith("." + suffix);

/** Normalises a v1 resource or a .default scope to "https://host[/path]" without a trailing slash. */
function normalise(resource: string): string {
  return resource.trim().replace(/\/\.default$/, "").replace(/\/+$/, "").toLowerCase();
}

export function tokenMayGoTo(resource: string, host: string): boolean {
  const r = normalise(resource);
  const h = host.toLowerCase().replace(/\.$/, "");
  const known = AUDIENCE_HOSTS.find(([res]) => res === r);
  if (known) return known[1].some((s) => matches(h, s));
  // A resource named by its own URL (an account-scoped audience such as
  // https://myaccount.blob.core.windows.net) goes to that host only.
  try {
    const u = new URL(r);
    return u.protocol === "https:" && matches(h, u.hostname);
  } catch {
    return false;
  }
}
