/**
 * A login profile that follows a rotation of the cluster's CAs at its next
 * call, without a new login (docs/rotation.md). Every signed answer carries
 * the trust header (proxy/rotation-trust.ts): when its host CAs are not the
 * ones the profile trusts, the profile learns them from /v1/ping, adding a CA
 * only on the word of one it trusts (api/trust.ts followHostCas); when it says
 * `reissue`, the login's certificate is fetched again from the user CA that
 * signs now, for the same key. A profile that was away through a whole
 * rotation is refused with the new pin and the command to log in again.
 */
import { pemPin } from "../pki/pin.ts";
import { publicKeyOf, importPrivateKeyPem, publicKeyToPem } from "../pki/keys.ts";
import { ApiClient, type ApiCredentials, type TrustFollower } from "../api/client.ts";
import { learnHostCas, proxyBaseUrl } from "../api/trust.ts";
import { rememberTrustedCa, saveCertificate, saveProfileFile, type Profile } from "./profile.ts";
import { profileTarget } from "./target.ts";
import type { Clock } from "../util/clock.ts";

/** The host CAs a profile trusts, its first (ca_pem) first. */
export function profileCas(p: Profile): string[] {
  return [...new Set([...(p.ca_pem ? [p.ca_pem] : []), ...(p.ca_pems ?? [])])];
}

/** What a profile trusts from now on: saved, so every later command (and a running local proxy's redial) starts from it. */
export async function adoptProfileCas(p: Profile, trusted: string[]): Promise<void> {
  if (trusted.join() === profileCas(p).join()) return;
  p.ca_pem = trusted[0];
  p.ca_pems = trusted.length > 1 ? trusted : undefined;
  if (!p.ca_pems) delete p.ca_pems;
  await saveProfileFile(p);
  await rememberTrustedCa(p.proxy, trusted[0]);
}

/** The command that signs in again trusting `pin`, for messages. */
export const loginAgainCommand = (p: Profile) => (pin: string) => `azgate login --proxy ${p.proxy} --user ${p.user} --ca-pin ${pin}`;

/** Learns the host CAs from /v1/ping (or refuses, saying what to do) and keeps them in the profile. */
export async function learnProfileCas(p: Profile, clock: Clock): Promise<void> {
  const { trusted } = await learnHostCas({ baseUrl: proxyBaseUrl(p.proxy), proxy: p.proxy, known: profileCas(p), proxyCaPems: p.proxy_ca_pems, cluster: p.cluster, command: loginAgainCommand(p), now: clock.date() });
  await adoptProfileCas(p, trusted);
}

/** How a profile's API client follows a rotation (api/client.ts TrustFollower); `creds` take a reissued certificate in place. */
export function profileFollower(p: Profile, creds: ApiCredentials, clock: Clock): TrustFollower | undefined {
  if (p.insecure) return undefined;
  return {
    async onTrust(header) {
      const { hostPins, reissue } = parseTrustHeader(header);
      // Every signed answer carries the header: the pins are read by the runtime's parser, cheap for everyday commands.
      const mine = profileCas(p).map(pemPin);
      if (hostPins.length && hostPins.slice().sort().join() !== mine.slice().sort().join()) await learnProfileCas(p, clock).catch(() => undefined);
      if (reissue) {
        // The same key, a certificate from the CA that signs now (an answer to this call says "reissue" again: it was made with the old one).
        const publicKey = await publicKeyToPem(await publicKeyOf(await importPrivateKeyPem(creds.keyPem)));
        const res = await new ApiClient(profileTarget(p), creds, clock).call<{ cert_pem: string }>("POST", "/v1/certs/reissue", { public_key_pem: publicKey }).catch(() => null);
        if (res) {
          await saveCertificate(p, res.cert_pem);
          creds.certPem = res.cert_pem;
        }
      }
    },
    async onUntrustedTls() {
      await learnProfileCas(p, clock);
      return profileTarget(p);
    },
  };
}

/** A profile's API client that follows rotations. */
export function profileApiClient(p: Profile, creds: ApiCredentials, clock: Clock): ApiClient {
  return new ApiClient(profileTarget(p), creds, clock, profileFollower(p, creds, clock));
}

/** `host=<pin>,<pin>; reissue` (proxy/rotation-trust.ts trustHeader); anything unreadable reads as nothing to do. */
export function parseTrustHeader(header: string): { hostPins: string[]; reissue: boolean } {
  const parts = header.split(";").map((s) => s.trim());
  const host = parts.find((s) => s.startsWith("host="))?.slice(5) ?? "";
  return { hostPins: host.split(",").filter((p) => /^sha256:[0-9a-f]{64}$/.test(p)), reissue: parts.includes("reissue") };
}
