/**
 * The Azure clouds azgate serves, each as one table: its Entra ID host, its
 * ARM host and audiences, the API hosts a session intercepts and an agent
 * forwards to, and which hosts a token for each audience may be sent to.
 *
 * Where the values come from (the clients' own cloud settings):
 *   - Azure CLI: azure/cli/core/cloud.py, AZURE_PUBLIC_CLOUD, AZURE_CHINA_CLOUD,
 *     AZURE_US_GOV_CLOUD (endpoints and suffixes);
 *   - go-autorest: autorest/azure/environments.go, PublicCloud, ChinaCloud,
 *     USGovernmentCloud (ResourceIdentifiers: the audiences; Storage is
 *     https://storage.azure.com/ in every cloud).
 * Public Azure's host list is Teleport's (IsAzureEndpoint).
 *
 * An app names its cloud (`cloud: AzureUSGovernment`); "Azure" is the public
 * cloud, as in Teleport's app definitions.
 */

import { asciiLower } from "../util/ascii.ts";

export const CLOUD_NAMES = ["Azure", "AzureUSGovernment", "AzureChinaCloud"] as const;
export type CloudName = (typeof CLOUD_NAMES)[number];

export interface AzureCloud {
  name: CloudName;
  /** az's name for it (AZURE_CLOUD_NAME, `az cloud set --name`). */
  azCliName: string;
  /** Terraform azurerm's ARM_ENVIRONMENT. */
  terraformEnvironment: string;
  /** Entra ID (the authority host). */
  loginHost: string;
  /** Azure Resource Manager. */
  armHost: string;
  /** Audiences ARM accepts; the first is what az asks for (active_directory_resource_id). */
  armAudiences: string[];
  /** API host suffixes: intercepted on the workstation, forwarded by the agent. A host matches a suffix exactly or as "." + suffix. */
  hostSuffixes: string[];
  /** Which hosts a token for each resource may go to (see audiences.ts). */
  audienceHosts: [resource: string, hostSuffixes: string[]][];
  /**
   * The container registries' suffix: an ARM token may go there (az acr
   * login trades it for a registry token), but it is not ARM. Every other
   * host an ARM token may go to is read as ARM (armHostSuffixes).
   */
  containerRegistrySuffix: string;
  /**
   * Microsoft Graph's and Azure AD Graph's hosts (OData services). A name under one
   * (canary.graph.microsoft.com) gets the same token and reaches the same service: it is read as it (graph.ts).
   */
  graphHosts: string[];
}

const storageHosts = (suffix: string) => ["blob", "queue", "table", "file", "dfs"].map((s) => `${s}.${suffix}`);

const PUBLIC: AzureCloud = {
  name: "Azure",
  azCliName: "AzureCloud",
  terraformEnvironment: "public",
  loginHost: "login.microsoftonline.com",
  armHost: "management.azure.com",
  armAudiences: ["https://management.core.windows.net/", "https://management.azure.com/"],
  hostSuffixes: [
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
  ],
  audienceHosts: [
    // ARM; ACR's token exchange (az acr login) takes an ARM token too.
    ["https://management.core.windows.net", ["management.azure.com", "management.core.windows.net", "azurecr.io"]],
    ["https://management.azure.com", ["management.azure.com", "management.core.windows.net", "azurecr.io"]],
    ["https://vault.azure.net", ["vault.azure.net"]],
    ["https://storage.azure.com", storageHosts("core.windows.net")],
    ["https://graph.microsoft.com", ["graph.microsoft.com"]],
    ["https://graph.windows.net", ["graph.windows.net"]],
    ["https://database.windows.net", ["database.windows.net"]],
    ["https://batch.core.windows.net", ["batch.core.windows.net"]],
    ["https://datalake.azure.net", ["datalake.azure.net", "azuredatalakestore.net", "azuredatalakeanalytics.net"]],
    ["https://rest.media.azure.net", ["rest.media.azure.net"]],
    ["https://login.microsoftonline.com", ["login.microsoftonline.com"]],
  ],
  containerRegistrySuffix: "azurecr.io",
  graphHosts: ["graph.microsoft.com", "graph.windows.net"],
};

