/**
 * SSO connector resources through the real CLI and a real proxy: the seed
 * guide's files load as written, secrets are hidden unless asked for by a
 * role that may read them, `admin edit` round-trips through $EDITOR, and
 * `rm` removes them. (The login flows come with the rest of issue 7.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chmodSync, writeFileSync } from "node:fs";
import path from "node:path";
import { SEED_DIR, startCluster, type TestCluster } from "../helpers/cluster.ts";
import { cli, tempDir } from "../helpers/azgate.ts";
import { saveProfile } from "../../src/client/profile.ts";

const CONNECTORS = path.resolve(SEED_DIR, "../connectors");

describe("connector resources", () => {
  let cluster: TestCluster;
  const home = tempDir("azgate-admin-home-");
  const admin = (args: string[], env: Record<string, string> = {}) => cli(["admin", "--data-dir", cluster.proxy.dataDir, ...args], { home, env });
  /** `azgate admin` as a new user whose one role has these rules (YAML), from their own workstation profile. */
  async function adminWithRole(user: string, role: string, rules: string) {
    const roleFile = path.join(tempDir(), `${role}.yaml`);
    writeFileSync(roleFile, `kind: role\nversion: v7\nmetadata: {name: ${role}}\nspec: {allow: {rules: ${rules}}}\n`);
    expect((await admin(["create", "-f", roleFile])).code).toBe(0);
    const session = await cluster.user(user, [role]);
    const userHome = tempDir("azgate-home-");
    await saveProfile({ proxy: cluster.proxy.addr, user, cluster: "e2e", ca_pem: cluster.target.ca_pem }, session.keyPem, session.certPem, userHome);
    return (args: string[]) => cli(["admin", ...args], { home: userHome });
  }

  beforeAll(async () => {
    cluster = await startCluster();
    const seed = await admin(["create", "-f", path.join(SEED_DIR, "azure-cli-access-internal.yaml")]);
    expect(seed.code, seed.stderr).toBe(0);
  });
  afterAll(async () => cluster?.stop());

  it("creates the seed guide's github, oidc and saml connectors from their files, unchanged", async () => {
    for (const [file, kind, name] of [["github.yaml", "github", "github"], ["oidc.yaml", "oidc", "myoidc"], ["saml.yaml", "saml", "mysaml"]]) {
      const res = await admin(["create", "-f", path.join(CONNECTORS, file)]);
      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).toContain(`${kind} "${name}" has been created`);
    }
    const list = await admin(["get", "oidc"]);
    expect(list.stdout).toMatch(/myoidc\s+oidc\s+Corporate SSO\s+access,azure-cli-access/);
  });

  it("hides secrets unless --with-secrets, which needs read (readnosecrets is not enough)", async () => {
    const hidden = await admin(["get", "github/github", "--format", "yaml"]);
    expect(hidden.code, hidden.stderr).toBe(0);
    expect(hidden.stdout).toContain("client_id: github-client-id");
    expect(hidden.stdout).not.toContain("github-client-secret-value");
    const shown = await admin(["get", "github/github", "--format", "yaml", "--with-secrets"]);
    expect(shown.stdout).toContain("client_secret: github-client-secret-value");

    const asVera = await adminWithRole("vera", "connector-viewer", "[{resources: [connector], verbs: [list, readnosecrets]}]");
    const ok = await asVera(["get", "saml/mysaml", "--format", "json"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).spec.entity_descriptor_url).toBe("https://idp.example.com/saml/metadata");
    const refused = await asVera(["get", "oidc/myoidc", "--with-secrets"]);
    expect([refused.code, refused.stderr]).toEqual([1, expect.stringContaining('access denied to perform action "read" on "oidc"')]);
    const noDelete = await asVera(["rm", "oidc/myoidc"]);
    expect(noDelete.code).toBe(1);
    const denied = (await cluster.admin.call<{ items: Record<string, unknown>[] }>("GET", "/v1/admin/audit?event=api.request.denied")).items;
    expect(denied).toContainEqual(expect.objectContaining({ user: "vera", error_code: "access_denied", reason: expect.stringContaining('"read" on "oidc"') }));
  });

  it("notification targets hold secrets the same way: readnosecrets shows a target without its URL and signing secret, --with-secrets needs read, and a refusal is audited", async () => {
    const file = path.join(tempDir(), "target.yaml");
    writeFileSync(file, "kind: notification_target\nversion: v1\nmetadata: {name: approvals}\nspec: {type: webhook, url: 'https://hooks.example.com/azgate?key=hook-secret-value', signing_secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}\n");
    expect((await admin(["create", "-f", file])).code).toBe(0);
    const asTess = await adminWithRole("tess", "target-viewer", "[{resources: [notification_target], verbs: [list, readnosecrets]}]");
    const shown = await asTess(["get", "notification_target/approvals", "--format", "json"]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout).spec).toEqual({ type: "webhook" });
    expect(shown.stdout).not.toContain("hook-secret-value");
    const refused = await asTess(["get", "notification_target/approvals", "--with-secrets"]);
    expect([refused.code, refused.stderr]).toEqual([1, expect.stringContaining('access denied to perform action "read" on "notification_target"')]);
    expect(refused.stdout + refused.stderr).not.toContain("hook-secret-value");
    const denied = (await cluster.admin.call<{ items: Record<string, unknown>[] }>("GET", "/v1/admin/audit?event=api.request.denied")).items;
    expect(denied).toContainEqual(expect.objectContaining({ user: "tess", error_code: "access_denied", reason: expect.stringContaining('"read" on "notification_target"') }));
    const full = await admin(["get", "notification_target/approvals", "--format", "json", "--with-secrets"]);
    expect(JSON.parse(full.stdout).spec.url).toBe("https://hooks.example.com/azgate?key=hook-secret-value");
  });

  it("refuses a connector that maps to a role that does not exist, naming it", async () => {
    const file = path.join(tempDir(), "oidc.yaml");
    writeFileSync(file, "kind: oidc\nversion: v3\nmetadata: {name: other}\nspec: {issuer_url: 'https://idp.example.com', client_id: a, client_secret: b, redirect_url: 'https://p.example.com/cb', claims_to_roles: [{claim: groups, value: g, roles: [no-such-role]}]}\n");
    const res = await admin(["create", "-f", file]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/no-such-role/);
    expect((await admin(["get", "oidc/other"])).stderr).toContain('oidc "other" is not found');
  });

  it("edit opens $EDITOR on the resource with its secrets and applies the change; an unchanged file changes nothing", async () => {
    const editor = path.join(tempDir(), "edit.sh");
    writeFileSync(editor, `#!/bin/sh\nsed -i 's/display: Corporate SSO/display: Single sign-on/' "$1"\n`);
    chmodSync(editor, 0o755);
    const res = await admin(["edit", "oidc/myoidc"], { EDITOR: editor });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain('oidc "myoidc" has been updated');
    const after = await admin(["get", "oidc/myoidc", "--format", "yaml", "--with-secrets"]);
    expect(after.stdout).toContain("display: Single sign-on");
    expect(after.stdout).toContain("client_secret: oidc-client-secret-value");
    const same = await admin(["edit", "oidc/myoidc"], { EDITOR: "true" });
    expect(same.stdout).toContain('oidc "myoidc" was not changed');
    const rename = path.join(tempDir(), "rename.sh");
    writeFileSync(rename, `#!/bin/sh\nsed -i 's/name: myoidc/name: renamed/' "$1"\n`);
    chmodSync(rename, 0o755);
    const renamed = await admin(["edit", "oidc/myoidc"], { EDITOR: rename });
    expect([renamed.code, renamed.stderr]).toEqual([1, expect.stringContaining('must still hold oidc "myoidc" alone; nothing was changed')]);
  });

  it("rm removes a connector", async () => {
    const res = await admin(["rm", "saml/mysaml"]);
    expect([res.code, res.stdout]).toEqual([0, 'saml connector "mysaml" has been deleted\n']);
    expect((await admin(["get", "saml/mysaml"])).code).toBe(1);
  });
});
