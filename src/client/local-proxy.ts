/**
 * The workstation side of an Azure app session: the local forward proxy
 * (CONNECT, TLS interception for Azure and the token hosts), the token
 * endpoint emulation, and one authenticated tunnel session to the proxy that
 * carries every other intercepted request as a stream (re-dialled when lost).
 */
import { endWithStatus, SpanKind, startTracing, tracingEndpoint, type Tracing } from "../tracing/index.ts";
import { checkAzureMethod, forwardableHeaders, refusal } from "../azure/forwarding.ts";
import { AZGATE_ERROR_HEADER, readErrorHeader } from "../api/error-header.ts";
import { AzgateError, isAzgateError, TargetRefused } from "../errors/index.ts";
import dns from "node:dns/promises";
import net from "node:net";
import { serveConnect, type ConnectDecision } from "../net/connect-server.ts";
import type { ReservedPort } from "../net/listen.ts";
import { sendsInterimContinue } from "../runtime/version.ts";
import { localTargetReason } from "../net/address-policy.ts";
import { dialTunnel, ErrorCode, type TunnelSession } from "../tunnel/index.ts";
import { headerValue, tunnelRequest } from "../tunnel/http.ts";
import type { Invocation } from "../azure/client-info.ts";
import { isUntrustedTls, trustedCas, type ApiTarget } from "../api/client.ts";
import { SessionCredentials } from "./session-credentials.ts";
import { followSessionRotation } from "./session-rotation.ts";
import { isLocalCaName, LeafMinter, type LocalCaFiles } from "./local-ca.ts";
import { cloudByName, type CloudName } from "../azure/clouds.ts";
import { otherCloudsOf } from "../azure/endpoints.ts";
import { tokenEndpoint } from "./token-endpoint.ts";
import { IDENTITY_HOST, isLoopbackTokenPath, LOOPBACK_TOKEN_PATH, MSI_HOST } from "./session-env.ts";
import type { Clock } from "../util/clock.ts";

export interface AppCredentials {
  app: string;
  /** The app's cloud: its API hosts are intercepted, other clouds' refused. */
  cloud: CloudName;
  identity: string;
  /** The identity's client and principal IDs, when known (apps login). */
  clientId?: string;
  principalId?: string;
  tenant: string;
  key: CryptoKey;
  certPem: string;
  expires: Date;
}

/** How a running local proxy follows a rotation of the cluster's CAs (client/session-rotation.ts). */
export interface RotationHooks {
  /** The cluster the session is in (its trust calls must name it). */
  cluster: string;
  proxy: string;
  /** Store the reissued key and certificate beside the app session. */
  onReissued?: (keyPem: string, certPem: string) => Promise<void>;
  /** Store the host CAs trusted now in the login profile. */
  onTrusted?: (pems: string[]) => Promise<void>;
}

export interface RunningLocalProxy {
  port: number;
  secret: string;
  close(): Promise<void>;
  /**
   * A renewed app certificate for the same key (a bot renews in memory:
   * client/bot-session.ts): new tunnels and tokens use it, the token
   * endpoint's tokens last to its end. The open tunnel ends with the old one.
   */
  renew(creds: { certPem: string; expires: Date }): void;
  /** Settles with the first tunnel dial (started at once, while the client boots): a proxy that is down is known early. */
  connected: Promise<void>;
  /** True once a request has had an answer from beyond the proxy (Azure's, or an agent's). */
  readonly gotThrough: boolean;
}

const NULL_BODY = new Set([101, 204, 205, 304]);

/** A refusal from the workstation, in the shape every hop uses (forwarding.ts). */
function refused(err: AzgateError): Response {
  const r = refusal(err, "azgate");
  return Response.json(r.body, { status: r.status });
}

/**
 * The proxy said no (a 4xx at the tunnel's upgrade: a lock, a deleted, reset
 * or re-created user, an expired certificate), as opposed to a proxy that
 * cannot be reached. Clients retry a 502; they must not retry a refusal.
 */
const isRefusal = (e: unknown): e is AzgateError => isAzgateError(e) && e.status >= 400 && e.status < 500;