const US_GOVERNMENT: AzureCloud = {
  name: "AzureUSGovernment",
  azCliName: "AzureUSGovernment",
  terraformEnvironment: "usgovernment",
  loginHost: "login.microsoftonline.us",
  armHost: "management.usgovcloudapi.net",
  armAudiences: ["https://management.core.usgovcloudapi.net/", "https://management.usgovcloudapi.net/"],
  hostSuffixes: [
    "management.usgovcloudapi.net",
    "management.core.usgovcloudapi.net",
    "graph.windows.net",
    "graph.microsoft.us",
    "batch.core.usgovcloudapi.net",
    "rest.media.usgovcloudapi.net",
    "gallery.usgovcloudapi.net",
    "azurecr.us",
    "database.usgovcloudapi.net",
    "vault.usgovcloudapi.net",
    "core.usgovcloudapi.net",
    "login.microsoftonline.us",
  ],
  audienceHosts: [
    ["https://management.core.usgovcloudapi.net", ["management.usgovcloudapi.net", "management.core.usgovcloudapi.net", "azurecr.us"]],
    ["https://management.usgovcloudapi.net", ["management.usgovcloudapi.net", "management.core.usgovcloudapi.net", "azurecr.us"]],
    ["https://vault.usgovcloudapi.net", ["vault.usgovcloudapi.net"]],
    ["https://storage.azure.com", storageHosts("core.usgovcloudapi.net")],
    ["https://graph.microsoft.us", ["graph.microsoft.us"]],
    ["https://graph.windows.net", ["graph.windows.net"]],
    ["https://database.usgovcloudapi.net", ["database.usgovcloudapi.net"]],
    ["https://batch.core.usgovcloudapi.net", ["batch.core.usgovcloudapi.net"]],
    ["https://rest.media.usgovcloudapi.net", ["rest.media.usgovcloudapi.net"]],
    ["https://login.microsoftonline.us", ["login.microsoftonline.us"]],
  ],
  containerRegistrySuffix: "azurecr.us",
  graphHosts: ["graph.microsoft.us", "graph.windows.net"],
};

const CHINA: AzureCloud = {
  name: "AzureChinaCloud",
  azCliName: "AzureChinaCloud",
  terraformEnvironment: "china",
  loginHost: "login.chinacloudapi.cn",
  armHost: "management.chinacloudapi.cn",
  armAudiences: ["https://management.core.chinacloudapi.cn/", "https://management.chinacloudapi.cn/"],
  hostSuffixes: [
    "management.chinacloudapi.cn",
    "management.core.chinacloudapi.cn",
    "graph.chinacloudapi.cn",
    "microsoftgraph.chinacloudapi.cn",
    "batch.chinacloudapi.cn",
    "rest.media.chinacloudapi.cn",
    "gallery.chinacloudapi.cn",
    "azurecr.cn",
    "database.chinacloudapi.cn",
    "vault.azure.cn",
    "core.chinacloudapi.cn",
    "login.chinacloudapi.cn",
  ],
  audienceHosts: [
    ["https://management.core.chinacloudapi.cn", ["management.chinacloudapi.cn", "management.core.chinacloudapi.cn", "azurecr.cn"]],
    ["https://management.chinacloudapi.cn", ["management.chinacloudapi.cn", "management.core.chinacloudapi.cn", "azurecr.cn"]],
    ["https://vault.azure.cn", ["vault.azure.cn"]],
    ["https://storage.azure.com", storageHosts("core.chinacloudapi.cn")],
    ["https://microsoftgraph.chinacloudapi.cn", ["microsoftgraph.chinacloudapi.cn"]],
    ["https://graph.chinacloudapi.cn", ["graph.chinacloudapi.cn"]],
    ["https://database.chinacloudapi.cn", ["database.chinacloudapi.cn"]],
    ["https://batch.chinacloudapi.cn", ["batch.chinacloudapi.cn"]],
    ["https://rest.media.chinacloudapi.cn", ["rest.media.chinacloudapi.cn"]],
    ["https://login.chinacloudapi.cn", ["login.chinacloudapi.cn"]],
  ],
  containerRegistrySuffix: "azurecr.cn",
  graphHosts: ["microsoftgraph.chinacloudapi.cn", "graph.chinacloudapi.cn"],
};

export const CLOUDS: Record<CloudName, AzureCloud> = { Azure: PUBLIC, AzureUSGovernment: US_GOVERNMENT, AzureChinaCloud: CHINA };

export const cloudByName = (name: CloudName | undefined): AzureCloud => CLOUDS[name ?? "Azure"];

/** The scope of an ARM token in this cloud (the agent's own lookups). */
export const armScope = (cloud: AzureCloud) => `https://${cloud.armHost}/.default`;

/** A host name as compared: lower case (ASCII letters only: util/ascii.ts), no trailing dot. */
export const normaliseHost = (host: string) => asciiLower(host).replace(/\.$/, "");

/** `host` is `suffix` or a name under it ("my.azurefd.net" yes, "my-azurefd.net" no). */
export const hostMatches = (host: string, suffix: string) => host === suffix || host.endsWith("." + suffix);

/**
 * The host suffixes read as ARM: every host an ARM token may go to (its
 * audiences' rows in audienceHosts, regional hosts such as
 * westeurope.management.azure.com included, as hostMatches reads a suffix)
 * but the container registries.
 */
export function armHostSuffixes(cloud: AzureCloud): string[] {
  const audiences = cloud.armAudiences.map((a) => a.replace(/\/$/, ""));
  const hosts = cloud.audienceHosts.filter(([r]) => audiences.includes(r)).flatMap(([, hs]) => hs);
  return [...new Set(hosts)].filter((h) => h !== cloud.containerRegistrySuffix);
}

/** The cloud whose Entra ID is at this authority URL or host (AZURE_AUTHORITY_HOST), or null when none is. */
export function cloudOfAuthority(authority: string): AzureCloud | null {
  let host: string;
  try {
    host = normaliseHost(new URL(authority.includes("://") ? authority : `https://${authority}`).hostname);
  } catch {
    return null;
  }
  return Object.values(CLOUDS).find((c) => c.loginHost === host) ?? null;
}
