/**
 * The review's attacks on `admin backup` and `admin restore`, kept for
 * re-testing (file backend): an editor that gives itself a role with a rule
 * for every resource still cannot take a backup (only the data dir's local
 * admin can); a crafted or damaged backup is refused whole before anything
 * is written, so a restore never stops half-way; a connection string's
 * passwords are never printed, wherever the driver reads them from.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import path from "node:path";
import { ApiClient } from "../src/api/client.ts";
import { configSchema } from "../src/config/schema.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../src/pki/keys.ts";
import { addUser } from "../src/proxy/admin.ts";
import { createApi } from "../src/proxy/api.ts";
import { resolveCaller } from "../src/proxy/caller.ts";
import type { ProxyContext } from "../src/proxy/context.ts";
import { login } from "../src/proxy/login.ts";
import { AppRegistry } from "../src/proxy/registry.ts";
import { redactedUrl, restoreBackup } from "../src/proxy/restore.ts";
import { openState, settingsFrom } from "../src/proxy/state.ts";
import { acceptInvite } from "../src/proxy/users.ts";
import { VERSION } from "../src/version.ts";
import { decodeBackup, encodeBackup, openBackup, sealBackup, type Backup } from "../src/storage/backup.ts";
import { FileBackend } from "../src/storage/file.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { tempDir } from "./helpers/azgate.ts";

const BASE = "https://attack-backup.test";
const settings = settingsFrom(configSchema.parse({ auth: { second_factor: "off" } }));

describe("who may take a backup", () => {
  let ctx: ProxyContext;
  let close: () => Promise<void>;
  let editor: ApiClient;
  let dataDir: string;
  const clock = new FakeClock();

  beforeAll(async () => {
    dataDir = tempDir("azgate-attack-backup-");
    ({ ctx, close } = await openState(dataDir, { clusterName: "victim", settings, purpose: "attack test", clock }));
    const api = createApi(ctx, { publicUrl: () => BASE, registry: new AppRegistry(clock) });
    const localAdmin = await resolveCaller(ctx, { kind: "local-admin", name: "@local-admin", roles: [], traits: {}, azure_identities: [], login_method: "local", session_id: ctx.localAdminSession });
    const { invite } = await addUser(ctx, localAdmin, "mallory", ["editor"], {});
    await acceptInvite(ctx, invite.token, { password: "correct horse battery mallory" });
    const keys = await generateKeyPair();
    const res = await login(ctx, { user: "mallory", password: "correct horse battery mallory", public_key_pem: await publicKeyToPem(keys.publicKey) });
    editor = new ApiClient({ baseUrl: BASE, fetch: (r) => api.fetch(r) }, { keyPem: await privateKeyToPem(keys.privateKey), certPem: res.cert_pem }, clock);
  });
  afterAll(() => close?.());

  it("not an editor that gave itself a role with a rule for every resource: refused (access_denied, audited); the data dir's local admin alone takes one", async () => {
    await expect(editor.call("GET", "/v1/admin/backup")).rejects.toMatchObject({ code: "access_denied" });
    // The escalation an editor can do: a role whose rule covers every resource, given to itself.
    const text = "kind: role\nversion: v7\nmetadata: { name: viewer }\nspec:\n  allow:\n    rules: [{ resources: ['*'], verbs: ['*'] }]\n";
    await editor.call("POST", "/v1/admin/resources", { text });
    await editor.call("PATCH", "/v1/admin/users/mallory", { roles: ["editor", "viewer"] });
    await expect(editor.call("GET", "/v1/admin/backup")).rejects.toMatchObject({ code: "access_denied", message: expect.stringContaining("only the data dir's local admin takes a backup") });
    const denied = (await ctx.audit.search({ event: "api.request.denied" })).filter((e) => e.path === "/v1/admin/backup");
    expect(denied.map((e) => e.user)).toEqual(["mallory", "mallory"]);
    expect(await ctx.audit.search({ event: "backup.create" })).toEqual([]);
  });

});

describe("restoring a crafted or damaged backup", () => {
  it("a backup a later azgate took (its records may hold what this one does not know) is refused, naming both versions; a patch release's is not", () => {
    const b = (azgate: string): Backup => ({ header: { format: "azgate-backup", version: 1, azgate, cluster: "c", created: new Date().toISOString(), items: 1 }, items: [{ key: "roles/first", value: { ok: 1 } }] });
    expect(() => decodeBackup(encodeBackup(b("0.99.0")))).toThrow(/taken by azgate 0\.99\.0, newer than this azgate .*restore it with azgate 0\.99\.0 or later/);
    expect(() => decodeBackup(encodeBackup(b("1.0.0")))).toThrow(/newer than this azgate/);
    expect(decodeBackup(encodeBackup(b(VERSION.replace(/\.\d+$/, ".999")))).items).toHaveLength(1);
  });

  it("one bad item (a ../ key) is refused before anything is written: the target stays empty, and a good backup restores into it after", async () => {
    const clock = new FakeClock();
    const dir = tempDir("azgate-attack-restore-");
    const b: Backup = {
      header: { format: "azgate-backup", version: 1, azgate: "x", cluster: "c", created: new Date().toISOString(), items: 2 },
      items: [
        { key: "roles/first", value: { ok: 1 } },
        { key: "users/../../../../tmp/pwned", value: { x: 1 } },
      ],
    };
    expect(() => decodeBackup(encodeBackup(b))).toThrow(/item 2 has a key no backend holds/);
    expect(existsSync(path.join(dir, "backend", "roles", "first.json"))).toBe(false);
    const good = { ...b, header: { ...b.header, items: 1 }, items: [b.items[0]] };
    expect(await restoreBackup({ dataDir: dir }, decodeBackup(encodeBackup(good)), clock, () => undefined)).toBe(1);
    const fb = await FileBackend.open(dir, clock);
    expect((await fb.snapshot()).map((i) => i.key)).toEqual(["roles/first"]);
    await fb.close();
    // And a data dir that holds a backend is refused before the restore touches it (no lock taken, no schema written).
    await expect(restoreBackup({ dataDir: dir }, decodeBackup(encodeBackup(good)), clock, () => undefined)).rejects.toMatchObject({ code: "already_exists" });
  });

  it("an expiry that is not a time is refused before anything is written", () => {
    const b: Backup = {
      header: { format: "azgate-backup", version: 1, azgate: "x", cluster: "c", created: new Date().toISOString(), items: 2 },
      items: [
        { key: "a/one", value: 1 },
        { key: "a/two", value: 2, expires: "not-a-date" },
      ],
    };
    expect(() => decodeBackup(encodeBackup(b))).toThrow(/item 2 \(a\/two\) has an expiry that is not a time/);
  });

  it("__proto__ in an item is an own JSON property: no prototype pollution", () => {
    const text = `{"format":"azgate-backup","version":1,"azgate":"x","cluster":"c","created":"x","items":1}\n{"key":"p/__proto__","value":{"polluted":1},"__proto__":{"polluted":1}}\n`;
    const b = decodeBackup(new TextEncoder().encode(text));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(b.items[0].key).toBe("p/__proto__");
  });

  it("a backup of a newer format is refused, naming both versions", () => {
    const newer = `{"format":"azgate-backup","version":2,"azgate":"9.9.9","cluster":"c","created":"x","items":0}\n`;
    expect(() => decodeBackup(new TextEncoder().encode(newer))).toThrow(/version 2, which this azgate .* does not read .*restore it with the azgate that took it \(9\.9\.9\)/);
  });
});

describe("a connection string in messages", () => {
  it("never shows a password: in the user info, or in the query where the driver reads one too", () => {
    expect(redactedUrl("postgres://u:s3cret@h:5432/db")).not.toContain("s3cret");
    expect(redactedUrl("postgres://u:p@ss@h/db")).not.toContain("p@ss");
    expect(redactedUrl("postgres://u:p%40ss@h/db")).not.toContain("p%40ss");
    expect(redactedUrl("postgres://u@h/db?password=s3cret")).not.toContain("s3cret");
    expect(redactedUrl("postgres://u@h/db?sslpassword=k3y&sslmode=verify-full")).not.toContain("k3y");
    expect(redactedUrl("postgres://u@h/db?sslpassword=k3y&sslmode=verify-full")).toContain("sslmode=verify-full");
  });
});
