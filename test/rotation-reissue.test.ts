/**
 * The review's attacks on reissue and on phase changes, kept for re-testing:
 *  - POST /v1/certs/reissue only moves a certificate to the user CA that signs
 *    now (refused outside a rotation: no new key for a session at will), keeps
 *    its identity and end, and is refused for a user deleted and created again
 *    under the same name and for a locked user;
 *  - two phase changes racing on the same record: one wins (compare-and-swap),
 *    one CA made, one audit event;
 *  - after standby a user certificate of the retired CA is refused at
 *    reissue (ca_retired), so reissue cannot launder it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startProxy, type RunningProxy } from "../src/proxy/server.ts";
import { loadConfig } from "../src/config/load.ts";
import { resolveCaller, type Caller } from "../src/proxy/caller.ts";
import { addUser, createResources, removeResource } from "../src/proxy/admin.ts";
import { acceptInvite } from "../src/proxy/users.ts";
import { login } from "../src/proxy/login.ts";
import { createLock } from "../src/proxy/locks.ts";
import { rotateAuthority } from "../src/proxy/rotation.ts";
import { parseResources } from "../src/resources/parse.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../src/pki/keys.ts";
import { identityOf } from "../src/pki/certificate.ts";
import { x509 } from "../src/pki/x509.ts";
import { ApiClient } from "../src/api/client.ts";
import type { Phase } from "../src/pki/rotation.ts";
import type { AzgateError } from "../src/errors/index.ts";
import { tempDir } from "./helpers/azgate.ts";
import { FakeClock } from "./helpers/fake-clock.ts";

const ROLE = `kind: role\nversion: v7\nmetadata: {name: reader}\nspec: {allow: {app_labels: {'*': '*'}}}\n`;
let proxy: RunningProxy;
let admin: Caller;
const clock = new FakeClock();

beforeAll(async () => {
  const config = loadConfig({ flags: [[["proxy", "listen"], "127.0.0.1:0"], [["cluster_name"], "attack2"], [["auth", "second_factor"], "off"]] });
  proxy = await startProxy({ ...config, data_dir: tempDir("azgate-attack-rotation2-") }, clock);
  admin = await resolveCaller(proxy.ctx, { kind: "local-admin", name: "@local-admin", roles: [], traits: {}, azure_identities: [], login_method: "local", session_id: proxy.ctx.localAdminSession });
  await createResources(proxy.ctx, admin, parseResources(ROLE, "role.yaml").resources, false);
}, 60_000);
afterAll(async () => {
  await proxy?.close();
});

async function signedIn(user: string) {
  const { invite } = await addUser(proxy.ctx, admin, user, ["reader"], {});
  await acceptInvite(proxy.ctx, invite.token, { password: `correct horse battery ${user}` });
  const key = await generateKeyPair();
  const res = await login(proxy.ctx, { user, password: `correct horse battery ${user}`, public_key_pem: await publicKeyToPem(key.publicKey) });
  return { certPem: res.cert_pem, keyPem: await privateKeyToPem(key.privateKey) };
}
const api = (creds: { certPem: string; keyPem: string }) => new ApiClient({ baseUrl: proxy.url, insecure: true }, creds, clock);
const reissue = async (creds: { certPem: string; keyPem: string }) => {
  const k = await generateKeyPair();
  return api(creds).call<{ cert_pem: string; expires: string }>("POST", "/v1/certs/reissue", { public_key_pem: await publicKeyToPem(k.publicKey) });
};
const rotate = (type: "host" | "user", phase: Phase) => rotateAuthority(proxy.ctx, admin, type, { mode: "manual", phase });
const rotatedEvents = async () => (await proxy.ctx.audit.search({ event: "ca.rotate" })).filter((e) => e.event === "ca.rotate");

describe("reissue", () => {
  it("is refused while the caller's certificate is from the CA that signs; at update_clients it moves it, same identity and end", async () => {
    const creds = await signedIn("rx1");
    const before = new x509.X509Certificate(creds.certPem);
    const refused = (c: typeof creds) => reissue(c).then(() => "ISSUED", (e: AzgateError) => `${e.code}: ${e.message}`);
    expect(await refused(creds)).toMatch(/^bad_parameter: this certificate is already from the user CA that signs now/);
    await rotate("user", "init");
    expect(await refused(creds)).toMatch(/^bad_parameter/);
    await rotate("user", "update_clients");
    await clock.tick(60_000);
    const out = await reissue(creds);
    const after = new x509.X509Certificate(out.cert_pem);
    expect(after.notAfter.getTime()).toBe(before.notAfter.getTime());
    expect(identityOf(after)).toEqual(identityOf(before));
    expect(after.issuer).not.toBe(before.issuer);
    await rotate("user", "rollback");
    await rotate("user", "standby");
  });

  it("is refused for a user deleted and created again under the same name, and for a locked user", async () => {
    const old = await signedIn("rx2");
    await removeResource(proxy.ctx, admin, "user", "rx2");
    await signedIn("rx2");
    expect(await reissue(old).then(() => "ISSUED", (e: AzgateError) => e.code)).toBe("unauthenticated");

    const locked = await signedIn("rx3");
    await createLock(proxy.ctx, admin, { target: { user: "rx3" } });
    expect(await reissue(locked).then(() => "ISSUED", (e: AzgateError) => e.code)).toBe("locked");
  });
});

describe("phase changes racing", () => {
  it("two inits at once: one wins, one CA made, one audit event; then update_clients racing rollback: one wins", async () => {
    const n0 = (await rotatedEvents()).length;
    const both = await Promise.allSettled([rotate("user", "init"), rotate("user", "init")]);
    expect(both.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const lost = both.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect(["compare_failed", "bad_parameter"]).toContain((lost.reason as AzgateError).code);
    expect((await rotatedEvents()).length).toBe(n0 + 1);
    const next = proxy.ctx.cluster.views.user.next!;
    const race = await Promise.allSettled([rotate("user", "update_clients"), rotate("user", "rollback")]);
    expect(race.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect(proxy.ctx.cluster.views.user.next?.cert.toString("pem")).toBe(next.cert.toString("pem"));
    expect((await rotatedEvents()).length).toBe(n0 + 2);
    // Finish whichever way it went.
    const phase = proxy.ctx.cluster.views.user.rotation.phase;
    if (phase === "update_clients") {
      await rotate("user", "update_servers");
    }
    await rotate("user", "standby");
    expect(proxy.ctx.cluster.views.user.rotation.phase).toBe("standby");
  });

  it("after a user CA standby, a login certificate of the retired CA cannot be reissued (ca_retired)", async () => {
    const creds = await signedIn("rx4");
    for (const p of ["init", "update_clients", "update_servers", "standby"] as const) await rotate("user", p);
    expect(await reissue(creds).then(() => "ISSUED", (e: AzgateError) => e.code)).toBe("ca_retired");
    // And no rollback can bring it back.
    expect(await rotate("user", "rollback").then(() => "MOVED", (e: AzgateError) => e.code)).toBe("bad_parameter");
  });
});