/** Serves the local proxy on a port reserved earlier (local-session.ts), which it adopts. */
export async function serveLocalProxy(opts: {
  creds: AppCredentials;
  target: ApiTarget;
  ca: LocalCaFiles;
  secret: string;
  reserved: ReservedPort;
  log?: (l: string) => void;
  clock: Clock;
  invocation?: Invocation;
  /** Told when the proxy refuses this session (a lock, the account gone): a bot's proxy ends on it. */
  onRefused?: (e: AzgateError) => void;
  /**
   * Told when answers start saying that no agent serves the app (a 503 that az and the SDKs retry for
   * seconds), with `first` when no request of this proxy had got through before; again after one has.
   */
  onAppUnavailable?: (first: boolean) => void;
  /** How it follows a rotation of the cluster's CAs (session-rotation.ts); none for a session that does not. */
  rotation?: RotationHooks;
  /** The client's spans (tracing/); by default from AZGATE_TRACING_ENDPOINT or OpenTelemetry's variables, else none. */
  tracing?: Tracing;
}): Promise<RunningLocalProxy> {
  const tracing = opts.tracing ?? (await startTracing("azgate-client", tracingEndpoint(process.env.AZGATE_TRACING_ENDPOINT)));
  const { cloud } = opts.creds;
  const { clock } = opts;
  const minter = new LeafMinter(opts.ca, clock, cloud);
  const { identity, clientId, principalId, tenant } = opts.creds;
  // The certificate's end may be renewed (renew below, a bot's); everything reads it from here.
  let expires = opts.creds.expires;
  const log = opts.log;
  // The key and certificate, and the host CAs trusted: a rotation of the cluster's CAs replaces them while this runs.
  const creds = await SessionCredentials.create(opts.creds.key, opts.creds.certPem, [...(opts.target.ca_pem ? [opts.target.ca_pem] : []), ...(opts.target.host_ca_pems ?? [])]);
  const observe = log && ((i: { dialect: string; resource: string; selector?: string }) => log(`token for ${i.resource} (${i.dialect} dialect${i.selector ? `, by ${i.selector}` : ""})`));
  const tokens = tokenEndpoint({ secret: opts.secret, identity, clientId, principalId, tenant, signer: () => ({ key: creds.key, kid: creds.kid }), get expires() { return expires; }, observe, clock });
  let session: Promise<TunnelSession> | null = null;
  /** Tunnels opened with a certificate since renewed, closed after a grace. */
  const retired = new Set<Promise<TunnelSession>>();
  // Closing gives up a dial still under way: a command that ended before the tunnel was up (az --version,
  // a script that fails at once) must not wait for it, least of all for a proxy that never answers.
  const closing = new AbortController();
  const dial = async (): Promise<TunnelSession> => {
    const open = async () => {
      const kid = creds.kid;
      const s = await dialTunnel({ baseUrl: opts.target.baseUrl, path: "/v1/tunnel/client", caPems: trustedCas({ ...opts.target, ca_pem: undefined, host_ca_pems: creds.hostCas }), insecure: opts.target.insecure, key: creds.key, certPem: creds.certPem, session: { onStream: (stream) => (rotation ? void rotation.onStream(stream) : stream.reset(ErrorCode.REFUSED_STREAM, "this session does not follow rotations")) }, signal: closing.signal, clock });
      creds.opened(s, kid);
      return s;
    };
    try {
      return await open();
    } catch (e) {
      // The proxy's certificate is from a host CA this session missed (it rotated): learn it, or say what to do.
      if (!rotation || !isUntrustedTls(e)) throw e;
      await rotation.learn();
      return open();
    }
  };
  const tunnel = async (): Promise<TunnelSession> => {
    const current = session ? await session.catch(() => null) : null;
    if (current && !current.isClosed && !current.isDraining) return current;
    session = dial();
    return session;
  };
  const rotation = opts.rotation && !opts.target.insecure
    ? followSessionRotation({
        creds,
        cluster: opts.rotation.cluster,
        proxy: opts.rotation.proxy,
        baseUrl: opts.target.baseUrl,
        proxyCaPems: opts.target.proxy_ca_pems,
        current: async () => (session ? await session.catch(() => null) : null),
        // Make before break: the new tunnel is in use before the old one drains its open requests.
        reopen: async () => {
          const old = session ? await session.catch(() => null) : null;
          const fresh = await dial();
          session = Promise.resolve(fresh);
          void old?.drain(30_000, "moved to a tunnel with a reissued certificate");
        },
        onReissued: opts.rotation.onReissued,
        onTrusted: opts.rotation.onTrusted,
        clock,
        log,
      })
    : null;

  /**
   * What the client hears when its request did not get through. A refusal keeps its own status and code
   * (403 locked, 401 unauthenticated...), so az and the SDKs do not retry it; only a proxy that cannot be
   * reached is azgate_unavailable, a 502 they retry. A request lost with a tunnel the proxy closed (a lock
   * or an account change cuts open tunnels: proxy/tunnels.ts) learns nothing from the close itself, so
   * the proxy is asked once more: the new dial's refusal says why. Nothing is resent.
   */
  const whyNot = async (e: unknown, used: TunnelSession | undefined): Promise<AzgateError> => {
    const refusedWith = (err: AzgateError) => (opts.onRefused?.(err), err);
    if (isRefusal(e)) return refusedWith(e);
    if (used && (used.isClosed || used.isDraining)) {
      const redial = await tunnel().then(() => null, (err: unknown) => err);
      if (isRefusal(redial)) return refusedWith(redial);
    }
    return new AzgateError("azgate_unavailable", (e as Error).message);
  };

  /** Whether any request has had an answer from beyond the proxy (Azure's, or an agent's); whether the last said no agent serves the app. */
  let gotThrough = false;
  let appDown = false;
  const handle = async (req: Request): Promise<Response> => {
    const local = tokens(req);
    if (local) return local;
    const url = new URL(req.url);
    const methodProblem = checkAzureMethod(req.method);
    if (methodProblem) return refused(methodProblem);
    // The CONNECT server checked that Host names the CONNECT target.
    const hostHeader = (req.headers.get("host") ?? "").toLowerCase().replace(/:443$/, "");
    const all: [string, string][] = [];
    req.headers.forEach((v, k) => all.push([k, v]));
    // The client's span: a child of the caller's own (an SDK that traces sends its traceparent), the proxy's parent.
    const span = tracing.start(`azgate client ${req.method}`, SpanKind.CLIENT, all, { "http.request.method": req.method, "server.address": hostHeader, "url.path": url.pathname });
    const headers = tracing.forward(forwardableHeaders(all, "request"), span);
    // The method first: reading `req.body` makes the adapter build a web stream over the socket, even for a GET.
    const body = !["GET", "HEAD"].includes(req.method) && req.body ? req.body : undefined;
    let res;
    let used: TunnelSession | undefined;
    const authorization = headers.find((h) => h[0].toLowerCase() === "authorization");
    const token = authorization?.[1];
    try {
      for (let tries = 0; ; tries++) {
        used = await tunnel();
        // A token this session signed before its key was rotated goes with the key of this tunnel (session-credentials.ts).
        if (authorization && token) authorization[1] = await creds.authorizationFor(token, used);
        // While the token was signed again, a rotation may have moved the session to a new tunnel and closed
        // this one (reopen, above): nothing was sent on it yet, so the request takes the new one.
        if (!(used.isClosed || used.isDraining) || tries >= 2) break;
      }
      res = await tunnelRequest(used, { method: req.method, url: `https://${hostHeader}${url.pathname}${url.search}`, headers, ...(opts.invocation ? { invocation: opts.invocation } : {}) }, body);
    } catch (e) {
      const err = await whyNot(e, used);
      endWithStatus(span, undefined, err.code);
      return refused(err);
    }
    endWithStatus(span, res.status);
    if (readErrorHeader(headerValue(res.headers, AZGATE_ERROR_HEADER)[0])?.code === "app_unavailable") {
      if (!appDown) opts.onAppUnavailable?.(!gotThrough);
      appDown = true;
    } else gotThrough = !(appDown = false);
    const out = new Headers();
    // The body is streamed on as it comes: its length is the new hop's business.
    for (const [k, v] of forwardableHeaders(res.headers, "response")) if (k.toLowerCase() !== "content-length") out.append(k, v);
    if (NULL_BODY.has(res.status) || req.method === "HEAD") {
      void res.body.cancel().catch(() => undefined);
      return new Response(null, { status: res.status, headers: out });
    }
    // An answer that is already whole (most ARM reads) goes out as bytes; a longer one is streamed as it comes.
    return new Response((res.stream.takeWhole() as Uint8Array<ArrayBuffer> | null) ?? res.body, { status: res.status, headers: out });
  };

  // Warm up while the client starts (az needs most of a second to boot Python): dial the tunnel and mint
  // the certificates nearly every session uses, so the first request does not wait for them.
  const connected = tunnel().then(() => undefined);
  connected.catch(() => undefined);
  for (const host of [MSI_HOST, IDENTITY_HOST, cloudByName(cloud).armHost]) void minter.context(host).catch(() => undefined);

  const decide = async ({ host, port }: { host: string; port: number }): Promise<ConnectDecision> => {
    // After the app certificate ends, nothing here works (its local CA ended too): say so at CONNECT, before TLS fails obscurely.
    if (clock.now() >= expires.getTime()) return { refuse: `azgate app session for "${opts.creds.app}" expired at ${expires.toISOString()}; run azgate apps login ${opts.creds.app}` };
    // What the local CA may sign for (the token hosts and Azure's) is exactly what is intercepted.
    if (port === 443 && isLocalCaName(host, cloud)) return { intercept: true };
    // Another cloud's API host: a client configured for the wrong cloud; say so rather than send it a placeholder.
    const others = otherCloudsOf(host, cloud);
    if (others.length > 0) return { refuse: `azgate: ${host} is an API host of ${others.map((c) => c.name).join(" and ")}, but app "${opts.creds.app}" is in ${cloud}; point the client at ${cloud}` };
    // Everything else goes through untouched, but never to this machine or its link (loopback services, IMDS).
    return tunnelTo(host);
  };
  // Plain HTTP on the proxy's port: the loopback token endpoint, asked for by this port's own name (so a web
  // page cannot reach it through another name it controls); nothing else (no plain proxying, to IMDS least of all).
  let listenPort = 0;
  const plain = (req: Request): Response | Promise<Response> => {
    const host = (req.headers.get("host") ?? "").toLowerCase();
    const ours = [`127.0.0.1:${listenPort}`, `localhost:${listenPort}`, `[::1]:${listenPort}`].includes(host);
    const url = new URL(req.url);
    if (ours && isLoopbackTokenPath(url.pathname)) return tokens.loopback(req);
    const why = `the azgate local proxy takes CONNECT for HTTPS, and serves only its token endpoint (http://127.0.0.1:${listenPort}${LOOPBACK_TOKEN_PATH}) over plain HTTP`;
    // --debug: a client that went to IMDS (169.254.169.254) or another plain-HTTP address shows up here. The
    // query is left out: it may carry what a client meant for that address alone.
    log?.(`refused plain HTTP ${req.method} ${host || url.host}${url.pathname}: ${why}`);
    return refused(new TargetRefused(why));
  };
  const proxy = await serveConnect({ hostname: "127.0.0.1", port: opts.reserved.port, reserved: opts.reserved, loopbackOnly: true, decide, secureContext: (name) => minter.context(name), fetch: handle, plain, interimContinue: sendsInterimContinue(), log: opts.log });
  listenPort = proxy.port;
  return {
    port: proxy.port,
    secret: opts.secret,
    connected,
    get gotThrough() {
      return gotThrough;
    },
    renew(next) {
      creds.renewed(next.certPem);
      expires = next.expires;
      // The next request dials with the new certificate; the old tunnel is closed once its requests had a
      // minute to finish (an I/O grace, on the runtime's timer: it decides no access).
      const old = session;
      session = null;
      if (old) {
        retired.add(old);
        setTimeout(() => void old.then((s) => s.close(), () => undefined).finally(() => retired.delete(old)), 60_000).unref();
      }
    },
    close: async () => {
      closing.abort();
      await proxy.close();
      for (const s of [session, ...retired]) (await s?.catch(() => null))?.close();
      await tracing.shutdown();
    },
  };
}

/** A tunnelled CONNECT: the name resolved here, refused if any address is loopback or link-local, the checked address dialled. */
async function tunnelTo(host: string): Promise<ConnectDecision> {
  let addresses: { address: string }[];
  try {
    addresses = net.isIP(host) ? [{ address: host }] : await dns.lookup(host, { all: true, verbatim: true });
  } catch {
    return { refuse: `azgate local proxy: cannot resolve ${host}` };
  }
  if (addresses.length === 0) return { refuse: `azgate local proxy: cannot resolve ${host}` };
  for (const { address } of addresses) {
    const why = localTargetReason(address);
    if (why) return { refuse: `azgate local proxy: ${host} is a ${why} address; the local proxy does not tunnel to this machine or its link` };
  }
  return { tunnel: addresses[0].address };
}
