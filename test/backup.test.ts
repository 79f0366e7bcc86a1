/**
 * Backups (issue 35 part 3), in process: the snapshot is one moment's
 * state on both backends while a writer runs; a backup taken through the
 * API, encrypted with a passphrase or to an age recipient, restores into a
 * new data dir as the same cluster (name, CA pin, users, pending requests,
 * every key prefix, whatever wrote it), audited on both sides; the editor
 * preset cannot take one (refused and audited); a wrong passphrase, a
 * damaged file and a non-empty target are refused, saying which.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as age from "age-encryption";
import { ApiClient } from "../src/api/client.ts";
import { configSchema } from "../src/config/schema.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../src/pki/keys.ts";
import { addUser } from "../src/proxy/admin.ts";
import { createApi } from "../src/proxy/api.ts";
import { resolveCaller } from "../src/proxy/caller.ts";
import { clusterPins } from "../src/proxy/cluster.ts";
import type { ProxyContext } from "../src/proxy/context.ts";
import { login } from "../src/proxy/login.ts";
import { AppRegistry } from "../src/proxy/registry.ts";
import { restoreBackup } from "../src/proxy/restore.ts";
import { openState, settingsFrom } from "../src/proxy/state.ts";
import { acceptInvite } from "../src/proxy/users.ts";
import type { Backend } from "../src/storage/backend.ts";
import { decodeBackup, encodeBackup, openBackup, sealBackup, type Backup } from "../src/storage/backup.ts";
import { FileBackend } from "../src/storage/file.ts";
import { PostgresBackend } from "../src/storage/postgres.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { startPostgres, type TestPostgres } from "./helpers/postgres.ts";
import { tempDir } from "./helpers/azgate.ts";

const BASE = "https://backup.test";
const settings = settingsFrom(configSchema.parse({ auth: { second_factor: "off" } }));

let pg: TestPostgres;
beforeAll(async () => {
  pg = await startPostgres();
}, 60_000);
afterAll(() => pg?.stop());

describe.each(["file", "postgres"] as const)("the %s backend's snapshot", (kind) => {
  it("is one moment's state while a writer runs: keys written in order, so a snapshot never holds a later key newer than an earlier one", async () => {
    const clock = new FakeClock();
    const backend: Backend = kind === "file" ? await FileBackend.open(tempDir("azgate-snap-"), clock) : await PostgresBackend.open({ connectionString: await pg.database("snapshot"), clock });
    try {
      let stop = false;
      // Round n writes n to k0, k1, ... k19 in turn (in folders of their own, so no walk order follows the writes).
      const KEYS = Array.from({ length: 20 }, (_, i) => `series/s${(i * 7) % 20}/k${i}`);
      let rounds = 0;
      const writer = (async () => {
        for (let n = 1; !stop; n++, rounds++) for (const k of KEYS) await backend.put(k, n);
      })();
      const seen: number[][] = [];
      // Thirty snapshots, and on until the writer has gone round twice (a slow machine: the snapshots would all see round one).
      for (let i = 0; i < 30 || (rounds < 2 && i < 10_000); i++) {
        const items = await backend.snapshot();
        seen.push(KEYS.map((k) => (items.find((x) => x.key === k)?.value as number | undefined) ?? 0));
      }
      stop = true;
      await writer;
      // One moment: the keys read n, ..., n, n-1, ..., n-1 in write order, never a later key ahead of an earlier one.
      for (const values of seen) {
        for (let i = 1; i < values.length; i++) expect(values[i] <= values[i - 1], values.join(",")).toBe(true);
        expect(values[0] - values[values.length - 1] <= 1, values.join(",")).toBe(true);
      }
      expect(seen.some((v) => v[0] > 1)).toBe(true);
    } finally {
      await backend.close();
    }
  }, 60_000);
});

describe("admin backup and restore, through the API", () => {
  let ctx: ProxyContext;
  let close: () => Promise<void>;
  let admin: ApiClient;
  let editor: ApiClient;
  const clock = new FakeClock();

  beforeAll(async () => {
    ({ ctx, close } = await openState(tempDir("azgate-backup-"), { clusterName: "kept", settings, purpose: "backup test", clock }));
    const api = createApi(ctx, { publicUrl: () => BASE, registry: new AppRegistry(clock) });
    const localAdmin = await resolveCaller(ctx, { kind: "local-admin", name: "@local-admin", roles: [], traits: {}, azure_identities: [], login_method: "local", session_id: ctx.localAdminSession });
    const { issueLocalAdmin } = await import("../src/proxy/local-admin.ts");
    admin = new ApiClient({ baseUrl: BASE, fetch: (r) => api.fetch(r) }, await issueLocalAdmin(ctx.cluster.user, ctx.localAdminSession, clock.date()), clock);
    const { invite } = await addUser(ctx, localAdmin, "eddie", ["editor"], {});
    await acceptInvite(ctx, invite.token, { password: "correct horse battery eddie" });
    const keys = await generateKeyPair();
    const res = await login(ctx, { user: "eddie", password: "correct horse battery eddie", public_key_pem: await publicKeyToPem(keys.publicKey) });
    editor = new ApiClient({ baseUrl: BASE, fetch: (r) => api.fetch(r) }, { keyPem: await privateKeyToPem(keys.privateKey), certPem: res.cert_pem }, clock);
    // Records of every kind, and of a prefix no code here knows (a newer feature's): all are in a backup.
    await ctx.backend.put("bots/ci-deploy", { kind: "bot", spec: { roles: ["access"] } });
    await ctx.backend.put("access-requests/r-1", { metadata: { name: "r-1" }, spec: { state: "PENDING", user: "eddie" } });
    await ctx.backend.put("sso-attempts/gone", { x: 1 }, { expires: new Date(clock.now() + 60_000) });
  });
  afterAll(() => close?.());

  it("the editor preset may not take one: refused, and the refusal audited", async () => {
    const err = await editor.call("GET", "/v1/admin/backup").then(() => null, (e: { code: string }) => e);
    expect(err?.code).toBe("access_denied");
    const denied = await ctx.audit.search({ event: "api.request.denied", user: "eddie" });
    expect(denied.at(-1)).toMatchObject({ path: "/v1/admin/backup", error_code: "access_denied", success: false });
    expect(await ctx.audit.search({ event: "backup.create" })).toEqual([]);
  });

  it("restores into a new data dir as the same cluster, every prefix kept, audited on both sides; expired records left out", async () => {
    const backup = await admin.call<Backup>("GET", "/v1/admin/backup");
    expect((await ctx.audit.search({ event: "backup.create" })).at(-1)).toMatchObject({ user: "@local-admin", items: backup.header.items });
    const sealed = await sealBackup(encodeBackup(backup), { passphrase: "a long backup passphrase" });
    expect(new TextDecoder().decode(sealed.slice(0, 21))).toBe("age-encryption.org/v1");
    expect(Buffer.from(sealed).includes(Buffer.from("BEGIN PRIVATE KEY"))).toBe(false);

    clock.advance(120_000); // the SSO attempt expires meanwhile
    const restored = decodeBackup(await openBackup(sealed, { passphrase: "a long backup passphrase" }));
    const dir = tempDir("azgate-restored-");
    const logged: string[] = [];
    const n = await restoreBackup({ dataDir: dir }, restored, clock, (l) => logged.push(l));
    expect(n).toBe(backup.header.items - 1);

    const again = await openState(dir, { settings, purpose: "restored", clock });
    try {
      expect(again.ctx.cluster.name).toBe("kept");
      expect(await clusterPins(again.ctx.cluster)).toEqual(await clusterPins(ctx.cluster));
      for (const key of ["users/eddie", "user-auth/eddie", "bots/ci-deploy", "access-requests/r-1", "roles/editor"]) expect(await again.ctx.backend.get(key), key).not.toBeNull();
      expect(await again.ctx.backend.get("sso-attempts/gone")).toBeNull();
      expect((await again.ctx.audit.search({ event: "backup.restore" }))[0]).toMatchObject({ code: "AZ0004I", cluster: "kept", items: n, taken: backup.header.created });
    } finally {
      await again.close();
    }
    // A second restore into it is refused: a restore never mixes two clusters.
    await expect(restoreBackup({ dataDir: dir }, restored, clock, () => undefined)).rejects.toMatchObject({ code: "already_exists", message: expect.stringContaining("is not empty") });
  });

  it("to an age recipient: only its identity opens it; a wrong passphrase and a cut file are refused, saying which", async () => {
    const plain = encodeBackup(await admin.call<Backup>("GET", "/v1/admin/backup"));
    const identity = await age.generateX25519Identity();
    const sealed = await sealBackup(plain, { recipient: await age.identityToRecipient(identity) });
    expect(decodeBackup(await openBackup(sealed, { identity })).header.cluster).toBe("kept");
    await expect(openBackup(sealed, { identity: await age.generateX25519Identity() })).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringContaining("not one it was encrypted to") });
    const withPass = await sealBackup(plain, { passphrase: "the right passphrase" });
    await expect(openBackup(withPass, { passphrase: "the wrong passphrase" })).rejects.toMatchObject({ message: expect.stringContaining("wrong passphrase") });
    await expect(openBackup(new TextEncoder().encode("not a backup"), { passphrase: "x" })).rejects.toMatchObject({ message: expect.stringContaining("no age header") });
    const cut = new TextDecoder().decode(plain).split("\n").slice(0, 3).join("\n");
    expect(() => decodeBackup(new TextEncoder().encode(cut))).toThrow(/cut short/);
    await expect(sealBackup(plain, { recipient: "ssh-ed25519 AAAA" })).rejects.toMatchObject({ message: expect.stringContaining("not an age X25519 recipient") });
  });

  it("restores into an empty database: every key as it was", async () => {
    const backup = await admin.call<Backup>("GET", "/v1/admin/backup");
    const url = await pg.database("restored");
    const n = await restoreBackup({ storage: { type: "postgres", conn_string: url, auth: "password" } }, backup, clock, () => undefined);
    const target = await PostgresBackend.open({ connectionString: url, clock });
    try {
      const keys = (await target.snapshot()).map((i) => i.key);
      expect(keys.length).toBe(n);
      expect(keys).toEqual(backup.items.filter((i) => !i.expires || Date.parse(i.expires) > clock.now()).map((i) => i.key));
    } finally {
      await target.close();
    }
  });
});
