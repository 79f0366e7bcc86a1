/**
 * The workstation's session environment, written and read in one place: the
 * variables `azgate proxy azure` prints and `azgate az` gives its child
 * (`azureEnv`), and reading them back from a shell that already has them
 * (`tokenSecret`), with the emulated token endpoints' host names.
 */
import { AzgateError } from "../errors/index.ts";
import { cloudByName, type CloudName } from "../azure/clouds.ts";

/** The emulated managed-identity endpoints: names that resolve nowhere (.invalid), reached only through the local proxy. */
export const MSI_HOST = "azure-msi.azgate.invalid";
export const IDENTITY_HOST = "azure-identity.azgate.invalid";
/**
 * The token endpoint on the local proxy's own port, plain HTTP on loopback,
 * as App Service serves its own (IDENTITY_ENDPOINT=http://127.0.0.1:PORT/...):
 * clients reach it without the proxy or the local CA (Java, .NET, clients
 * that ignore HTTPS_PROXY for the managed-identity call). The path is azgate's
 * own, so a real App Service endpoint is never taken for it.
 */
export const LOOPBACK_TOKEN_PATH = "/azgate/msi/token";
export const loopbackTokenEndpoint = (port: number) => `http://127.0.0.1:${port}${LOOPBACK_TOKEN_PATH}`;
/** The loopback token path, with the trailing slash App Service accepts (ms-rest-nodeauth always adds one). */
export const isLoopbackTokenPath = (pathname: string) => pathname === LOOPBACK_TOKEN_PATH || pathname === `${LOOPBACK_TOKEN_PATH}/`;
const LOOPBACK_ENDPOINT = /^http:\/\/127\.0\.0\.1:\d{1,5}\/azgate\/msi\/token$/;

/**
 * What Python's requests trusts (REQUESTS_CA_BUNDLE): "local", azgate's local
 * CA alone, or "system", the local CA plus the system's roots. requests
 * builds a new SSL context per connection and OpenSSL parses the whole file
 * each time: 145 system roots cost 24.5 ms per connection, three per az
 * command (Teleport exports its local CA alone too). With "local", Python
 * cannot verify a non-Azure host it reaches through the proxy; "system"
 * keeps that working, for tools that call other HTTPS services as well.
 */
export type PythonTrust = "local" | "system";

/** The environment a shell or child process needs to use the proxy. */
export function azureEnv(p: { port: number; secret: string; configDir: string; caBundle: string; localCa: string; cloud?: CloudName; pythonTrust?: PythonTrust }): Record<string, string> {
  const proxyUrl = `http://127.0.0.1:${p.port}`;
  return {
    AZURE_CONFIG_DIR: p.configDir,
    // az's [cloud] name (knack reads AZURE_<SECTION>_<OPTION>): the app's cloud, whatever the user's shell says.
    AZURE_CLOUD_NAME: cloudByName(p.cloud).azCliName,
    HTTPS_PROXY: proxyUrl,
    HTTP_PROXY: proxyUrl,
    // Both protocols: az before 2.73 reads MSI_ENDPOINT; MSAL-based clients and Go prefer IDENTITY_ENDPOINT,
    // served on loopback over plain HTTP (no proxy, no CA needed for the token call; NO_PROXY keeps it direct).
    // MSI_ENDPOINT stays HTTPS through the proxy, though a loopback HTTP endpoint would save az two CONNECTs and
    // TLS handshakes per command (about 25 ms, measured): az prints only "<Response [401]>" for a refused token
    // call, but the reason of a refused CONNECT ("app session ... expired; run azgate apps login"), and a running
    // `proxy azure` outlives its session.
    MSI_ENDPOINT: `https://${MSI_HOST}/${p.secret}`,
    IDENTITY_ENDPOINT: loopbackTokenEndpoint(p.port),
    NO_PROXY: "127.0.0.1,localhost,::1",
    no_proxy: "127.0.0.1,localhost,::1",
    IDENTITY_HEADER: p.secret,
    // App Service's older name for the same secret, sent as the `secret` header (api-version 2017-09-01) by the
    // clients that read it: ms-rest-nodeauth (which needs it or IDENTITY_SECRET), Python azure-identity with
    // MSI_ENDPOINT alone, msrestazure in a web app. It is the value IDENTITY_HEADER and MSI_ENDPOINT's path
    // already carry in this same environment, so it discloses nothing new; the token endpoint checks it like
    // the others, on loopback, and answers only by its own names (local-proxy.ts).
    MSI_SECRET: p.secret,
    REQUESTS_CA_BUNDLE: p.pythonTrust === "system" ? p.caBundle : p.localCa,
    SSL_CERT_FILE: p.caBundle,
    NODE_EXTRA_CA_CERTS: p.localCa,
  };
}

const SECRET = /^[0-9a-f]{16,128}$/;

function inheritedError(what: string): AzgateError {
  return new AzgateError("bad_parameter", `${what}; this shell's managed-identity variables are not azgate's. Unset them (unset MSI_ENDPOINT MSI_SECRET IDENTITY_ENDPOINT IDENTITY_HEADER) or open a new shell, then run the command again`);
}

/**
 * Reuses the secret of exports already in the environment (a shell that ran
 * `azgate proxy azure`), else a new one. Another service's endpoint (a VM's,
 * App Service's) is replaced in the child's environment. What is refused is
 * a half or damaged azgate export: an IDENTITY_HEADER without its endpoint,
 * azgate's endpoint with a malformed secret, or two secrets that disagree;
 * guessing there could hand a client a secret that is not this session's.
 */
export function tokenSecret(env: Record<string, string | undefined> = process.env): string {
  const idEndpoint = env.IDENTITY_ENDPOINT;
  const idHeader = env.IDENTITY_HEADER;
  const msi = env.MSI_ENDPOINT;
  const ours = `https://${IDENTITY_HOST}`;
  const msiPrefix = `https://${MSI_HOST}/`;
  let fromIdentity: string | undefined;
  let fromMsi: string | undefined;
  if (idHeader !== undefined && !idEndpoint) throw inheritedError("IDENTITY_HEADER is set without IDENTITY_ENDPOINT");
  if (idEndpoint && (idEndpoint.replace(/\/$/, "") === ours || LOOPBACK_ENDPOINT.test(idEndpoint))) {
    if (!idHeader || !SECRET.test(idHeader)) throw inheritedError(`IDENTITY_ENDPOINT is azgate's (${idEndpoint}) but IDENTITY_HEADER is ${idHeader ? "malformed" : "missing"}`);
    fromIdentity = idHeader;
  }
  if (msi !== undefined && msi.toLowerCase().startsWith(msiPrefix.slice(0, -1))) {
    const secret = msi.slice(msiPrefix.length);
    if (!msi.startsWith(msiPrefix) || !SECRET.test(secret)) throw inheritedError(`MSI_ENDPOINT names azgate's endpoint but is malformed (${JSON.stringify(msi.slice(0, 80))})`);
    fromMsi = secret;
  }
  if (fromIdentity && fromMsi && fromIdentity !== fromMsi) throw inheritedError("IDENTITY_HEADER and MSI_ENDPOINT carry different azgate secrets");
  const found = fromIdentity ?? fromMsi;
  if (found && env.MSI_SECRET !== undefined && env.MSI_SECRET !== found) throw inheritedError("MSI_SECRET differs from the secret of azgate's endpoint");
  return fromIdentity ?? fromMsi ?? Array.from(crypto.getRandomValues(new Uint8Array(10)), (b) => b.toString(16).padStart(2, "0")).join("");
}
