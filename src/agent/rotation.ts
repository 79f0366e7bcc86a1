/**
 * How a running agent follows a rotation of the cluster's host CA without a
 * person (docs/rotation.md): the proxy's trust call (api/control.ts) tells it
 * the CAs trusted now, each vouched for by the other; it adds one only on the
 * word of a CA it trusts (or a pin its operator configured), keeps them on
 * disk, dials with them, and renews its certificate when the call says it is
 * not from the CA that signs now. When a dial's TLS handshake fails because it
 * missed the calls (it was away), it learns the same from /v1/ping.
 */
import { answerControl, parseControlRequest } from "../api/control.ts";
import { followHostCas, learnHostCas, proxyBaseUrl } from "../api/trust.ts";
import { AzgateError } from "../errors/index.ts";
import { caPin } from "../pki/pin.ts";
import { x509 } from "../pki/x509.ts";
import type { TunnelStream } from "../tunnel/index.ts";
import type { Clock, Timer } from "../util/clock.ts";
import { saveAgentState, trustedHostCas, withHostCas, type AgentState } from "./state.ts";

/** Renewals a trust call asks for are this far apart at least (replicas may disagree for a moment about who signs). */
const RENEW_SPACING_MS = 5_000;

export interface AgentTrustOptions {
  dataDir: string;
  proxyAddr: string;
  /** Pins the operator configured (agent.ca_pin, Helm's caPin): a pre-trusted next CA is trusted on sight. */
  pins?: string[];
  proxyCaPems?: string[];
  state: () => AgentState;
  setState: (s: AgentState) => void;
  /** Renews the host certificate and reopens the tunnels with it. */
  renew: () => Promise<void>;
  log: (line: string) => void;
  clock: Clock;
}

export function agentTrust(o: AgentTrustOptions) {
  let lastRenew = -Infinity;
  let pending: Timer | undefined;
  let renewing: Promise<void> | null = null;
  /** A trust call asked for a renewal while one ran: that one may have got its certificate before the CA changed again (a rollback). */
  let askedAgain = false;

  const adopt = async (trusted: string[]) => {
    const state = o.state();
    if (trusted.join() === trustedHostCas(state.identity).join()) return;
    const next = { ...state, identity: withHostCas(state.identity, trusted) };
    await saveAgentState(o.dataDir, next);
    o.setState(next);
    o.log(`trusting the cluster's host CA ${(await Promise.all(trusted.map((p) => caPin(new x509.X509Certificate(p))))).join(" and ")}`);
  };

  /** Single-flight and spaced: one renewal at a time, the next at least RENEW_SPACING_MS after the last; a call during one runs after it. */
  const renewSoon = () => {
    if (renewing) return void (askedAgain = true);
    if (pending) return;
    const wait = lastRenew + RENEW_SPACING_MS - o.clock.now();
    const go = () => {
      pending = undefined;
      lastRenew = o.clock.now();
      renewing = o.renew().catch((e) => o.log(`renewing under the rotated CA failed (${(e as Error).message}); the next trust call asks again`)).finally(() => {
          renewing = null;
          if (askedAgain) {
            askedAgain = false;
            renewSoon();
          }
        });
    };
    if (wait <= 0) go();
    else pending = o.clock.after(wait, go).unref();
  };

  return {
    /** Answers the proxy's trust call: the CAs it trusts after it, or why it trusts none of them. */
    async answer(stream: TunnelStream): Promise<void> {
      try {
        const req = parseControlRequest("trust", stream.meta);
        const state = o.state();
        if (req.cluster_name !== state.identity.cluster_name) throw new AzgateError("bad_request", `this agent is in cluster "${state.identity.cluster_name}", not "${req.cluster_name}"`);
        const trusted = await followHostCas({ known: trustedHostCas(state.identity), offered: req.host_ca_pems, endorsements: req.endorsements, pins: o.pins, cluster: state.identity.cluster_name, now: o.clock.date() });
        if (!trusted.length) throw new AzgateError("cert_untrusted", "none of the host CAs offered is one this agent trusts, or vouched for by one");
        await adopt(trusted);
        if (req.renew) renewSoon();
        answerControl(stream, "trust", { ok: true, trusted_pins: await Promise.all(trusted.map((p) => caPin(new x509.X509Certificate(p)))) });
      } catch (e) {
        answerControl(stream, "trust", { ok: false, ...(e instanceof AzgateError ? { code: e.code } : {}), message: (e as Error).message });
      }
    },
    /** A dial failed its TLS handshake: learn the host CAs from /v1/ping (throws, saying what to do, when none can be trusted). */
    async learn(): Promise<void> {
      const state = o.state();
      const { trusted } = await learnHostCas({
        baseUrl: proxyBaseUrl(o.proxyAddr),
        proxy: o.proxyAddr,
        known: trustedHostCas(state.identity),
        pins: o.pins,
        proxyCaPems: o.proxyCaPems,
        cluster: state.identity.cluster_name,
        now: o.clock.date(),
        command: (pin) => `join this agent again: create a join token on the proxy host (azgate admin tokens add --type=app) and start the agent with --token <token> --ca-pin ${pin}`,
      });
      await adopt(trusted);
    },
    stop(): void {
      pending?.cancel();
    },
  };
}
