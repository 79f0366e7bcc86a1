import { readFileSync } from "node:fs";
import path from "node:path";
import { Hono } from "hono";
import { createSecureContext } from "node:tls";
import { ensureDir, serve, writeFileAtomic } from "../runtime/index.ts";
import { serveConnect } from "../net/connect-server.ts";
import { createAuthority } from "../pki/authority.ts";
import { generateKeyPair, privateKeyToPem } from "../pki/keys.ts";
import { issueServerCert } from "../pki/certificate.ts";
import { DEFAULT_WORLD_YAML } from "./default-world.ts";
import { parseWorld, type World } from "./world.ts";
import { newSigningKey } from "./keys.ts";
import { WorkloadIssuer } from "./workload-issuer.ts";
import { entraApp } from "./entra.ts";
import { armApp } from "./arm.ts";
import { ActivityLog } from "./activity-log.ts";
import { imdsApp, IMDS_HOST } from "./imds.ts";
import { keyVaultApp } from "./keyvault.ts";
import { blobApp } from "./blob.ts";
import { cloudHostNames, EMULATED_CLOUDS } from "./clouds.ts";
import { startCiIssuers, type CiIssuers } from "./ci-issuers.ts";
import { ciRunner, type CiRunner } from "./ci-runner.ts";

/** Host names the emulator answers for (public Azure's, US Government's, China's); its certificate names all of them. */
export const EMULATED_HOSTS = [...cloudHostNames(), "oidc.prod-aks.azure.com", "token.actions.githubusercontent.com", "vstoken.dev.azure.com", "gitlab.com", "localhost"];

export interface RunningEmulator {
  world: World;
  /** Direct HTTPS (connect-to style: resolve the real names to this address). */
  httpsPort: number;
  /** HTTP proxy that terminates CONNECT itself (for HTTPS_PROXY clients). */
  proxyPort: number;
  /** PEM of the emulator's CA: trusted only by what the caller points at it. */
  caFile: string;
  caPem: string;
  issuer: WorkloadIssuer;
  /** CI systems' OIDC issuers (GitHub Actions, Azure DevOps, GitLab), for bots' joins (ci-issuers.ts). */
  ci: CiIssuers & { runner: CiRunner };
  /** The most recent requests it served (bounded), so tests can see what reached "Azure". */
  requests: SeenRequest[];
  /** Every access token Entra and IMDS issued, so tests can prove none reaches a client. */
  issuedTokens: Set<string>;
  /** ARM's Activity Log: every write, as Azure records it (activity-log.ts). */
  activity: ActivityLog;
  close(): Promise<void>;
}

export interface SeenRequest {
  method: string;
  host: string;
  path: string;
  authorization?: string;
  headers: Record<string, string>;
  /** Sent back as x-ms-request-id. */
  requestId: string;
}

const REQUEST_LOG_SIZE = 2000;

/**
 * Starts the emulator: Entra ID, the AKS OIDC issuer, ARM, IMDS, Key Vault and
 * Blob storage, on one HTTPS port dispatching by host, plus a proxy port.
 */
