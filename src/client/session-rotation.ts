/**
 * How a running local proxy (`proxy azure`, `azgate az`, `exec`) follows a
 * rotation of the cluster's CAs and keeps working through every phase
 * (docs/rotation.md): the proxy's trust call on its tunnel says which host
 * CAs to trust (each vouched for by one it trusts: api/trust.ts
 * followHostCas) and whether its certificate is from the user CA that signs
 * now; if not, it gets a new key certified (the reissue call on the same
 * tunnel), opens a tunnel with it and only then lets the old one drain. A
 * tunnel dial whose TLS handshake fails because the trust calls were missed
 * learns the same from /v1/ping.
 */
import { answerControl, callControl, parseControlRequest } from "../api/control.ts";
import { followHostCas, learnHostCas } from "../api/trust.ts";
import { AzgateError } from "../errors/index.ts";
import { caPin, pemPin } from "../pki/pin.ts";
import { x509 } from "../pki/x509.ts";
import { ErrorCode, type TunnelSession, type TunnelStream } from "../tunnel/index.ts";
import type { SessionCredentials } from "./session-credentials.ts";
import type { Clock } from "../util/clock.ts";

export interface SessionRotationOptions {
  creds: SessionCredentials;
  cluster: string;
  proxy: string;
  baseUrl: string;
  proxyCaPems?: string[];
  /** The tunnel in use now, if one is up. */
  current: () => Promise<TunnelSession | null>;
  /** Opens a tunnel with the credentials of now and makes it the one in use; the old one drains. */
  reopen: () => Promise<void>;
  /** The new key and certificate, to store beside the app session (later commands start from them). */
  onReissued?: (keyPem: string, certPem: string) => Promise<void>;
  /** The host CAs trusted now, to store in the login profile. */
  onTrusted?: (pems: string[]) => Promise<void>;
  log?: (line: string) => void;
  /** Judges the endorsements' windows (pki/endorsement.ts). */
  clock: Clock;
}

export function followSessionRotation(o: SessionRotationOptions) {
  let reissuing: Promise<void> | null = null;

  const adopt = async (trusted: string[]) => {
    if (trusted.join() === o.creds.hostCas.join()) return;
    o.creds.setHostCas(trusted);
    await o.onTrusted?.(trusted).catch(() => undefined);
    o.log?.(`trusting the cluster's host CA ${(await Promise.all(trusted.map((p) => caPin(new x509.X509Certificate(p))))).join(" and ")}`);
  };

  /** A new key, certified by the user CA that signs now, then a tunnel with it (one at a time). */
  const reissue = () =>
    (reissuing ??= (async () => {
      const session = await o.current();
      if (!session) throw new Error("no tunnel to ask on");
      const stored = await o.creds.rekey(async (publicKeyPem) => {
        const res = await callControl(session, "reissue", { type: "reissue", public_key_pem: publicKeyPem });
        if (!res.ok) throw new AzgateError("cert_untrusted", `the proxy would not reissue this session's certificate: ${res.message}`);
        return res.cert_pem;
      });
      await o.reopen();
      o.log?.("app session certificate reissued by the cluster's rotated user CA; the tunnel was reopened with it");
      await o.onReissued?.(stored.keyPem, stored.certPem).catch(() => undefined);
    })()
      .catch((e) => o.log?.(`reissuing the session's certificate failed (${(e as Error).message}); the next trust call asks again`))
      .finally(() => (reissuing = null)));

  return {
    /** A stream the proxy opened on the tunnel: the trust call, or refused. */
    async onStream(stream: TunnelStream): Promise<void> {
      if (stream.meta.type !== "trust") return stream.reset(ErrorCode.REFUSED_STREAM, "this side answers only the trust call");
      try {
        const req = parseControlRequest("trust", stream.meta);
        if (req.cluster_name !== o.cluster) throw new AzgateError("bad_request", `this session is in cluster "${o.cluster}", not "${req.cluster_name}"`);
        // Nothing to do (the call every tunnel gets once a CA was retired): said without parsing a certificate.
        const knownPins = o.creds.hostCas.map(pemPin);
        if (!req.renew && req.host_ca_pems.map(pemPin).join() === knownPins.join()) return void answerControl(stream, "trust", { ok: true, trusted_pins: knownPins });
        const trusted = await followHostCas({ known: o.creds.hostCas, offered: req.host_ca_pems, endorsements: req.endorsements, cluster: o.cluster, now: o.clock.date() });
        if (!trusted.length) throw new AzgateError("cert_untrusted", "none of the host CAs offered is one this session trusts, or vouched for by one");
        await adopt(trusted);
        answerControl(stream, "trust", { ok: true, trusted_pins: await Promise.all(trusted.map((p) => caPin(new x509.X509Certificate(p)))) });
        if (req.renew) void reissue();
      } catch (e) {
        answerControl(stream, "trust", { ok: false, ...(e instanceof AzgateError ? { code: e.code } : {}), message: (e as Error).message });
      }
    },
    /** A dial failed its TLS handshake on the CAs trusted: learn them from /v1/ping, or throw saying what to do. */
    async learn(): Promise<void> {
      const { trusted } = await learnHostCas({ baseUrl: o.baseUrl, proxy: o.proxy, known: o.creds.hostCas, proxyCaPems: o.proxyCaPems, cluster: o.cluster, command: (pin) => `azgate login --proxy ${o.proxy} --ca-pin ${pin}, then azgate apps login`, now: o.clock.date() });
      await adopt(trusted);
    },
  };
}
