/**
 * CA rotation's pure parts, in milliseconds: the phase machine
 * (pki/rotation.ts: which phase may follow which, rollback until the final
 * standby, a semi-automatic schedule over the grace period, what each phase
 * makes of the keys), endorsements and what a peer trusts after an offer
 * (api/trust.ts followHostCas: never a CA nobody it trusts vouches for), the
 * trust header a client reads, and a session's placeholder signed again
 * after its key rotated (client/session-credentials.ts).
 */
import { describe, expect, it } from "vitest";
import { advanceAuto, caRoles, duePhase, keyChange, nextDue, nextRotation, STANDBY, type Phase, type RotationState } from "../src/pki/rotation.ts";
import { createAuthority } from "../src/pki/authority.ts";
import { endorse, ENDORSEMENT_TTL_S, SKEW_S } from "../src/pki/endorsement.ts";
import { caPin } from "../src/pki/pin.ts";
import { followHostCas, rotatedAwayMessage } from "../src/api/trust.ts";
import { parseTrustHeader } from "../src/client/rotation.ts";
import { SessionCredentials } from "../src/client/session-credentials.ts";
import { generateKeyPair, publicKeyOf } from "../src/pki/keys.ts";
import { signPlaceholder, verifyPlaceholder } from "../src/azure/placeholder.ts";
import { memoryPair } from "../src/tunnel/memory.ts";
import { calculateJwkThumbprint } from "jose";
import { FakeClock } from "./helpers/fake-clock.ts";

const clock = new FakeClock();
/** The fake clock's time, or that moved by `ms`. */
const at = (ms = 0) => new Date(clock.now() + ms);
const manual = (phase: Phase) => ({ mode: "manual" as const, phase });
const code = (fn: () => unknown) => {
  try {
    fn();
    return null;
  } catch (e) {
    return [(e as { code?: string }).code, (e as Error).message];
  }
};

describe("the phase machine", () => {
  it("goes init, update_clients, update_servers, standby, one at a time; the final standby counts the rotation", () => {
    let r: RotationState = STANDBY;
    for (const phase of ["init", "update_clients", "update_servers", "standby"] as const) {
      r = nextRotation(r, manual(phase), at());
      expect(r.phase).toBe(phase);
    }
    expect(r.generation).toBe(1);
    expect(keyChange("standby", "init")).toBe("create");
    expect(keyChange("update_servers", "standby")).toBe("promote_new");
    expect(keyChange("rollback", "standby")).toBe("drop_new");
    expect(keyChange("init", "update_clients")).toBeNull();
  });

  it("refuses a skipped phase, a second start and a standby with nothing under way, saying what may come next", () => {
    expect(code(() => nextRotation(STANDBY, manual("update_clients"), at()))).toEqual(["bad_parameter", "cannot go to phase update_clients: no rotation is under way: start one with --phase init"]);
    expect(code(() => nextRotation(STANDBY, manual("standby"), at()))?.[0]).toBe("bad_parameter");
    const init = nextRotation(STANDBY, manual("init"), at());
    expect(code(() => nextRotation(init, manual("update_servers"), at()))).toEqual(["bad_parameter", "cannot go to phase update_servers: the phase is init; the next one is update_clients or rollback"]);
    expect(code(() => nextRotation(init, manual("init"), at()))?.[0]).toBe("bad_parameter");
    expect(code(() => nextRotation(init, { mode: "auto", gracePeriodMs: 60_000 }, at()))?.[1]).toContain("a rotation is under way (phase init)");
  });

  it("rolls back from init, update_clients or update_servers, never after the final standby; rollback ends with standby, not counted", () => {
    for (const upTo of ["init", "update_clients", "update_servers"] as const) {
      let r: RotationState = STANDBY;
      for (const phase of ["init", "update_clients", "update_servers"] as const) {
        r = nextRotation(r, manual(phase), at());
        if (phase === upTo) break;
      }
      r = nextRotation(r, manual("rollback"), at());
      expect(r.phase).toBe("rollback");
      expect(code(() => nextRotation(r, manual("update_clients"), at()))?.[0]).toBe("bad_parameter");
      r = nextRotation(r, manual("standby"), at());
      expect(r).toMatchObject({ phase: "standby", generation: 0 });
    }
    expect(code(() => nextRotation(STANDBY, manual("rollback"), at()))?.[1]).toContain("no rotation is under way");
    // After a finished rotation's standby: refused, saying the old CA is gone for good and what to do instead.
    let done: RotationState = STANDBY;
    for (const phase of ["init", "update_clients", "update_servers", "standby"] as const) done = nextRotation(done, manual(phase), at());
    expect(code(() => nextRotation(done, manual("rollback"), at()))).toEqual([
      "bad_parameter",
      `cannot go to phase rollback: rollback is possible only before the final standby; the last rotation ended at ${done.changed} and retired the old CA, which cannot come back: to replace the CA in force, start a new rotation with --phase init`,
    ]);
  });

  it("semi-automatic: the grace period split in thirds, each phase due at its time by the clock given, the last one standby", () => {
    const start = clock.now();
    let r = nextRotation(STANDBY, { mode: "auto", gracePeriodMs: 30_000 }, at());
    expect(r).toMatchObject({ phase: "init", mode: "auto", grace_period_ms: 30_000 });
    expect(nextDue(r)).toBe(start + 10_000);
    expect(duePhase(r, new Date(start + 9_999))).toBeNull();
    const seen: Phase[] = [];
    for (const ms of [10_000, 20_000, 30_000]) {
      const due = duePhase(r, new Date(start + ms))!;
      r = advanceAuto(r, due, new Date(start + ms));
      seen.push(r.phase);
    }
    expect(seen).toEqual(["update_clients", "update_servers", "standby"]);
    expect(r).toMatchObject({ mode: "manual", generation: 1 });
    expect(duePhase(r, new Date(start + 99_000))).toBeNull();
    // A manual step takes a semi-automatic rotation over: no schedule any more.
    const taken = nextRotation(nextRotation(STANDBY, { mode: "auto", gracePeriodMs: 30_000 }, at()), manual("update_clients"), at());
    expect(taken.mode).toBe("manual");
    expect(nextDue(taken)).toBeNull();
    expect(code(() => nextRotation(STANDBY, { mode: "auto", gracePeriodMs: 500 }, at()))?.[1]).toContain("--grace-period must be between 3s and 365 days");
  });

  it("each phase says who signs, who is trusted (the signing CA first) and whose certificate the proxy serves", () => {
    const table = (["standby", "init", "update_clients", "update_servers", "rollback"] as const).map((p) => [p, caRoles(p, "old", p === "standby" ? undefined : "new")]);
    expect(Object.fromEntries(table)).toEqual({
      standby: { signing: "old", trusted: ["old"], tls: "old" },
      init: { signing: "old", trusted: ["old", "new"], tls: "old" },
      update_clients: { signing: "new", trusted: ["new", "old"], tls: "old" },
      update_servers: { signing: "new", trusted: ["new", "old"], tls: "new" },
      rollback: { signing: "old", trusted: ["old", "new"], tls: "old" },
    });
  });
});

