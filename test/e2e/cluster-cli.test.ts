import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { spawn } from "node:child_process";
import { hostname } from "node:os";
import net from "node:net";
import { Authenticator, azgateCommand, cli, startProxyProcess, tempDir, type ProxyProcess } from "../helpers/azgate.ts";
import { runCommand } from "../helpers/run.ts";
import { stopAll } from "../helpers/stop.ts";
import { request } from "../../src/runtime/index.ts";
import { createProof, PROOF_SCHEME } from "../../src/auth/proof.ts";
import { importPrivateKeyPem, generateKeyPair } from "../../src/pki/keys.ts";
import { createAuthority } from "../../src/pki/authority.ts";
import { issueIdentityCert } from "../../src/pki/certificate.ts";
import { certFile, keyFile, profileFile } from "../../src/client/profile.ts";

/**
 * The cluster core through the real CLI against a real proxy process:
 * bootstrap, invite, accept, login with password and TOTP, roles from the
 * seed files, identities, tokens, and the failures a user can hit.
 */
const SEED = path.resolve(import.meta.dirname, "../fixtures/seed");
const READER = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/myResourceGroup/providers/Microsoft.ManagedIdentity/userAssignedIdentities/teleport-reader";
const PASSWORD = "correct horse battery staple";

let proxy: ProxyProcess;
const dataDir = tempDir();
const aliceHome = tempDir();
const bobHome = tempDir();
const alice = new Authenticator();
const bob = new Authenticator();

const admin = (args: string[]) => cli(["admin", "--data-dir", dataDir, ...args], { home: aliceHome });
const as = (home: string) => (args: string[], input?: string) => cli(args, { home, input });
const asAlice = as(aliceHome);
const asBob = as(bobHome);

function inviteToken(stdout: string): string {
  const m = /accept-invite --proxy \S+ (?:--ca-pin \S+ )?([0-9a-f]+)/.exec(stdout);
  if (!m) throw new Error(`no invite in:\n${stdout}`);
  return m[1];
}

async function accept(home: string, token: string, auth: Authenticator) {
  return cli(["users", "accept-invite", "--proxy", proxy.addr, "--ca-pin", proxy.pin, "--otp-secret", auth.secret, token], {
    home,
    input: `${PASSWORD}\n${PASSWORD}\n${await auth.code()}\n`,
  });
}

async function login(home: string, user: string, password: string, otp: string, extra: string[] = []) {
  return cli(["login", "--proxy", proxy.addr, "--ca-pin", proxy.pin, "--user", user, ...extra], { home, input: `${password}\n${otp}\n` });
}

/** A 6-digit code that is valid for none of the steps the proxy would accept now. */
function wrongCode(): string {
  return "000000";
}

beforeAll(async () => {
  proxy = await startProxyProcess({ dataDir, home: aliceHome });
});
afterAll(() => stopAll(proxy));

