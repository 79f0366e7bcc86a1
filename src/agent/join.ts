/**
 * Joining: the agent makes its key, proves it holds a join token, checks the
 * proxy by CA pin, and keeps the host certificate it gets. Later starts reuse
 * the stored identity, after checking the proxy is still the same cluster.
 */
import os from "node:os";
import { x509 } from "../pki/x509.ts";
import { AzgateError } from "../errors/index.ts";
import { ApiClient } from "../api/client.ts";
import { establishTrust } from "../api/trust.ts";
import type { HostCertificate, PingResponse } from "../api/types.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../pki/keys.ts";
import { agentStateDir, loadAgentState, saveAgentState, type AgentState } from "./state.ts";
import type { Clock } from "../util/clock.ts";

export interface JoinOptions {
  dataDir: string;
  proxyAddr: string;
  token?: string;
  caPin?: string | string[];
  /** CAs of a TLS front before the proxy (agent.proxy_ca_file). */
  proxyCaPems?: string[];
  insecure?: boolean;
  hostName?: string;
  clock: Clock;
}

export async function ensureJoined(opts: JoinOptions): Promise<AgentState> {
  const existing = await loadAgentState(opts.dataDir);
  if (existing) {
    await checkSameCluster(existing, opts);
    const expires = new x509.X509Certificate(existing.certPem).notAfter;
    // Still valid: use it; the renewal timer replaces it soon enough.
    if (expires.getTime() > opts.clock.now() + 1_000) return existing;
    if (!opts.token) {
      throw new AzgateError("cert_expired", `the agent's certificate expired at ${expires.toISOString()} while it was away; give it a new join token (--token) to join again`);
    }
  }
  if (!opts.token) throw new AzgateError("config_invalid", "this agent has not joined yet: give it a join token (--token or agent.auth_token); create one with azgate admin tokens add --type=app");
  return join(opts, existing?.identity.host_ca_pem);
}

async function join(opts: JoinOptions, knownCaPem?: string): Promise<AgentState> {
  const { target, ping } = await establishTrust({ proxy: opts.proxyAddr, caPin: opts.caPin, insecure: opts.insecure, knownCaPem: opts.caPin ? undefined : knownCaPem, proxyCaPems: opts.proxyCaPems }).catch((e) => {
    if ((e as AzgateError).code === "trust_required") {
      throw new AzgateError("trust_required", `${(e as Error).message.replace(/, or --insecure.*$/, "")}; an agent needs the CA pin to join (--ca-pin or agent.ca_pin)`);
    }
    throw e;
  });
  const keys = await generateKeyPair();
  const res = await new ApiClient(target).call<HostCertificate>("POST", "/v1/join", {
    token: opts.token,
    type: "app",
    public_key_pem: await publicKeyToPem(keys.publicKey),
    host_name: opts.hostName ?? os.hostname(),
  });
  const state: AgentState = {
    identity: { cluster_name: res.cluster_name, host_id: res.host_id, proxy_addr: opts.proxyAddr, host_ca_pem: ping.host_ca_pems[0] ?? res.host_ca_pem, joined: opts.clock.date().toISOString() },
    keyPem: await privateKeyToPem(keys.privateKey),
    certPem: res.cert_pem,
  };
  await saveAgentState(opts.dataDir, state);
  return state;
}

/** The stored identity is this proxy's cluster: its host CA, read over a verified connection, is the one the agent joined. */
async function checkSameCluster(state: AgentState, opts: JoinOptions): Promise<void> {
  let ping: PingResponse;
  try {
    ({ ping } = await establishTrust({ proxy: opts.proxyAddr, knownCaPem: state.identity.host_ca_pem, proxyCaPems: opts.proxyCaPems }));
  } catch (e) {
    const err = e as AzgateError;
    if (err.code === "connection_failed") return; // unreachable now: the tunnel retries
    if (err.code !== "cert_untrusted") throw e;
    throw new AzgateError(
      "cert_untrusted",
      `the data dir ${agentStateDir(opts.dataDir)} belongs to cluster "${state.identity.cluster_name}", but the proxy at ${opts.proxyAddr} does not present that cluster's CA (${err.message}); use another --data-dir, or delete ${agentStateDir(opts.dataDir)} to join this proxy's cluster`,
    );
  }
  if (ping.cluster_name !== state.identity.cluster_name) {
    throw new AzgateError(
      "config_invalid",
      `the data dir ${agentStateDir(opts.dataDir)} belongs to cluster "${state.identity.cluster_name}", but the proxy at ${opts.proxyAddr} is cluster "${ping.cluster_name}"; use another --data-dir, or delete ${agentStateDir(opts.dataDir)} to join "${ping.cluster_name}"`,
    );
  }
}
