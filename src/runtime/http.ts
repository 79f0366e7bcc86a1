import http from "node:http";
import https from "node:https";
import tls from "node:tls";
import net from "node:net";
import type { LookupFunction } from "node:net";
import { tlsTrust, type TlsTrust } from "./tls-trust.ts";

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  /** PEM CA certificates to trust besides the web PKI (the cluster's CA, an operator's). */
  ca?: string | readonly string[];
  /** Skip certificate verification (first contact before a pin check, or --insecure). */
  insecure?: boolean;
  /**
   * Trust exactly the server certificate with this SHA-256 fingerprint (hex,
   * any case, colons allowed) and nothing else: the offline admin path dials
   * its own proxy on loopback, whose certificate (an operator's) may name
   * neither loopback nor chain to a CA this process knows.
   */
  certSha256?: string;
  timeoutMs?: number;
  /**
   * Connect to this address, checked by the caller, instead of resolving the
   * URL's host again (the name still serves for Host, SNI and the certificate).
   */
  address?: { address: string; family: number };
  /**
   * Connect to this host and port instead (an emulator, as curl's
   * --connect-to), with the URL's host name kept for Host, SNI and the
   * certificate check.
   */
  connectTo?: { host: string; port: number };
  /** Refuse a response body longer than this (bytes): what an outside server sends is bounded before it is kept. */
  maxBytes?: number;
  /** Keep at most this many bytes of the answer and stop reading it there (a caller to whom the status is what counts). */
  keepBytes?: number;
  /** Gives the request up (a question whose answer is no longer wanted must not keep the process alive). */
  signal?: AbortSignal;
}

/**
 * One keep-alive agent per trust set given as a SecureContext: node's agents
 * pool connections by name, and a context is not part of the name, so a
 * connection verified under one trust set must not serve a request that asked
 * for another.
 */
const contextAgents = new Map<string, https.Agent>();
function agentFor(trust: TlsTrust): https.Agent | undefined {
  if (!trust.options.secureContext) return undefined;
  let agent = contextAgents.get(trust.key);
  if (!agent) contextAgents.set(trust.key, (agent = new https.Agent({ keepAlive: true, ...trust.options })));
  return agent;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * A small HTTP(S) client on node:http(s), which both runtimes implement with
 * per-request CA support (fetch on Node and Deno differ here).
 */
export async function request(url: string, opts: RequestOptions = {}): Promise<HttpResponse> {
  const u = new URL(url);
  const secure = u.protocol === "https:";
  const mod = secure ? https : http;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  // A pinned certificate is checked on a connection of our own before a byte of the request is written.
  const pinned = secure && opts.certSha256 ? await connectPinned(u, opts.certSha256, timeoutMs) : secure && opts.connectTo ? await connectRouted(u, opts.connectTo, tlsTrust(typeof opts.ca === "string" ? [opts.ca] : opts.ca), timeoutMs) : undefined;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      u,
      {
        method: opts.method ?? "GET",
        headers: { ...(opts.headers ?? {}), ...(opts.body !== undefined ? { "content-length": String(Buffer.byteLength(opts.body)) } : {}) },
        ...(secure && !pinned ? trustOptions(typeof opts.ca === "string" ? [opts.ca] : opts.ca, !!opts.insecure) : {}),
        // No agent: with one, node:http ignores createConnection.
        ...(pinned ? { createConnection: () => pinned } : {}),
        ...(opts.address ? { lookup: fixedLookup(opts.address) } : {}),
        timeout: timeoutMs,
        ...(opts.signal ? { signal: opts.signal } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (opts.maxBytes !== undefined && size > opts.maxBytes) return void req.destroy(new Error(`the answer from ${u.host} is larger than ${opts.maxBytes} bytes`));
          chunks.push(c);
          if (opts.keepBytes !== undefined && size >= opts.keepBytes) {
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).subarray(0, opts.keepBytes).toString("utf8") });
            req.destroy();
          }
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`request to ${u.host} timed out`)));
    req.on("error", reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/** A dns.lookup that answers with one address, in both of its callback shapes (net asks with `all: true` when it may try several). */
function fixedLookup(to: { address: string; family: number }): LookupFunction {
  return (_host, options, callback) => ((options as { all?: boolean })?.all ? (callback as (e: null, all: { address: string; family: number }[]) => void)(null, [to]) : callback(null, to.address, to.family));
}

function trustOptions(extra: readonly string[] | undefined, insecure: boolean) {
  const trust = tlsTrust(extra);
  return { ...trust.options, agent: agentFor(trust), rejectUnauthorized: !insecure };
}

/** A verified TLS connection to `to`, checked against the URL's host name (curl's --connect-to). */
function connectRouted(u: URL, to: { host: string; port: number }, trust: TlsTrust, timeoutMs: number): Promise<tls.TLSSocket> {
  const servername = u.hostname.replace(/^\[|\]$/g, "");
  return new Promise((resolve, reject) => {
    // An IP address is no SNI name; the certificate is still checked against it.
    const name = net.isIP(servername) ? { checkServerIdentity: (_host: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(servername, cert) } : { servername };
    const socket = tls.connect({ host: to.host, port: to.port, ...name, ...trust.options, rejectUnauthorized: true });
    const timer = setTimeout(() => socket.destroy(new Error(`connecting to ${u.host} (at ${to.host}:${to.port}) timed out`)), timeoutMs);
    socket.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
  });
}

function connectPinned(u: URL, sha256: string, timeoutMs: number): Promise<tls.TLSSocket> {
  const want = sha256.replace(/:/g, "").toLowerCase();
  const host = u.hostname.replace(/^\[|\]$/g, "");
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port: Number(u.port || 443), rejectUnauthorized: false, ...(/^[\d.:]+$/.test(host) ? {} : { servername: host }) });
    const timer = setTimeout(() => socket.destroy(new Error(`connecting to ${u.host} timed out`)), timeoutMs);
    socket.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      const got = socket.getPeerCertificate().fingerprint256?.replace(/:/g, "").toLowerCase();
      if (got === want) return resolve(socket);
      socket.destroy();
      reject(new Error(`the server at ${u.host} presented certificate ${got ?? "(none)"}, not the pinned certificate ${want}`));
    });
  });
}
