/**
 * The clouds the emulator answers for: each cloud's Entra ID, ARM, Key Vault
 * and Blob hosts, serving the same world (one tenant, as if it lived in each),
 * with that cloud's audiences. Host names and ARM audiences come from the
 * product's table (azure/clouds.ts); the data-plane audiences are those the
 * SDKs' cloud settings name (see there).
 */
import { CLOUDS, type AzureCloud, type CloudName } from "../azure/clouds.ts";

export interface EmulatedCloud {
  cloud: AzureCloud;
  loginHost: string;
  armHost: string;
  /** ARM accepts both spellings of both audiences, with and without the trailing slash. */
  armAudiences: string[];
  vaultSuffix: string;
  vaultResource: string;
  blobSuffix: string;
  /** Audiences Entra issues tokens for in this cloud (v1 spelling). */
  resources: string[];
}

const STORAGE = "https://storage.azure.com";

function emulated(name: CloudName, vault: string, blobSuffix: string, graph: string): EmulatedCloud {
  const cloud = CLOUDS[name];
  const [management, arm] = cloud.armAudiences;
  return {
    cloud,
    loginHost: cloud.loginHost,
    armHost: cloud.armHost,
    armAudiences: cloud.armAudiences.flatMap((a) => [a, a.replace(/\/$/, "")]),
    vaultSuffix: `.${new URL(vault).hostname}`,
    vaultResource: vault,
    blobSuffix,
    // ARM's v1 resource keeps its slash (what az asks for); the others are issued as asked without one.
    resources: [management, arm.replace(/\/$/, ""), vault, STORAGE, graph],
  };
}

export const EMULATED_CLOUDS: EmulatedCloud[] = [
  emulated("Azure", "https://vault.azure.net", ".blob.core.windows.net", "https://graph.microsoft.com"),
  emulated("AzureUSGovernment", "https://vault.usgovcloudapi.net", ".blob.core.usgovcloudapi.net", "https://graph.microsoft.us"),
  emulated("AzureChinaCloud", "https://vault.azure.cn", ".blob.core.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
];

export const PUBLIC_CLOUD = EMULATED_CLOUDS[0];

/** Every name the emulator's certificate covers for these clouds. */
export const cloudHostNames = (): string[] => EMULATED_CLOUDS.flatMap((c) => [c.loginHost, c.armHost, `*${c.vaultSuffix}`, `*${c.blobSuffix}`]);
