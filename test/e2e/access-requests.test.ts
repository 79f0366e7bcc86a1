/**
 * Just-in-time access end to end: a user with no standing access to an
 * identity requests it, a reviewer who is not an administrator approves it
 * from another profile, and the user's running `azgate proxy azure` gets
 * through on the next az command, with no new login; a revoke, and a
 * window's end, refuse the next one. The real az, a real proxy and agent.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, spawnAgent, startCluster, workstationHome, type AgentProcess, type TestCluster } from "../helpers/cluster.ts";
import { cli, parseExports, startCli, type LongRunningCli } from "../helpers/azgate.ts";
import { runCommand } from "../helpers/run.ts";
import { newWebhookSecret, startHttpReceiver, type HttpReceiver } from "../helpers/receivers.ts";
import { stopAll } from "../helpers/stop.ts";
import { Webhook } from "standardwebhooks";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");
const ALL_IN_GROUP = "/subscriptions/*/resourceGroups/myResourceGroup/providers/Microsoft.ManagedIdentity/userAssignedIdentities/*";

const CONTRIB = IDENTITY("teleport-contributor");

const ROLES = [
  `kind: role\nversion: v7\nmetadata: {name: two-person}\nspec:\n  allow:\n    app_labels: {"*": "*"}\n    request:\n      azure_identities: ["${CONTRIB}"]\n      thresholds: [{approve: 2, deny: 1, filter: 'contains(reviewer.roles, \"senior-reviewer\")'}]\n`,
  `kind: role\nversion: v7\nmetadata: {name: senior-reviewer}\nspec:\n  allow: {}\n`,
  `kind: role\nversion: v7\nmetadata: {name: requester}\nspec:\n  allow:\n    app_labels: {"*": "*"}\n    request:\n      azure_identities: ["${READER}"]\n      max_duration: 1h\n      reason: {mode: required}\n`,
  `kind: role\nversion: v7\nmetadata: {name: reviewer}\nspec:\n  allow:\n    app_labels: {"*": "*"}\n    review_requests:\n      azure_identities: ["${ALL_IN_GROUP}"]\n`,
  // The README's form: every identity of a resource group, by a glob (issue 31, item 2).
  `kind: role\nversion: v7\nmetadata: {name: group-requester}\nspec:\n  allow:\n    app_labels: {"*": "*"}\n    request:\n      azure_identities: ["${ALL_IN_GROUP}"]\n      max_duration: 2h\n      reason: {mode: required}\n`,
];

describe("access requests", () => {
  let cluster: TestCluster;
  let agent: AgentProcess;
  let proxy: LongRunningCli | undefined;
  const homes = new Map<string, string>();
  const as = (user: string, args: string[]) => cli(args, { home: homes.get(user)!, env: { HOME: homes.get(user)! } });
  const audit = async (event: string) => (await cluster.admin.call<{ items: Record<string, unknown>[] }>("GET", `/v1/admin/audit?event=${event}`)).items.filter((e) => e.event === event);
  let exports = "";
  let hooks: HttpReceiver;
  const hookSecret = newWebhookSecret();
  const az = () => runCommand("/bin/sh", ["-c", `${exports}\naz group list -o json --only-show-errors`], { HOME: homes.get("alice")!, PATH: process.env.PATH! });
  const idOf = (stdout: string) => /^Request ID:\s+([0-9a-f-]{36})$/m.exec(stdout)![1];

  beforeAll(async () => {
    // The notification receiver is on loopback: the proxy may send there only when its configuration says so.
    cluster = await startCluster({ env: { AZGATE_NOTIFICATIONS_ALLOW_PRIVATE_ADDRESSES: "true" } });
    agent = spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken() });
    await agent.waitFor(/tunnel to .* is up/);
    for (const text of ROLES) await cluster.admin.call("POST", "/v1/admin/resources", { text });
    hooks = await startHttpReceiver();
    const target = `kind: notification_target\nversion: v1\nmetadata: {name: reviewers}\nspec: {type: webhook, url: "${hooks.url("/hook")}", signing_secret: "${hookSecret}", filter: {users: [alice]}}\n`;
    await cluster.admin.call("POST", "/v1/admin/resources", { text: target });
    for (const [name, roles] of [["alice", ["requester"]], ["bob", ["reviewer", "senior-reviewer"]], ["carol", ["reviewer", "senior-reviewer"]], ["dave", ["reviewer"]], ["mallory", ["requester", "two-person"]], ["erin", ["group-requester"]]] as const) {
      homes.set(name, await workstationHome(cluster, await cluster.user(name, [...roles])));
    }
  }, 180_000);
  afterAll(() => stopAll(hooks, proxy, agent, cluster));

  it("without standing access, apps login is refused with the exact request command; for an identity one may not request, without it", async () => {
    const res = await as("alice", ["apps", "login", "azure-cli", "--azure-identity", "teleport-reader"]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain(`you have no standing access to Azure identity "${READER}", but you may request it:\n  azgate request create --app azure-cli --azure-identity teleport-reader --for 1h --reason "..."`);
    const other = await as("alice", ["apps", "login", "azure-cli", "--azure-identity", "teleport-contributor"]);
    expect(other.code).not.toBe(0);
    expect(other.stderr).not.toContain("you may request it");
  });

  it("a glob in request.azure_identities (the README's form): apps login names the request command for a short name, request create takes it and stores the full ID", async () => {
    const hint = await as("erin", ["apps", "login", "azure-cli", "--azure-identity", "teleport-contributor"]);
    expect(hint.code).not.toBe(0);
    expect(hint.stderr).toContain(`you have no standing access to Azure identity "${CONTRIB}", but you may request it:\n  azgate request create --app azure-cli --azure-identity teleport-contributor --for 2h --reason "..."`);
    const created = await as("erin", ["request", "create", "--app", "azure-cli", "--azure-identity", "teleport-contributor", "--for", "2h", "--reason", "deploy", "--nowait"]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain(`Azure identity: teleport-contributor (${CONTRIB})`);
    const id = idOf(created.stdout);
    expect(JSON.parse((await as("erin", ["request", "show", id, "--format", "json"])).stdout).spec.azure_identity).toBe(CONTRIB);
    expect((await as("erin", ["request", "cancel", id])).code).toBe(0);
    // An identity no role names, known only from what the agent lists from ARM over its tunnel (identity_list).
    const listed = await as("erin", ["apps", "login", "azure-cli", "--azure-identity", "teleport-azure-cli-aks-agent"]);
    expect(listed.stderr).toContain(`but you may request it:\n  azgate request create --app azure-cli --azure-identity teleport-azure-cli-aks-agent --for 2h --reason "..."`);
  }, 120_000);

  it("a reviewer who is not an admin approves; revoke refuses the next request; a new grant reaches the running proxy azure with no new login; self-approval refused", async () => {
    const noReason = await as("alice", ["request", "create", "--azure-identity", "teleport-reader", "--for", "10m", "--nowait"]);
    expect(noReason.code).not.toBe(0);
    expect(noReason.stderr).toContain("a reason (--reason) is required");

    const created = await as("alice", ["request", "create", "--azure-identity", "teleport-reader", "--for", "10m", "--reason", "incident 7", "--nowait"]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/^Status:\s+PENDING$/m);
    const first = idOf(created.stdout);
    const pending = await as("alice", ["apps", "login", "azure-cli", "--azure-identity", "teleport-reader"]);
    expect(pending.code).not.toBe(0);

    const self = await as("alice", ["request", "approve", first]);
    expect(self.code).not.toBe(0);
    expect(self.stderr).toContain("you cannot review your own request");
    const peer = await as("mallory", ["request", "approve", first]);
    expect(peer.code).not.toBe(0);
    expect(peer.stderr).toMatch(/not found|no role lets you review/);

    expect((await as("bob", ["request", "ls", "--reviewable"])).stdout).toContain(first);
    const approved = await as("bob", ["request", "approve", first, "--reason", "ok for incident 7"]);
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stdout).toContain("Request state: APPROVED");

    // azgate status lists the grant with its time left (grants live on the proxy: status asks it).
    const status = await as("alice", ["status"]);
    expect(status.stdout).toMatch(new RegExp(`^  Access grant: +teleport-reader on azure-cli, (9|10)m\\d*s? left \\(request ${first}\\)$`, "m"));
    expect(JSON.parse((await as("alice", ["status", "-f", "json"])).stdout).active.active_requests).toEqual([first]);

    // Approved: the session starts, and az works through it.
    const login = await as("alice", ["apps", "login", "azure-cli", "--azure-identity", "teleport-reader"]);
    expect(login.code, login.stderr).toBe(0);
    proxy = await startCli(["proxy", "azure", "--format", "unix"], { home: homes.get("alice")!, env: { HOME: homes.get("alice")! }, ready: /export NODE_EXTRA_CA_CERTS=.*\n/ });
    exports = proxy.output().split("\n").filter((l) => l.startsWith("export ")).join("\n");
    expect(parseExports(proxy.output()).AZURE_CONFIG_DIR).toBeTruthy();
    const during = await az();
    expect(during.code, during.stderr).toBe(0);
    expect(JSON.parse(during.stdout).map((g: { name: string }) => g.name)).toContain("myResourceGroup");
    const events = (await audit("app.request")).filter((e) => e.user === "alice");
    expect(events.length).toBeGreaterThan(0);
    expect(events.every((e) => e.access_request_id === first)).toBe(true);
    expect(await audit("access_request.approve")).toContainEqual(expect.objectContaining({ user: "bob", access_request_id: first, requester: "alice" }));
    expect(await audit("access_grant.start")).toContainEqual(expect.objectContaining({ user: "alice", access_request_id: first }));
    expect(await audit("access_request.review")).toContainEqual(expect.objectContaining({ user: "alice", access_request_id: first, success: false, reason: "you cannot review your own request" }));

    // Everything done with that access, from the audit log by request ID.
    const byRequest = await cli(["admin", "--data-dir", cluster.proxy.dataDir, "audit", "ls", "--request", first, "--format", "json"], { home: homes.get("bob")! });
    const trail = JSON.parse(byRequest.stdout) as Record<string, unknown>[];
    expect(trail.map((e) => e.event)).toEqual(expect.arrayContaining(["access_request.create", "access_request.approve", "access_grant.start", "app.request"]));
    expect(trail.every((e) => e.access_request_id === first)).toBe(true);

    // A revoke acts on the next request.
    const revoked = await as("bob", ["request", "revoke", first, "--reason", "incident closed"]);
    expect(revoked.code, revoked.stderr).toBe(0);
    const afterRevoke = await az();
    expect(afterRevoke.code).not.toBe(0);
    expect(afterRevoke.stderr).toMatch(/no role allows Azure identity/);
    // What az shows names the request, who revoked it and when, and the command to ask again (issue 31, item 3).
    expect(afterRevoke.stderr).toMatch(new RegExp(`access request ${first} granted it and has ended: revoked by bob at \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z \\("incident closed"\\); to ask again: azgate request create --app azure-cli --azure-identity teleport-reader --for 1h --reason "\\.\\.\\."`));
    expect((await as("alice", ["status"])).stdout).not.toContain("Access grant");
    expect(await audit("access_grant.end")).toContainEqual(expect.objectContaining({ user: "alice", access_request_id: first, why: "revoked" }));

    // Reviewers heard each step through the webhook, signed: the Standard Webhooks library verifies every post.
    await hooks.waitFor(3);
    const heard = hooks.posts.map((p) => new Webhook(hookSecret).verify(p.body, p.headers as Record<string, string>) as { type: string; data: { request: { id: string }; actor: string } });
    expect(heard.filter((h) => h.data.request.id === first).map((h) => [h.type, h.data.actor])).toEqual([
      ["access_request.create", "alice"],
      ["access_request.approve", "bob"],
      ["access_request.revoke", "bob"],
    ]);
    expect(await audit("notification.sent")).toContainEqual(expect.objectContaining({ target: "reviewers", access_request_id: first, notification_event: "access_request.revoke" }));
    // The target's URL and secret are secrets: shown only when asked for.
    const shown = await cli(["admin", "--data-dir", cluster.proxy.dataDir, "get", "notification_target/reviewers", "--format", "json"], { home: homes.get("bob")! });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('"type": "webhook"');
    expect(shown.stdout).not.toContain(hookSecret);
    expect(shown.stdout).not.toContain(hooks.url("/hook"));
    expect((await cli(["admin", "--data-dir", cluster.proxy.dataDir, "get", "notification_target/reviewers", "--with-secrets", "--format", "json"], { home: homes.get("bob")! })).stdout).toContain(hookSecret);

    // A second request, approved while the same proxy azure runs: its next az command goes through, no new login.
    const second = idOf((await as("alice", ["request", "create", "--azure-identity", READER, "--for", "10m", "--reason", "incident 8", "--nowait"])).stdout);
    expect((await az()).code).not.toBe(0);
    expect((await as("bob", ["request", "approve", second])).code).toBe(0);
    const again = await az();
    expect(again.code, again.stderr).toBe(0);
    expect((await audit("app.request")).filter((e) => e.user === "alice" && e.access_request_id === second).length).toBeGreaterThan(0);
    // Deny wins over a grant: a role denying the identity, given while the grant is in force, refuses the next request.
    await cluster.admin.call("POST", "/v1/admin/resources", { text: `kind: role\nversion: v7\nmetadata: {name: no-reader}\nspec:\n  deny:\n    azure_identities: ["${READER}"]\n` });
    await cluster.admin.call("PATCH", "/v1/admin/users/alice", { roles: ["requester", "no-reader"] });
    const denied = await az();
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain('role "no-reader" denies Azure identity');
    await cluster.admin.call("PATCH", "/v1/admin/users/alice", { roles: ["requester"] });
    expect((await az()).code).toBe(0);
    expect((await as("bob", ["request", "revoke", second])).code).toBe(0);
  }, 240_000);

  it("a two-approval threshold with a filter: a reviewer the filter leaves out is refused, one approval leaves it pending, the second approves; one denial ends another", async () => {
    const create = async () => idOf((await as("mallory", ["request", "create", "--azure-identity", CONTRIB, "--for", "5m", "--nowait"])).stdout);
    const id = await create();
    // dave may review requests for this identity, but the threshold counts only senior reviewers' reviews.
    const junior = await as("dave", ["request", "approve", id]);
    expect(junior.code).not.toBe(0);
    expect(junior.stderr).toContain('your review would not count: no threshold of this request counts reviews like yours (contains(reviewer.roles, "senior-reviewer"))');
    expect(await audit("access_request.review")).toContainEqual(expect.objectContaining({ user: "dave", access_request_id: id, success: false }));
    expect((await as("bob", ["request", "approve", id])).stdout).toContain("Request state: PENDING");
    const twice = await as("bob", ["request", "approve", id]);
    expect(twice.code).not.toBe(0);
    expect(twice.stderr).toContain("you already reviewed");
    expect((await as("carol", ["request", "approve", id])).stdout).toContain("Request state: APPROVED");
    const denied = await create();
    expect((await as("carol", ["request", "deny", denied, "--reason", "not now"])).stdout).toContain("Request state: DENIED");
    expect((await as("bob", ["request", "approve", denied])).stderr).toContain("is DENIED; only a PENDING request can be reviewed");
    expect(await audit("access_request.deny")).toContainEqual(expect.objectContaining({ user: "carol", access_request_id: denied, reason: "not now" }));
    expect((await as("bob", ["request", "revoke", id])).code).toBe(0);
  }, 120_000);

  // The one access-request test that waits for the real clock (about 8 s): a real az, through a real local
  // proxy and proxy process, must see a grant's window end. Every other time-bound case moves a fake clock
  // (test/proxy-path.test.ts, test/access-request-service.test.ts, test/notifications.test.ts).
  it("a grant ends with its window: the next request after it is refused", async () => {
    const created = await as("alice", ["request", "create", "--azure-identity", READER, "--for", "8s", "--reason", "short", "--nowait"]);
    expect(created.code, created.stderr).toBe(0);
    const id = idOf(created.stdout);
    // An administrator approves it on the proxy host, as tctl request approve.
    const admin = (args: string[]) => cli(["admin", "--data-dir", cluster.proxy.dataDir, "request", ...args], { home: homes.get("bob")! });
    expect((await admin(["ls"])).stdout).toMatch(new RegExp(`^${id}\\s+alice\\s+teleport-reader\\s.*PENDING`, "m"));
    const approved = await admin(["approve", id, "--reason", "on call"]);
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stdout).toContain("Request state: APPROVED");
    const shown = await as("alice", ["request", "show", id, "--format", "json"]);
    const notAfter = Date.parse(JSON.parse(shown.stdout).spec.grant.not_after);
    const during = await az();
    if (Date.now() < notAfter) expect(during.code, during.stderr).toBe(0);
    await new Promise((r) => setTimeout(r, Math.max(0, notAfter - Date.now()) + 300));
    const after = await az();
    expect(after.code).not.toBe(0);
    expect(after.stderr).toContain(`access request ${id} granted it and has ended: expired at ${new Date(notAfter).toISOString()}, when its window ended; to ask again: azgate request create --app azure-cli --azure-identity teleport-reader`);
    expect(JSON.parse((await as("alice", ["request", "show", id, "--format", "json"])).stdout).spec.state).toBe("EXPIRED");
  }, 120_000);

  // A pending request's deadline, its expiry record and its notification are tested by moving a fake clock
  // (test/access-request-service.test.ts); the grant test above is the one that waits for real time.

  it("auto-review rules decide at creation, with no reviewer, deny winning; the audit log names the rule", async () => {
    const rules = [
      `kind: access_rule\nversion: v1\nmetadata: {name: audits}\nspec:\n  condition: 'request.azure_identity == "${READER}" && regexp.match(request.reason, "^audit: ")'\n  decision: APPROVED\n  reason: read-only audits need no reviewer\n`,
      `kind: access_rule\nversion: v1\nmetadata: {name: no-friday-audits}\nspec:\n  condition: 'regexp.match(request.reason, "friday")'\n  decision: DENIED\n`,
    ];
    for (const text of rules) await cluster.admin.call("POST", "/v1/admin/resources", { text });
    const approved = await as("alice", ["request", "create", "--azure-identity", "teleport-reader", "--for", "2m", "--reason", "audit: quarterly"]);
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stdout).toContain("Approval received: your access to teleport-reader is in force until");
    const id = idOf(approved.stdout);
    const shown = JSON.parse((await as("alice", ["request", "show", id, "--format", "json"])).stdout);
    expect(shown.spec.resolution).toMatchObject({ by: "rule/audits", reason: "read-only audits need no reviewer" });
    expect(await audit("access_request.approve")).toContainEqual(expect.objectContaining({ access_request_id: id, rule: "audits", automatic: true, user: "azgate" }));
    expect(await audit("access_grant.start")).toContainEqual(expect.objectContaining({ access_request_id: id, user: "alice" }));

    const denied = await as("alice", ["request", "create", "--azure-identity", "teleport-reader", "--for", "2m", "--reason", "audit: friday"]);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/was denied: auto-review rule "no-friday-audits"/);
    expect(await audit("access_request.deny")).toContainEqual(expect.objectContaining({ rule: "no-friday-audits", automatic: true }));
    // A request no rule matches waits for a reviewer, as before.
    const waits = await as("alice", ["request", "create", "--azure-identity", "teleport-reader", "--for", "2m", "--reason", "incident 9", "--nowait"]);
    expect(waits.stdout).toMatch(/^Status:\s+PENDING$/m);
    for (const name of ["audits", "no-friday-audits"]) expect((await cli(["admin", "--data-dir", cluster.proxy.dataDir, "rm", `access_rule/${name}`], { home: homes.get("bob")! })).code).toBe(0);
    await as("bob", ["request", "revoke", id]);
  }, 120_000);
});
