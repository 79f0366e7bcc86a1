/**
 * The environment `azgate exec` gives a command: the user's own minus every
 * Azure credential a client could pick up instead of azgate's, plus the app
 * session's (session-env.ts) and what each runtime and tool needs to use the
 * emulated managed identity: DefaultAzureCredential told to take it, and
 * Terraform's azurerm pointed at it. Pure.
 */
import { cloudByName, type CloudName } from "../azure/clouds.ts";
import { MSI_HOST } from "./session-env.ts";

/**
 * Credentials and identity sources from the user's shell that would win over
 * the managed identity (a client secret, a certificate, a Workload ID token,
 * a username, another managed-identity endpoint), for the SDKs and Terraform;
 * storage keys, SAS tokens and connection strings that az, the SDKs and
 * Terraform's backend would send instead of a token; and what a CI job hands
 * its steps to mint OIDC tokens for an identity of its own. Kept on purpose:
 * AZURE_STORAGE_ACCOUNT (a name), AZURE_STORAGE_AUTH_MODE (`key` makes az ask
 * ARM for the account's keys with the session's identity, which the proxy's
 * azure_api rules decide), ARM_SUBSCRIPTION_ID (the user's choice), and a
 * program's own variables azgate cannot know.
 */
export const SCRUBBED = [
  "AZURE_CLIENT_SECRET",
  "AZURE_CLIENT_CERTIFICATE_PATH",
  "AZURE_CLIENT_CERTIFICATE_PASSWORD",
  "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN",
  "AZURE_FEDERATED_TOKEN_FILE",
  "AZURE_USERNAME",
  "AZURE_PASSWORD",
  "AZURE_CLIENT_ID",
  "AZURE_TENANT_ID",
  "AZURE_AUTHORITY_HOST",
  "AZURE_POD_IDENTITY_AUTHORITY_HOST",
  "MSI_SECRET",
  "IDENTITY_SERVER_THUMBPRINT",
  "IMDS_ENDPOINT",
  "AZURE_FEDERATED_TOKEN",
  // Storage: a key, a SAS or a connection string (holding either) is used instead of the identity's token.
  "AZURE_STORAGE_CONNECTION_STRING",
  "AZURE_STORAGE_KEY",
  "AZURE_STORAGE_ACCOUNT_KEY",
  "AZURE_STORAGE_SAS_TOKEN",
  "AZCOPY_SPA_CLIENT_SECRET",
  "AZCOPY_SPA_CERT_PASSWORD",
  // Terraform (azurerm, azapi, the azurerm backend) and Pulumi.
  "ARM_CLIENT_ID",
  "ARM_CLIENT_ID_FILE_PATH",
  "ARM_CLIENT_SECRET",
  "ARM_CLIENT_SECRET_FILE_PATH",
  "ARM_CLIENT_CERTIFICATE",
  "ARM_CLIENT_CERTIFICATE_PATH",
  "ARM_CLIENT_CERTIFICATE_PASSWORD",
  "ARM_ACCESS_KEY",
  "ARM_SAS_TOKEN",
  "ARM_OIDC_TOKEN",
  "ARM_OIDC_TOKEN_FILE_PATH",
  "ARM_OIDC_REQUEST_TOKEN",
  "ARM_OIDC_REQUEST_URL",
  "ARM_OIDC_AZURE_SERVICE_CONNECTION_ID",
  "ARM_ADO_PIPELINE_SERVICE_CONNECTION_ID",
  "ARM_USE_OIDC",
  "ARM_USE_CLI",
  "ARM_USE_AKS_WORKLOAD_IDENTITY",
  "ARM_TENANT_ID",
  "ARM_MSI_ENDPOINT",
  "ARM_USE_MSI",
  "ARM_ENVIRONMENT",
  "ARM_METADATA_HOSTNAME",
  // CI jobs' OIDC token requests (GitHub Actions, Azure Pipelines) and the service connection they name.
  "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
  "ACTIONS_ID_TOKEN_REQUEST_URL",
  "SYSTEM_OIDCREQUESTURI",
  "SYSTEM_ACCESSTOKEN",
  "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID",
  "AZURESUBSCRIPTION_CLIENT_ID",
  "AZURESUBSCRIPTION_TENANT_ID",
] as const;

/** Every variable `azgate exec` may set, for `azgate env --unset`. */
export const EXEC_VARIABLES = [
  "AZURE_CONFIG_DIR", "HTTPS_PROXY", "HTTP_PROXY", "MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "NO_PROXY", "no_proxy",
  "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "AZURE_CORE_COLLECT_TELEMETRY", "AZURE_TOKEN_CREDENTIALS",
  "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "ARM_USE_MSI", "ARM_MSI_ENDPOINT", "ARM_TENANT_ID", "ARM_CLIENT_ID", "ARM_SUBSCRIPTION_ID",
  "AZURE_CLOUD_NAME", "ARM_ENVIRONMENT",
] as const;

export interface ExecSession {
  /** The local proxy's variables (azureEnv). */
  sessionEnv: Record<string, string>;
  /** The app session's identity (resource ID), tenant and, when known, client ID. */
  identity: string;
  tenant: string;
  clientId?: string;
  /** The app's cloud (public Azure when not given). */
  cloud?: CloudName;
}

export function execEnv(parent: Record<string, string | undefined>, s: ExecSession): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(parent)) if (v !== undefined && !(SCRUBBED as readonly string[]).includes(k)) env[k] = v;
  const subscription = /^\/subscriptions\/([^/]+)\//i.exec(s.identity)?.[1];
  return {
    ...env,
    ...s.sessionEnv,
    AZURE_CORE_COLLECT_TELEMETRY: "false",
    // Loopback is never proxied (a client's own local services, and Go never proxies it anyway).
    NO_PROXY: "127.0.0.1,localhost,::1",
    no_proxy: "127.0.0.1,localhost,::1",
    // DefaultAzureCredential (Go >= 1.11, JS, Python, .NET, Java) goes straight to the managed identity.
    AZURE_TOKEN_CREDENTIALS: "ManagedIdentityCredential",
    AZURE_TENANT_ID: s.tenant,
    ...(s.clientId ? { AZURE_CLIENT_ID: s.clientId } : {}),
    // Terraform azurerm (go-azure-sdk): the IMDS dialect at azgate's endpoint, with IDENTITY_HEADER sent as x-ms-identity.
    ARM_USE_MSI: "true",
    ARM_MSI_ENDPOINT: `https://${MSI_HOST}/metadata/identity/oauth2/token`,
    ARM_TENANT_ID: s.tenant,
    ARM_ENVIRONMENT: cloudByName(s.cloud).terraformEnvironment,
    ...(s.clientId ? { ARM_CLIENT_ID: s.clientId } : {}),
    ...(subscription && !parent.ARM_SUBSCRIPTION_ID ? { ARM_SUBSCRIPTION_ID: subscription } : {}),
  };
}