export async function startEmulator(opts: {
  dir: string;
  worldFile?: string;
  hostname?: string;
  httpsPort?: number;
  proxyPort?: number;
  armPageSize?: number;
  /** More hosts to answer, by exact name, ahead of the emulated services (the bench's sink); they must be names the certificate covers. */
  extraHosts?: Record<string, (req: Request) => Response | Promise<Response>>;
}): Promise<RunningEmulator> {
  const world = opts.worldFile ? parseWorld(readFileSync(opts.worldFile, "utf8"), opts.worldFile) : parseWorld(DEFAULT_WORLD_YAML, "default world");
  await ensureDir(opts.dir);
  // The emulator stands in for Azure and Entra ID, whose clocks are not azgate's: it reads the machine's (util/clock.ts).
  const now = new Date();
  const ca = await createAuthority("host", "azgate Azure emulator", now);
  const keys = await generateKeyPair();
  const cert = await issueServerCert({ ca, publicKey: keys.publicKey, dnsNames: EMULATED_HOSTS, ips: ["127.0.0.1"], now, notAfter: new Date(now.getTime() + 7 * 86_400_000) });
  const caPem = ca.cert.toString("pem") + "\n";
  const tls = { key: await privateKeyToPem(keys.privateKey), cert: cert.toString("pem") + "\n" + caPem };
  const caFile = path.join(opts.dir, "emulator-ca.pem");
  await writeFileAtomic(caFile, caPem, 0o600);

  const issuer = new WorkloadIssuer(world.aks_oidc_issuer, await newSigningKey("aks-emulated-1"));
  const entraKey = await newSigningKey("entra-emulated-1");
  const issuedTokens = new Set<string>();
  const onIssued = (token: string) => issuedTokens.add(token);
  // Each cloud's services, by exact host or by suffix (vaults and storage accounts are subdomains).
  const byHost = new Map<string, { fetch: (r: Request) => Response | Promise<Response> }>();
  const bySuffix: [string, { fetch: (r: Request) => Response | Promise<Response> }][] = [];
  const armHosts = new Set<string>();
  const activity = new ActivityLog(world.tenant_id);
  for (const cloud of EMULATED_CLOUDS) {
    byHost.set(cloud.loginHost, entraApp({ world, key: entraKey, issuers: [issuer], onIssued, cloud }));
    byHost.set(cloud.armHost, armApp({ world, key: entraKey, pageSize: opts.armPageSize, cloud, activity }));
    armHosts.add(cloud.armHost);
    bySuffix.push([cloud.vaultSuffix, keyVaultApp({ world, key: entraKey, cloud })], [cloud.blobSuffix, blobApp({ world, key: entraKey, dir: opts.dir, cloud })]);
  }
  const imds = imdsApp({ world, key: entraKey, onIssued });
  const issuerPath = new URL(issuer.issuer).pathname.replace(/\/$/, "");
  const ci = await startCiIssuers();
  const runner = ciRunner(ci);
  const aks = new Hono()
    .get(`${issuerPath}/.well-known/openid-configuration`, (c) => c.json(issuer.discovery()))
    .get(`${issuerPath}/openid/v1/jwks`, (c) => c.json(issuer.jwks()));

  const requests: SeenRequest[] = [];
  const root = new Hono();
  root.use("*", async (c, next) => {
    // The URL's host: an absolute-form request line wins over the Host header (RFC 9112 3.2.2).
    const url = new URL(c.req.url);
    const host = url.hostname.toLowerCase();
    // Like Azure, every answer carries a request id (clients log it; azgate's audit records it).
    const requestId = crypto.randomUUID();
    requests.push({ method: c.req.method, host, path: url.pathname + url.search, authorization: c.req.header("authorization"), headers: Object.fromEntries(c.req.raw.headers), requestId });
    if (requests.length > REQUEST_LOG_SIZE) requests.splice(0, requests.length - REQUEST_LOG_SIZE);
    await next();
    c.res.headers.set("x-ms-request-id", requestId);
    // ARM sets its own once it has read the token (arm.ts); what it refused before that still carries one.
    if (armHosts.has(host) && !c.res.headers.has("x-ms-correlation-request-id")) c.res.headers.set("x-ms-correlation-request-id", c.req.header("x-ms-correlation-request-id") ?? requestId);
  });
  root.all("*", (c) => {
    const host = new URL(c.req.url).hostname.toLowerCase();
    const extra = opts.extraHosts?.[host];
    if (extra) return extra(c.req.raw);
    const service = byHost.get(host) ?? bySuffix.find(([suffix]) => host.endsWith(suffix))?.[1];
    if (service) return service.fetch(c.req.raw);
    if (host === "oidc.prod-aks.azure.com") return aks.fetch(c.req.raw);
    if (ci.hosts[host]) return ci.hosts[host].fetch(c.req.raw);
    // A CI runner's token service, on the emulator's own address (ci-runner.ts).
    if (host === "localhost" || host === "127.0.0.1") return runner.app.fetch(c.req.raw);
    // IMDS is plain HTTP: it arrives as an absolute-URI request on the proxy port.
    if (host === IMDS_HOST) return imds.fetch(c.req.raw);
    return c.json({ error: { code: "UnknownHost", message: `the Azure emulator does not serve ${host || "(no host)"}` } }, 404);
  });

  const hostname = opts.hostname ?? "127.0.0.1";
  const direct = await serve({ fetch: root.fetch, hostname, port: opts.httpsPort ?? 0, tls });
  runner.baseUrl = `https://127.0.0.1:${direct.port}`;
  // Every CONNECT is terminated here with the one certificate that names all of the emulator's hosts.
  const context = createSecureContext({ key: tls.key, cert: tls.cert });
  const proxy = await serveConnect({ hostname, port: opts.proxyPort ?? 0, decide: () => ({ intercept: true }), secureContext: async () => context, fetch: root.fetch, plain: root.fetch });
  return {
    world,
    httpsPort: direct.port,
    proxyPort: proxy.port,
    caFile,
    caPem,
    issuer,
    ci: { ...ci, runner },
    requests,
    issuedTokens,
    activity,
    close: async () => {
      await proxy.close();
      await direct.close();
    },
  };
}
