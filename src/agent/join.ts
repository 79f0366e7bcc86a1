/**
 * Joining: the agent makes its key, proves it holds a join token, checks the
 * proxy by CA pin, and keeps the host certificate it gets. Later starts reuse
 * the stored identity, after checking the proxy is still the same cluster.
 */
import os from "node:os";
import { x509 } from "../pki/x509.ts";
import { AzgateError } from "../errors/index.ts";
import { ApiClient } from "../api/client.ts";
import { establishTrust, followHostCas, learnHostCas, proxyBaseUrl } from "../api/trust.ts";
import { issuerOf } from "../pki/certificate.ts";
import { caPin } from "../pki/pin.ts";
import type { HostCertificate } from "../api/types.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../pki/keys.ts";
import { agentStateDir, loadAgentState, saveAgentState, trustedHostCas, withHostCas, type AgentIdentity, type AgentState } from "./state.ts";
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
    const followed = await followCluster(existing, opts);
    if ("state" in followed) {
      const expires = new x509.X509Certificate(followed.state.certPem).notAfter;
      // Still valid and from a CA the cluster trusts: use it; the renewal timer replaces it soon enough.
      if (expires.getTime() > opts.clock.now() + 1_000 && !followed.retired) return followed.state;
      if (!opts.token) {
        if (followed.retired) throw new AzgateError("ca_retired", followed.retired);
        throw new AzgateError("cert_expired", `the agent's certificate expired at ${expires.toISOString()} while it was away; give it a new join token (--token) to join again`);
      }
      return join(opts, trustedHostCas(followed.state.identity));
    }
    // The proxy presents no CA this agent trusts: joining again needs a token and the pin to trust (checked by its operator).
    if (!(opts.token && opts.caPin)) throw followed.refused;
  }
  if (!opts.token) throw new AzgateError("config_invalid", "this agent has not joined yet: give it a join token (--token or agent.auth_token); create one with azgate admin tokens add --type=app");
  return join(opts);
}

/** What an agent's operator runs to join it again, trusting `pin`. */
const rejoinCommand = (pin: string) =>
  `join this agent again: create a join token on the proxy host (azgate admin tokens add --type=app) and start the agent with --token <token> --ca-pin ${pin} (Helm: set authToken, and add the pin to caPin)`;

async function join(opts: JoinOptions, knownCaPems?: string[]): Promise<AgentState> {
  const { target, ping } = await establishTrust({ proxy: opts.proxyAddr, caPin: opts.caPin, insecure: opts.insecure, knownCaPems: opts.caPin ? undefined : knownCaPems, proxyCaPems: opts.proxyCaPems }).catch((e) => {
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
  // Joined mid-rotation: both host CAs, the second on the word of the one just checked (pki/endorsement.ts).
  const anchor = target.ca_pem ?? ping.host_ca_pems[0] ?? res.host_ca_pem;
  const offered = res.host_ca_pems?.length ? res.host_ca_pems : [res.host_ca_pem];
  const trusted = await followHostCas({ known: [anchor], offered, endorsements: res.ca_endorsements, cluster: res.cluster_name, now: opts.clock.date() });
  const identity: AgentIdentity = { cluster_name: res.cluster_name, host_id: res.host_id, proxy_addr: opts.proxyAddr, host_ca_pem: anchor, joined: opts.clock.date().toISOString() };
  const state: AgentState = {
    identity: trusted.length ? withHostCas(identity, trusted) : identity,
    keyPem: await privateKeyToPem(keys.privateKey),
    certPem: res.cert_pem,
  };
  await saveAgentState(opts.dataDir, state);
  return state;
}

/**
 * The stored identity is this proxy's cluster, and the host CAs it trusts
 * follow a rotation that moved while it was stopped (api/trust.ts
 * learnHostCas: what it trusted, what it pins, and what those vouch for).
 * Says whether its certificate is from a CA the cluster no longer trusts,
 * or refuses with what to do when nothing the proxy offers can be trusted.
 */
async function followCluster(state: AgentState, opts: JoinOptions): Promise<{ state: AgentState; retired?: string } | { refused: AzgateError }> {
  const known = trustedHostCas(state.identity);
  // Another cluster is not a rotation it missed: a token and a pin do not make it join over its identity.
  const otherCluster = (name: string) =>
    new AzgateError("config_invalid", `the data dir ${agentStateDir(opts.dataDir)} belongs to cluster "${state.identity.cluster_name}", but the proxy at ${opts.proxyAddr} is cluster "${name}"; use another --data-dir, or delete ${agentStateDir(opts.dataDir)} to join "${name}"`);
  let learnt: Awaited<ReturnType<typeof learnHostCas>>;
  try {
    learnt = await learnHostCas({ baseUrl: proxyBaseUrl(opts.proxyAddr), proxy: opts.proxyAddr, known, pins: opts.caPin ? [opts.caPin].flat() : undefined, proxyCaPems: opts.proxyCaPems, cluster: state.identity.cluster_name, command: rejoinCommand, now: opts.clock.date(), otherCluster });
  } catch (e) {
    const err = e as AzgateError;
    if (err.code === "connection_failed") return { state }; // unreachable now: the tunnel retries
    if (err.code !== "cert_untrusted" && err.code !== "ca_retired") throw e;
    return { refused: new AzgateError(err.code, `${err.message}. (The data dir ${agentStateDir(opts.dataDir)} holds this agent's identity in cluster "${state.identity.cluster_name}"; joining again replaces it.)`) };
  }
  const { trusted, ping } = learnt;
  const next = trusted.join() === known.join() ? state : { ...state, identity: withHostCas(state.identity, trusted) };
  if (next !== state) await saveAgentState(opts.dataDir, next);
  const offered = ping.host_ca_pems.map((p) => new x509.X509Certificate(p));
  if (await issuerOf(new x509.X509Certificate(state.certPem), offered)) return { state: next };
  const pins = await Promise.all(known.map((p) => caPin(new x509.X509Certificate(p))));
  const retired = (ping.retired_ca_pins ?? []).find((r) => pins.includes(r.pin));
  return { state: next, retired: `this agent's certificate is from the cluster's host CA ${retired?.pin ?? pins.join(", ")}, retired by a rotation${retired ? ` at ${retired.retired}` : ""} while the agent was stopped; ${rejoinCommand(ping.ca_pins[0])}` };
}