describe("what a peer trusts after an offer of host CAs", () => {
  it("adds a CA only on the word of one it trusts (or a pin it was given), for its own cluster; drops what is no longer offered", async () => {
    const old = await createAuthority("host", "c1", at());
    const next = await createAuthority("host", "c1", at(), 1);
    const stranger = await createAuthority("host", "c1", at());
    const pem = (a: { cert: { toString(f: "pem"): string } }) => a.cert.toString("pem") + "\n";
    const vouched = await endorse(old, next.cert, "c1", at());
    // Mid-rotation: the old CA vouches for the new one.
    expect(await followHostCas({ known: [pem(old)], offered: [pem(old), pem(next)], endorsements: [vouched], cluster: "c1", now: at() })).toEqual([pem(old), pem(next)]);
    // The attack: a CA offered with no word, or the word of a CA the peer does not trust, or for another cluster.
    expect(await followHostCas({ known: [pem(old)], offered: [pem(old), pem(stranger)], cluster: "c1", now: at() })).toEqual([pem(old)]);
    expect(await followHostCas({ known: [pem(old)], offered: [pem(stranger)], endorsements: [await endorse(stranger, stranger.cert, "c1", at())], cluster: "c1", now: at() })).toEqual([]);
    expect(await followHostCas({ known: [pem(old)], offered: [pem(next)], endorsements: [await endorse(old, next.cert, "c2", at())], cluster: "c1", now: at() })).toEqual([]);
    // A word for one CA does not carry another certificate: the pin inside must be the one offered.
    expect(await followHostCas({ known: [pem(old)], offered: [pem(stranger)], endorsements: [{ pem: pem(stranger), jws: vouched.jws }], cluster: "c1", now: at() })).toEqual([]);
    // After the final standby only the new one is offered, with no word: a peer that trusted both keeps the new one.
    expect(await followHostCas({ known: [pem(old), pem(next)], offered: [pem(next)], cluster: "c1", now: at() })).toEqual([pem(next)]);
    // A peer away through the whole rotation trusts nothing offered, unless its operator pinned the new CA.
    expect(await followHostCas({ known: [pem(old)], offered: [pem(next)], cluster: "c1", now: at() })).toEqual([]);
    expect(await followHostCas({ known: [pem(old)], offered: [pem(next)], pins: [await caPin(next.cert)], cluster: "c1", now: at() })).toEqual([pem(next)]);
  });

  it("takes a CA's word only within its ten minutes (five more of clock skew either way): the new CA's word for the old one, recorded during a rotation, cannot bring the retired CA back after it", async () => {
    const old = await createAuthority("host", "c1", at());
    const next = await createAuthority("host", "c1", at(), 1);
    const pem = (a: { cert: { toString(f: "pem"): string } }) => a.cert.toString("pem") + "\n";
    const backward = await endorse(next, old.cert, "c1", at());
    const offer = { known: [pem(next)], offered: [pem(next), pem(old)], endorsements: [backward], cluster: "c1" };
    // While it is good (a peer that pinned only the new CA, joining mid-rotation, must reach the proxy still on the old one).
    expect(await followHostCas({ ...offer, now: at(ENDORSEMENT_TTL_S * 1000 - 1) })).toEqual([pem(next), pem(old)]);
    // A peer whose clock is up to five minutes behind or ahead still takes it.
    expect(await followHostCas({ ...offer, now: at(-(SKEW_S - 1) * 1000) })).toEqual([pem(next), pem(old)]);
    expect(await followHostCas({ ...offer, now: at((ENDORSEMENT_TTL_S + SKEW_S - 1) * 1000) })).toEqual([pem(next), pem(old)]);
    // The attack, played back after the rotation ended: past its window (and the five minutes of skew forgiven), the word counts for nothing.
    expect(await followHostCas({ ...offer, now: at((ENDORSEMENT_TTL_S + SKEW_S + 1) * 1000) })).toEqual([pem(next)]);
    // Nor long before it was signed.
    expect(await followHostCas({ ...offer, now: at(-(SKEW_S + 1) * 1000) })).toEqual([pem(next)]);
  });

  it("tells a peer away through the rotation the new pin and the command, and another cluster's CA apart", async () => {
    const ping = { cluster_name: "c1", ca_pins: ["sha256:" + "b".repeat(64)], retired_ca_pins: [{ pin: "sha256:" + "a".repeat(64), retired: "2026-01-01T00:00:00.000Z" }] };
    const away = rotatedAwayMessage(ping, ["sha256:" + "a".repeat(64)], "proxy:3080", (pin) => `azgate login --ca-pin ${pin}`);
    expect(away.code).toBe("ca_retired");
    expect(away.message).toContain(`was retired by a rotation at 2026-01-01T00:00:00.000Z, while it was away; the proxy at proxy:3080 now presents sha256:${"b".repeat(64)}`);
    expect(away.message).toContain(`azgate login --ca-pin sha256:${"b".repeat(64)}`);
    expect(rotatedAwayMessage(ping, ["sha256:" + "c".repeat(64)], "proxy:3080", (pin) => pin).code).toBe("cert_untrusted");
  });

  it("reads the trust header, and nothing from a header it cannot read", () => {
    const a = "sha256:" + "a".repeat(64);
    const b = "sha256:" + "b".repeat(64);
    expect(parseTrustHeader(`host=${a},${b}; reissue`)).toEqual({ hostPins: [a, b], reissue: true });
    expect(parseTrustHeader(`host=${a}`)).toEqual({ hostPins: [a], reissue: false });
    expect(parseTrustHeader("host=nonsense,<script>")).toEqual({ hostPins: [], reissue: false });
  });
});

