/**
 * Dials a proxy tunnel endpoint: a WebSocket upgrade carrying a proof of
 * possession for the caller's certificate, verified against a pinned CA.
 */
import { WebSocket } from "ws";
import { AzgateError, fromErrorBody } from "../errors/index.ts";
import { createProof, PROOF_SCHEME } from "../auth/proof.ts";
import { tlsTrust } from "../runtime/tls-trust.ts";
import { attachSession, WS_MAX_PAYLOAD } from "./websocket.ts";
import type { SessionOptions, TunnelSession } from "./session.ts";
import type { Clock } from "../util/clock.ts";
import { VERSION } from "../version.ts";
import { AZGATE_ERROR_HEADER, readErrorHeader } from "../api/error-header.ts";

/** The caller's version on every handshake (api/version.ts reads it; the name is there too). */
const VERSION_HEADER = "x-azgate-version";

export interface DialOptions {
  /** https://host:port of the proxy. */
  baseUrl: string;
  /** "/v1/tunnel/agent" or "/v1/tunnel/client". */
  path: string;
  /** CAs trusted besides the web PKI (the cluster's host CA, a TLS front's). */
  caPems?: readonly string[];
  insecure?: boolean;
  key: CryptoKey;
  certPem: string;
  session: Omit<SessionOptions, "role">;
  timeoutMs?: number;
  /** Gives up the dial (a local proxy closing before its tunnel is up). */
  signal?: AbortSignal;
  /** Dates the upgrade's proof. */
  clock: Clock;
  /** The version this side claims (VERSION; tests claim others). */
  version?: string;
}

/**
 * The masking key of every frame this side sends: all zeros. RFC 6455 has
 * clients mask so that bytes a browser script chose cannot be read as
 * something else by a cleartext intermediary; a tunnel is TLS from azgate's
 * own processes, and `ws` skips the XOR for a zero key on both ends (without
 * the native bufferutil it ran in JavaScript over every byte).
 */
const zeroMask = (mask: Uint8Array) => void mask.fill(0);

export async function dialTunnel(opts: DialOptions): Promise<TunnelSession> {
  const url = new URL(opts.path, opts.baseUrl);
  const proof = await createProof({ key: opts.key, certPem: opts.certPem, method: "GET", pathAndQuery: url.pathname + url.search, now: opts.clock.now() });
  url.protocol = "wss:";
  const ws = new WebSocket(url, {
    headers: { authorization: `${PROOF_SCHEME} ${proof}`, [VERSION_HEADER]: opts.version ?? VERSION },
    ...tlsTrust(opts.caPems).options,
    rejectUnauthorized: !opts.insecure,
    maxPayload: WS_MAX_PAYLOAD,
    handshakeTimeout: opts.timeoutMs ?? 15_000,
    perMessageDeflate: false,
    generateMask: zeroMask,
  });
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      opts.signal?.removeEventListener("abort", cancelled);
      ws.removeAllListeners();
      ws.on("error", () => undefined);
      ws.terminate();
      reject(err);
    };
    ws.once("unexpected-response", (_req, res) => {
      const header = res.headers[AZGATE_ERROR_HEADER];
      const said = readErrorHeader(typeof header === "string" ? header : undefined);
      const err = said ? fromErrorBody(res.statusCode ?? 500, { error: said }) : new AzgateError("connection_failed", `the proxy refused the tunnel (HTTP ${res.statusCode})`);
      res.resume();
      fail(err);
    });
    ws.once("error", (e) => fail(new AzgateError("connection_failed", `cannot open a tunnel to ${opts.baseUrl}: ${e.message}`, { cause: e })));
    const cancelled = () => fail(new AzgateError("connection_failed", `the tunnel to ${opts.baseUrl} was given up before it opened`));
    if (opts.signal?.aborted) return cancelled();
    opts.signal?.addEventListener("abort", cancelled, { once: true });
    ws.once("open", () => {
      opts.signal?.removeEventListener("abort", cancelled);
      ws.removeAllListeners("error");
      ws.removeAllListeners("unexpected-response");
      resolve(attachSession(ws, { ...opts.session, role: "dialer" }));
    });
  });
}