describe("cluster core end to end", () => {
  it("bootstraps the first admin on the proxy host and reports the CA pin", async () => {
    const status = await admin(["status"]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/Cluster:\s+e2e/);
    expect(status.stdout).toContain(`CA pin:  ${proxy.pin}`);

    const added = await admin(["users", "add", "alice", "--roles", "access,editor"]);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toContain('User "alice" has been created but requires a password');
    const accepted = await accept(aliceHome, inviteToken(added.stdout), alice);
    expect(accepted.code, accepted.stderr).toBe(0);
    expect(accepted.stdout).toContain("User alice is ready");
  });

  it("an invite works once; its CLI line, run as printed, pins the cluster's CA (no trust prompt)", async () => {
    const added = await admin(["users", "add", "carol", "--roles", "access"]);
    const token = inviteToken(added.stdout);
    const line = /Or, on the user's machine: azgate (users accept-invite .*)$/m.exec(added.stdout)![1];
    expect(line).toBe(`users accept-invite --proxy ${new URL(/^(https:\S+)\/web\/invite\//m.exec(added.stdout)![1]).host} --ca-pin ${proxy.pin} ${token}`);
    const carol = new Authenticator();
    const first = await cli([...line.split(" "), "--otp-secret", carol.secret], { home: tempDir(), input: `${PASSWORD}\n${PASSWORD}\n${await carol.code()}\n` });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).not.toContain("presents a CA not seen before");
    const again = await accept(tempDir(), token, carol);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("ERROR: this invite is invalid, used or expired");
  });

  it("an invite can be accepted on the web page", async () => {
    const added = await admin(["users", "add", "dave", "--roles", "access"]);
    const token = inviteToken(added.stdout);
    const caPem = await request(`https://${proxy.addr}/v1/ping`, { insecure: true }).then((r) => JSON.parse(r.body).host_ca_pems[0]);
    const page = await request(`https://${proxy.addr}/web/invite/${token}`, { ca: caPem });
    expect(page.status).toBe(200);
    expect(page.headers["referrer-policy"]).toBe("no-referrer");
    expect(page.body).toContain("Set up the account <b>dave</b>");
    const secret = /name="otp_secret" value="([A-Z2-7]+)"/.exec(page.body)![1];
    const dave = new Authenticator(secret);
    const form = (fields: Record<string, string>) => request(`https://${proxy.addr}/web/invite/${token}`, {
      method: "POST", ca: caPem, headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(fields).toString(),
    });
    const mismatch = await form({ password: PASSWORD, password_confirm: PASSWORD + "x", otp_secret: secret, otp_code: await dave.code() });
    expect(mismatch.status).toBe(400);
    expect(mismatch.body).toContain("the two passwords differ");
    const ok = await form({ password: PASSWORD, password_confirm: PASSWORD, otp_secret: secret, otp_code: await dave.code() });
    expect(ok.status, ok.body).toBe(200);
    expect(ok.body).toContain("Welcome, dave");
    const daveHome = tempDir();
    expect((await login(daveHome, "dave", PASSWORD, await dave.code())).code).toBe(0);
  });

  it("refuses a wrong password and a wrong OTP code with the same message", async () => {
    const wrongPassword = await login(aliceHome, "alice", "not the password", await alice.code());
    expect(wrongPassword.code).toBe(1);
    expect(wrongPassword.stderr).toContain("ERROR: invalid user name, password or second factor");
    const wrongOtp = await login(aliceHome, "alice", PASSWORD, wrongCode());
    expect(wrongOtp.code).toBe(1);
    expect(wrongOtp.stderr).toContain("ERROR: invalid user name, password or second factor");
    const noProfile = await asAlice(["status"]);
    expect(noProfile.stderr).toContain("ERROR: not logged in");
  });

  it("logs in with password and TOTP; status shows the session", async () => {
    const res = await login(aliceHome, "alice", PASSWORD, await alice.code());
    expect(res.code, res.stderr).toBe(0);
    // Teleport's shape (tsh status -f json): the seed guide's jq lines work on it verbatim.
    const status = await asAlice(["status", "-f", "json"]);
    const s = JSON.parse(status.stdout).active;
    expect(s.username).toBe("alice");
    expect(s.roles).toEqual(["access", "editor"]);
    expect(s.profile_url).toBe(`https://${proxy.addr}`);
    expect(s.cluster).toBe("e2e");
    expect(Date.parse(s.valid_until) - Date.now()).toBeLessThanOrEqual(8 * 3600_000); // editor caps at 8h
    expect(s.expired).toBe(false);
    const text = await asAlice(["status"]);
    expect(text.stdout).toMatch(/Logged in as:\s+alice/);
    // The key never leaves the client and is private to its owner.
    expect(statSync(keyFile(proxy.addr, "alice", aliceHome)).mode & 0o777).toBe(0o600);
  });

  it("creates the seed roles from their files, unchanged", async () => {
    // As tctl: the file is the argument, -f is --force (--file still works).
    const internal = await asAlice(["admin", "create", `${SEED}/azure-cli-access-internal.yaml`]);
    expect(internal.stdout.trim()).toBe('role "azure-cli-access" has been created');
    const again = await asAlice(["admin", "create", "--file", `${SEED}/azure-cli-access-static.yaml`]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('role "azure-cli-access" already exists; use -f (--force) to overwrite it');
    for (const [f, flag] of [["azure-cli-access-static.yaml", "-f"], ["azure-cli-access-external.yaml", "--force"], ["azure-cli-access-internal.yaml", "-f"]]) {
      const res = await asAlice(["admin", "create", flag, `${SEED}/${f}`]);
      expect(res.stdout.trim(), res.stderr).toBe('role "azure-cli-access" has been updated');
    }
    const deny = await asAlice(["admin", "create", `${SEED}/no-azure-identities.yaml`]);
    expect(deny.stdout.trim()).toBe('role "no-azure-identities" has been created');
    const roles = await asAlice(["admin", "get", "roles"]);
    expect(roles.stdout).toMatch(/^azure-cli-access\s+\{\{internal\.azure_identities\}\}/m);
    expect(roles.stdout).toMatch(/^no-azure-identities\s+-\s+\*/m);
  });

  it("get roles: a role made only of azure_api or request rules says what it carries, not a row of dashes", async () => {
    const file = path.join(tempDir(), "roles.yaml");
    writeFileSync(file, "kind: role\nversion: v7\nmetadata: {name: api-only}\nspec:\n  allow:\n    azure_api:\n      - actions: ['*/read']\n      - actions: ['Microsoft.Compute/virtualMachines/restart/action']\n  deny:\n    azure_api:\n      - preset: no-privilege-escalation\n---\nkind: role\nversion: v7\nmetadata: {name: requester}\nspec:\n  allow:\n    request:\n      roles: [azure-cli-access]\n");
    const created = await asAlice(["admin", "create", file]);
    expect(created.code, created.stderr).toBe(0);
    const roles = await asAlice(["admin", "get", "roles"]);
    expect(roles.stdout).toMatch(/^Role\s+Azure identities\s+Denied identities\s+App labels\s+Max session TTL\s+Other rules$/m);
    expect(roles.stdout).toMatch(/^api-only\s+-\s+-\s+-\s+12h \(default\)\s+azure_api: 2 rules allow; deny preset no-privilege-escalation$/m);
    expect(roles.stdout).toMatch(/^requester\s+-\s+-\s+-\s+12h \(default\)\s+request roles azure-cli-access$/m);
    expect(roles.stdout).toMatch(/^editor\s+.*admin: /m);
  });

  it("sets identities and roles, and shows them", async () => {
    // Like tctl: a comma-separated list becomes one trait value each, and replaces the trait.
    const ids = ["id-a", "id-b", "id-c"].map((n) => READER.replace("teleport-reader", n));
    expect((await asAlice(["admin", "users", "update", "alice", "--set-azure-identities", ids.join(",")])).code).toBe(0);
    const three = JSON.parse((await asAlice(["admin", "get", "user/alice", "--format", "json"])).stdout);
    expect(three.spec.traits.azure_identities).toEqual(ids);
    // Each value is an identity ID in the one grammar (src/azure/resource-id.ts): the bad part is named, nothing changes.
    const smuggled = await asAlice(["admin", "users", "update", "alice", "--set-azure-identities", `${READER}?api-version=2023-01-31&x=`]);
    expect(smuggled.code).not.toBe(0);
    expect(smuggled.stderr).toContain("has a query string ('?')");
    expect(JSON.parse((await asAlice(["admin", "get", "user/alice", "--format", "json"])).stdout).spec.traits.azure_identities).toEqual(ids);
    expect((await asAlice(["admin", "users", "update", "alice", "--set-azure-identities", READER])).code).toBe(0);
    expect((await asAlice(["admin", "users", "update", "alice", "--set-roles", "access,azure-cli-access,editor"])).code).toBe(0);
    const users = JSON.parse((await asAlice(["admin", "get", "users", "--format", "json"])).stdout);
    const a = users.find((u: { metadata: { name: string } }) => u.metadata.name === "alice");
    expect(a.spec.roles).toEqual(["access", "azure-cli-access", "editor"]);
    expect(a.spec.traits.azure_identities).toEqual([READER]);
    const yaml = await asAlice(["admin", "get", "role/azure-cli-access", "--format", "yaml"]);
    expect(yaml.stdout).toContain("kind: role");
    expect(yaml.stdout).toContain("{{internal.azure_identities}}");
    const missingRole = await asAlice(["admin", "users", "update", "alice", "--set-roles", "nope"]);
    expect(missingRole.stderr).toContain('ERROR: role "nope" is not found');
  });

  it("status shows the roles and Azure identities that apply now (the proxy's), not the certificate's from login", async () => {
    // alice logged in as access,editor with no identities; an admin has since changed both, which applies on the next request.
    const s = JSON.parse((await asAlice(["status", "-f", "json"])).stdout).active;
    expect(s).toMatchObject({ roles: ["access", "azure-cli-access", "editor"], azure_identities: [READER], view: "proxy" });
    expect(s.proxy_error).toBeUndefined();
    const text = (await asAlice(["status"])).stdout;
    expect(text).toMatch(/Roles:\s+access, azure-cli-access, editor\n/);
    expect(text).toContain(READER);
    expect(text).not.toContain("Note:");
  });

  it("runs the seed guide's Step 4 verbatim, azgate for tsh and tctl: status -f json | jq, users update, get --with-secrets > file, create -f file", async () => {
    // The state the guide starts from: an OIDC connector, and alice without azure-cli-access.
    expect((await asAlice(["admin", "create", "-f", path.join(import.meta.dirname, "../fixtures/connectors/oidc.yaml")])).code).toBe(0);
    expect((await asAlice(["admin", "users", "update", "alice", "--set-roles", "access,editor"])).code).toBe(0);
    expect((await login(aliceHome, "alice", PASSWORD, await alice.code())).code).toBe(0);
    const bin = tempDir("azgate-bin-");
    const [cmd, argv] = azgateCommand([]);
    writeFileSync(path.join(bin, "azgate"), `#!/bin/sh\nexec ${[cmd, ...argv].map((a) => `'${a}'`).join(" ")} "$@"\n`, { mode: 0o755 });
    const work = tempDir("azgate-guide-");
    const guide = [
      "set -eu",
      `cd '${work}'`,
      `ROLES=$(azgate status -f json | jq -r '.active.roles | join(",")')`,
      `azgate admin users update $(azgate status -f json | jq -r '.active.username') --set-roles "\${ROLES?},azure-cli-access"`,
      "azgate admin get oidc/myoidc --with-secrets > oidc.yaml",
      "azgate admin create -f oidc.yaml",
    ].join("\n");
    const res = await runCommand("/bin/sh", ["-c", guide], { AZGATE_HOME: aliceHome, HOME: process.env.HOME ?? "/root", PATH: `${bin}:${process.env.PATH}`, NO_COLOR: "1" });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain("User alice has been updated.");
    expect(res.stdout).toContain('oidc "myoidc" has been updated');
    const saved = readFileSync(path.join(work, "oidc.yaml"), "utf8");
    expect(saved).toMatch(/^kind: oidc$/m);
    expect(saved).toContain("client_secret: oidc-client-secret-value");
    const user = JSON.parse((await asAlice(["admin", "get", "user/alice", "--format", "json"])).stdout);
    expect(user.spec.roles).toEqual(["access", "editor", "azure-cli-access"]);
    // The role change revoked nothing (a reset would): restore alice's roles for the tests after this one.
    expect((await asAlice(["admin", "users", "update", "alice", "--set-roles", "access,azure-cli-access,editor"])).code).toBe(0);
  }, 120_000); // the login waits for the next TOTP period (up to 30 s) before a dozen CLI runs

  it("removes a role", async () => {
    expect((await asAlice(["admin", "rm", "role/no-azure-identities"])).stdout.trim()).toBe('role "no-azure-identities" has been deleted');
    const gone = await asAlice(["admin", "get", "role/no-azure-identities"]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('ERROR: role "no-azure-identities" is not found');
  });

  it("adds, lists and removes join tokens", async () => {
    const add = await asAlice(["admin", "tokens", "add", "--type=app", "--ttl=1h", "--format=text"]);
    expect(add.code, add.stderr).toBe(0);
    const token = add.stdout.trim();
    expect(token).toMatch(/^[0-9a-f]{32}$/);
    const ls = await asAlice(["admin", "tokens", "ls", "--format", "json"]);
    const tokens = JSON.parse(ls.stdout) as { id: string; type: string; expires: string }[];
    expect(tokens).toHaveLength(1);
    expect(tokens[0].type).toBe("app");
    expect(Date.parse(tokens[0].expires) - Date.now()).toBeGreaterThan(59 * 60_000);
    expect(ls.stdout).not.toContain(token); // stored and shown by id only
    expect((await asAlice(["admin", "tokens", "rm", token])).stdout).toContain(`token ${tokens[0].id} has been deleted`);
    expect(JSON.parse((await asAlice(["admin", "tokens", "ls", "--format", "json"])).stdout)).toEqual([]);
    const bad = await asAlice(["admin", "tokens", "add", "--type=node"]);
    expect(bad.stderr).toContain('ERROR: --type: unsupported token type "node"');
  });

  it("refuses a role with * in allow and a malformed file, writing nothing", async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, "star.yaml"), "kind: role\nversion: v7\nmetadata: {name: star}\nspec:\n  allow:\n    azure_identities: ['*']\n");
    writeFileSync(path.join(dir, "broken.yaml"), "kind: role\nversion: v7\nmetadata: {name: broken\nspec: [\n");
    writeFileSync(path.join(dir, "two.yaml"), "kind: role\nversion: v7\nmetadata: {name: first-ok}\nspec: {}\n---\nkind: role\nversion: v7\nmetadata: {name: second}\nspec: {allow: {azure_identitie: []}}\n");
    const star = await asAlice(["admin", "create", "-f", path.join(dir, "star.yaml")]);
    expect(star.code).toBe(1);
    expect(star.stderr).toContain("spec.allow.azure_identities[0]: wildcard matcher is not allowed in allow.azure_identities");
    const broken = await asAlice(["admin", "create", "-f", path.join(dir, "broken.yaml")]);
    expect(broken.stderr).toMatch(/broken\.yaml: malformed YAML \(line \d+/);
    const two = await asAlice(["admin", "create", "-f", path.join(dir, "two.yaml")]);
    expect(two.stderr).toContain("document 2");
    expect(two.stderr).toContain("spec.allow.azure_identitie: unknown field");
    const names = JSON.parse((await asAlice(["admin", "get", "roles", "--format", "json"])).stdout).map((r: { metadata: { name: string } }) => r.metadata.name);
    expect(names).not.toContain("star");
    expect(names).not.toContain("first-ok");
  });

  it("remembers a CA confirmed once; a damaged profile names its file and logout --proxy repairs it", async () => {
    const carlHome = tempDir();
    const carl = new Authenticator();
    const added = await admin(["users", "add", "carl", "--roles", "access"]);
    expect((await accept(carlHome, inviteToken(added.stdout), carl)).code).toBe(0);
    // The pin given at accept-invite is remembered for this proxy: login needs no --ca-pin and asks nothing.
    const res = await cli(["login", "--proxy", proxy.addr, "--user", "carl"], { home: carlHome, input: `${PASSWORD}\n${await carl.code()}\n` });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).not.toContain("presents a CA not seen before");
    // A damaged profile: every command says which file and how to repair it.
    const file = profileFile(proxy.addr, carlHome);
    writeFileSync(file, "{ not json");
    const status = await cli(["status"], { home: carlHome });
    expect(status.code).toBe(1);
    expect(status.stderr).toContain(`ERROR: ${file} is damaged (not JSON); run azgate logout --proxy ${proxy.addr}, then log in again`);
    const logout = await cli(["logout", "--proxy", proxy.addr], { home: carlHome });
    expect(logout.code, logout.stderr).toBe(0);
    expect(existsSync(file)).toBe(false);
    // A damaged key file too.
    expect((await cli(["login", "--proxy", proxy.addr, "--user", "carl"], { home: carlHome, input: `${PASSWORD}\n${await carl.code()}\n` })).code).toBe(0);
    writeFileSync(keyFile(proxy.addr, "carl", carlHome), "garbage");
    const apps = await cli(["apps", "ls"], { home: carlHome });
    expect(apps.stderr).toContain(`ERROR: ${keyFile(proxy.addr, "carl", carlHome)} is damaged (not a PEM private key); run azgate logout --proxy ${proxy.addr}, then log in again`);
    expect((await cli(["logout", "--proxy", proxy.addr], { home: carlHome })).code).toBe(0);
  });

  it("a proxy listening on every address (the image's default command) names the host name in its links, not localhost", async () => {
    const [cmd, argv] = azgateCommand(["start", "--mode", "proxy", "--data-dir", tempDir(), "--listen", "0.0.0.0:0", "--cluster-name", "e2e"]);
    const child = spawn(cmd, argv, { env: { ...process.env, AZGATE_HOME: tempDir() }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout!.on("data", (d) => (out += d));
    child.stderr!.on("data", (d) => (out += d));
    try {
      await expect.poll(() => out, { timeout: 30_000, interval: 100 }).toMatch(/Public URL:/);
      const host = hostname().toLowerCase();
      expect(out).toMatch(new RegExp(`Public URL:\\s+https://${host.replace(/\./g, "\\.")}:\\d+ \\(this machine's host name; links name it: set --public-addr or AZGATE_PUBLIC_ADDR`));
      expect(out).not.toContain("https://localhost:");
    } finally {
      child.kill("SIGTERM");
    }
  });

  it("says what the operating system refused, with the path, not a raw errno", async () => {
    const res = await cli(["start", "--mode", "proxy", "--data-dir", "/etc/hostname/azgate", "--listen", "127.0.0.1:0"], { home: tempDir() });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/^ERROR: \/etc\/hostname(\/azgate)?: a part of this path is a file, not a directory; choose another path$/m);
  });

  it("exec --help lists its --app option", async () => {
    const help = await cli(["exec", "--help"], { home: tempDir() });
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^azgate exec \[--app NAME\] \[--\] COMMAND \[ARGS\.\.\.\]$/m);
    expect(help.stdout).toMatch(/^\s+--app\s+The app session to use, when logged into several/m);
  });

  it("a usage error exits 2 and runs nothing", async () => {
    const unused = path.join(tempDir(), "never-created");
    const badMode = await cli(["start", "--mode", "bogus", "--data-dir", unused], { home: aliceHome });
    expect(badMode.code).toBe(2);
    expect(badMode.stderr).toContain('Argument: mode, Given: "bogus", Choices: "proxy", "agent"');
    expect(badMode.stdout).not.toContain("is running");
    expect(existsSync(unused)).toBe(false);
    const missing = await asAlice(["admin", "users", "add", "erin"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim().split("\n")[0]).toBe("ERROR: Missing required argument: roles");
    expect((await asAlice(["admin", "users", "ls"])).stdout).not.toContain("erin");
    const bare = await asAlice(["admin", "users"]);
    expect(bare.code).toBe(2);
    expect(bare.stderr.split("\n")[0]).toBe('ERROR: name a subcommand; "azgate admin users --help" lists them');
  });

  it("refuses admin commands to a user without admin rules", async () => {
    const added = await asAlice(["admin", "users", "add", "bob", "--roles", "access"]);
    expect((await accept(bobHome, inviteToken(added.stdout), bob)).code).toBe(0);
    expect((await login(bobHome, "bob", PASSWORD, await bob.code())).code).toBe(0);
    for (const args of [["admin", "get", "users"], ["admin", "create", "-f", `${SEED}/no-azure-identities.yaml`], ["admin", "tokens", "add", "--type=app"], ["admin", "rm", "user/alice"]]) {
      const res = await asBob(args);
      expect(res.code, args.join(" ")).toBe(1);
      expect(res.stderr).toMatch(/^ERROR: access denied to perform action "(list|create|delete)" on "(user|role|token)"/);
    }
  });

  it("a proof sent twice is refused, and so is one from another CA", async () => {
    const key = await importPrivateKeyPem(readFileSync(keyFile(proxy.addr, "bob", bobHome), "utf8"));
    const certPem = readFileSync(certFile(proxy.addr, "bob", bobHome), "utf8");
    const caPem = JSON.parse(readFileSync(profileFile(proxy.addr, bobHome), "utf8")).ca_pem;
    const call = (proof: string) => request(`https://${proxy.addr}/v1/whoami`, { headers: { authorization: `${PROOF_SCHEME} ${proof}` }, ca: caPem });

    const proof = await createProof({ key, certPem, method: "GET", pathAndQuery: "/v1/whoami", now: Date.now() });
    const first = await call(proof);
    expect(first.status).toBe(200);
    expect(JSON.parse(first.body).name).toBe("bob");
    const replayed = await call(proof);
    expect(replayed.status).toBe(401);
    expect(JSON.parse(replayed.body).error.code).toBe("proof_replayed");

    const foreignCa = await createAuthority("user", "e2e", new Date());
    const keys = await generateKeyPair();
    const forged = await issueIdentityCert({
      ca: foreignCa,
      publicKey: keys.publicKey,
      identity: { kind: "user", name: "alice", roles: ["editor"], traits: {}, azure_identities: [], login_method: "password", session_id: "x" },
      now: new Date(),
      notAfter: new Date(Date.now() + 3600_000),
    });
    const res = await call(await createProof({ key: keys.privateKey, certPem: forged.toString("pem"), method: "GET", pathAndQuery: "/v1/whoami", now: Date.now() }));
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body).error.code).toBe("cert_untrusted");
  });

  it("an expired certificate is refused with a message that says to log in", async () => {
    const res = await login(aliceHome, "alice", PASSWORD, await alice.code(), ["--ttl", "2s"]);
    expect(res.code, res.stderr).toBe(0);
    // The certificate's end is real time in another process: wait for it to pass, as status reports it.
    await expect.poll(async () => JSON.parse((await asAlice(["status", "--format", "json"])).stdout).active.expired, { timeout: 10_000, interval: 250 }).toBe(true);
    const call = await asAlice(["admin", "get", "users"]);
    expect(call.code).toBe(1);
    expect(call.stderr).toMatch(/^ERROR: your session expired at .*; run azgate login again/);
  });

  it("locks a user's password logins after five failures, even for the right password; the sessions they hold go on", async () => {
    for (let i = 0; i < 5; i++) {
      const res = await login(bobHome, "bob", `wrong password ${i}`, wrongCode());
      expect(res.stderr).toContain("invalid user name, password or second factor");
    }
    const locked = await login(bobHome, "bob", PASSWORD, await bob.code());
    expect(locked.code).toBe(1);
    // Answered as any failure: whether the account exists, or is locked, is no business of an anonymous caller's.
    expect(locked.stderr).toContain("ERROR: invalid user name, password or second factor");
    // The lockout stops password guessing only: anyone can fail a login, so it must not cut bob's live session.
    const still = await asBob(["apps", "ls"]);
    expect(still.code, still.stderr).toBe(0);
  });

  it("status without the proxy: the certificate's view, said so; a proxy that does not answer costs it its short timeout, not the 30 s default", async () => {
    await proxy.stop();
    const refused = JSON.parse((await asBob(["status", "-f", "json"])).stdout).active;
    expect(refused).toMatchObject({ view: "certificate", roles: ["access"], proxy_error: expect.stringContaining("nothing is listening there") });
    // Something that accepts and never answers, where the proxy was.
    const held: net.Socket[] = [];
    const silent = net.createServer((socket) => void held.push(socket));
    await new Promise<void>((resolve) => silent.listen(proxy.port, "127.0.0.1", resolve));
    try {
      const started = Date.now();
      const res = await asBob(["status"]);
      const took = Date.now() - started;
      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).toMatch(/Roles:\s+access\n/);
      expect(res.stdout).toMatch(/Note:\s+the proxy could not be asked \(.*timed out.*\): roles and Azure identities above are the certificate's, as of login, and access grants are unknown/);
      // A CLI start plus 2 s; waiting for the default would take 30 s.
      expect(took).toBeLessThan(25_000);
    } finally {
      for (const socket of held) socket.destroy();
      silent.close();
    }
  });

  it("logs out", async () => {
    expect((await asAlice(["logout"])).stdout).toContain(`Logged out alice@${proxy.addr}`);
    const status = await asAlice(["status"]);
    expect(status.code).toBe(1);
    expect(status.stderr).toContain("ERROR: not logged in");
  });
});
