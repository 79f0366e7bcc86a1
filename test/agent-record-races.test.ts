/**
 * A joined agent's record is changed by its certificate's renewal and by its
 * answers to trust calls (proxy/join.ts updateAgentRecord). Each was a read,
 * then a whole write: a removal between the two brought the agent back (and
 * a renewal handed out its certificate), and two changes at once lost one.
 * Played here by a backend whose read of the record lets another writer in.
 */
import "reflect-metadata";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useEmulator } from "./helpers/emulator.ts";
import { startMemoryCluster, type MemoryCluster } from "./helpers/memory-cluster.ts";
import { addToken } from "../src/proxy/admin.ts";
import { joinAgent, renewHostCert, updateAgentRecord, type AgentRecord } from "../src/proxy/join.ts";
import { KEYS } from "../src/proxy/keys.ts";
import { generateKeyPair, publicKeyToPem } from "../src/pki/keys.ts";
import { identityOf } from "../src/pki/certificate.ts";
import { x509 } from "../src/pki/x509.ts";

const fx = useEmulator({ projectToken: true });

describe("an agent's record under concurrent writers", () => {
  let c: MemoryCluster;
  beforeAll(async () => {
    c = await startMemoryCluster(fx);
  });
  afterAll(async () => {
    await c?.close();
  });

  async function joined() {
    const { token } = await addToken(c.ctx, c.admin, "app", "10m");
    const key = await generateKeyPair();
    const pem = await publicKeyToPem(key.publicKey);
    const cert = await joinAgent(c.ctx, { token, type: "app", public_key_pem: pem });
    return { hostId: cert.host_id, pem, identity: identityOf(new x509.X509Certificate(cert.cert_pem)) };
  }

  /** The `nth` read of `key` returns what was stored, then runs `meanwhile` (another writer) before the reader goes on. */
  function interleave(key: string, nth: number, meanwhile: () => Promise<unknown>) {
    const get = c.ctx.backend.get.bind(c.ctx.backend);
    let reads = 0;
    c.ctx.backend.get = (async (k: string) => {
      const item = await get(k);
      if (k === key && ++reads === nth) await meanwhile();
      return item;
    }) as typeof c.ctx.backend.get;
    return () => void (c.ctx.backend.get = get);
  }

  // The renewal reads the record twice: whether the agent is still joined, then to change it (compare and swap).
  it.each([1, 2])("an agent removed while its certificate is renewed (after read %i) stays removed, and gets no certificate", async (nth) => {
    const { hostId, pem, identity } = await joined();
    const restore = interleave(KEYS.agent(hostId), nth, () => c.ctx.backend.delete(KEYS.agent(hostId)));
    try {
      await expect(renewHostCert(c.ctx, identity, pem)).rejects.toMatchObject({ code: "access_denied", message: expect.stringContaining("was removed from the cluster") });
    } finally {
      restore();
    }
    expect(await c.ctx.backend.get(KEYS.agent(hostId))).toBeNull();
    // Nor does a trust answer for it bring it back.
    expect(await updateAgentRecord(c.ctx, hostId, (r) => ({ ...r, trusted_pins: ["x"] }))).toBe(false);
    expect(await c.ctx.backend.get(KEYS.agent(hostId))).toBeNull();
  });

  it.each([1, 2])("a trust answer landing during a renewal (after read %i): both changes are kept", async (nth) => {
    const { hostId, pem, identity } = await joined();
    const restore = interleave(KEYS.agent(hostId), nth, () => updateAgentRecord(c.ctx, hostId, (r) => ({ ...r, trusted_pins: ["pin-from-the-trust-answer"] })));
    try {
      await renewHostCert(c.ctx, identity, pem);
    } finally {
      restore();
    }
    const record = (await c.ctx.backend.get<AgentRecord>(KEYS.agent(hostId)))!.value;
    expect(record.trusted_pins).toEqual(["pin-from-the-trust-answer"]);
    expect(record.last_renewed).toBe(c.clock.date().toISOString());
  });
});