describe("an app session's placeholder key, rotated", () => {
  it("a token signed before the key changed goes on the new tunnel signed by the new key; a token it did not sign goes as it is", async () => {
    const first = await generateKeyPair();
    const creds = await SessionCredentials.create(first.privateKey, "cert-1", []);
    const oldTunnel = memoryPair().dialer;
    creds.opened(oldTunnel, creds.kid);
    const claims = { tid: "t", resource: "https://management.core.windows.net/", identity: "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ident", now: at(), expires: new Date(clock.now() + 3_600_000) };
    const cached = await signPlaceholder(first.privateKey, claims, creds.kid);
    let asked = "";
    await creds.rekey(async (publicKeyPem) => ((asked = publicKeyPem), "cert-2"));
    expect(asked).toContain("BEGIN PUBLIC KEY");
    expect(creds.certPem).toBe("cert-2");
    const newTunnel = memoryPair().dialer;
    creds.opened(newTunnel, creds.kid);
    const newJwk = (await crypto.subtle.exportKey("jwk", await publicKeyOf(creds.key))) as JsonWebKey;
    expect(await calculateJwkThumbprint(newJwk as Parameters<typeof calculateJwkThumbprint>[0])).toBe(creds.kid);
    // On the new tunnel: signed again, and the agent's check (the tunnel's key) passes.
    const moved = (await creds.authorizationFor(`Bearer ${cached}`, newTunnel)).slice(7);
    expect(moved).not.toBe(cached);
    expect(verifyPlaceholder(moved, newJwk, claims.identity, at()).resource).toBe(claims.resource);
    // The old token itself no longer passes the agent's check for the new key: token_invalid (signature).
    expect(() => verifyPlaceholder(cached, newJwk, claims.identity, at())).toThrow(/not signed by this session's key/);
    // On the old tunnel (draining, its requests still in flight) it goes as it is.
    expect(await creds.authorizationFor(`Bearer ${cached}`, oldTunnel)).toBe(`Bearer ${cached}`);
    // A token naming this session's old key but signed by another key is not signed again (a local process cannot mint one).
    const forger = await generateKeyPair();
    const forged = await signPlaceholder(forger.privateKey, claims, (await SessionCredentials.create(first.privateKey, "", [])).kid);
    expect(await creds.authorizationFor(`Bearer ${forged}`, newTunnel)).toBe(`Bearer ${forged}`);
  });
});
