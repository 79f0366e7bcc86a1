/**
 * Access-request notifications against real receivers on loopback: a
 * webhook verified with the Standard Webhooks library from npm, Slack- and
 * Mattermost-style posts checked against Mattermost's documented schema, a
 * Teams Workflows post whose card Microsoft's own Adaptive Cards library
 * parses, and mail over STARTTLS with a password to smtp-server. The outbox
 * runs on the proxy's real state (file backend, audit log), opened afresh for
 * each test with a fake clock (helpers/fake-clock.ts) that the outbox, the
 * backend's expiry and the audit log all read: retries are tested by moving
 * it, never by waiting, and every date is relative to it, so the file gives
 * the same answers on any day it is run. The retries (at-least-once delivery)
 * run on the PostgreSQL backend too.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import path from "node:path";
import { Webhook } from "standardwebhooks";
import { Ajv } from "ajv";
// The package's ESM build imports files without extensions; its bundled build loads everywhere (its types are the package's).
// @ts-expect-error -- the bundle has no typings of its own
import * as ACBundle from "adaptivecards/dist/adaptivecards.js";
import type * as ACTypes from "adaptivecards";
const AC = ACBundle as typeof ACTypes;
import { openState, settingsFrom } from "../src/proxy/state.ts";
import { configSchema } from "../src/config/schema.ts";
import type { ProxyContext } from "../src/proxy/context.ts";
import { KEYS } from "../src/proxy/keys.ts";
import { parseResources } from "../src/resources/parse.ts";
import { withoutTargetSecrets, type NotificationTarget } from "../src/resources/notification-target.ts";
import type { AccessRequest } from "../src/resources/access-request.ts";
import { BACKOFF_MS, dispatchDue, enqueueNotifications, OUTBOX_KEEP_MS, type OutboxEntry } from "../src/proxy/notify/outbox.ts";
import { deliver } from "../src/proxy/notify/deliver.ts";
import { request as httpRequest } from "../src/runtime/index.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { tempDir } from "./helpers/azgate.ts";
import { startPostgres, type TestPostgres } from "./helpers/postgres.ts";
import { newWebhookSecret, startHttpReceiver, startSmtpReceiver, type HttpReceiver, type SmtpReceiver } from "./helpers/receivers.ts";

const READER = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ops/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader";
const PROD = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/prod/providers/Microsoft.ManagedIdentity/userAssignedIdentities/prod-contributor";
const CONTEXT = { cluster: "test-cluster", proxyUrl: "https://proxy.example.com" };
const HOSTILE = "<!channel> please [Approve now](https://evil.example/approve) @here *urgent*";

/** A request made now, by the test's clock. */
function request(over: Partial<AccessRequest["spec"]> = {}): AccessRequest {
  const T0 = clock.date();
  return {
    kind: "access_request",
    version: "v3",
    metadata: { name: crypto.randomUUID() },
    spec: { user: "alice", user_id: "id-alice", app: "azure-cli", azure_identity: READER, roles: [], reason: "INC-42 restart the app", start: T0.toISOString(), duration_ms: 3_600_000, state: "PENDING", reviews: [], thresholds: { approve: 1, deny: 1 }, suggested_reviewers: ["bob"], created: T0.toISOString(), review_deadline: new Date(T0.getTime() + 3_600_000).toISOString(), ...over },
  };
}

let ctx: ProxyContext;
let close: () => Promise<void>;
/** The clock of this test's state: the outbox, the backend's expiry and the audit log read it. */
let clock: FakeClock;
let hooks: HttpReceiver;
let smtp: SmtpReceiver;
const secret = newWebhookSecret();

async function putTargets(yaml: string) {
  for (const r of parseResources(yaml, "targets.yaml").resources) await ctx.backend.put(KEYS.notificationTarget(r.metadata.name), r);
}
async function clearTargets() {
  for (const i of await ctx.backend.list(KEYS.notificationTargets)) await ctx.backend.delete(i.key);
}
// The receivers run on loopback: as a proxy configured with notifications.allow_private_addresses.
const deps = (allowPrivateAddresses = true) => ({ backend: ctx.backend, audit: ctx.audit, clock: ctx.clock, context: async () => CONTEXT, allowPrivateAddresses });
const byPath = (p: string) => hooks.posts.filter((x) => x.path === p);
/** One target of each chat kind, each posting to its own path on the receiver. */
const chatTargets = () =>
  (
    [
      ["slack", "slack", "/slack"],
      ["mm", "mattermost", "/mm"],
      ["teams", "teams_workflow", "/teams"],
    ] as const
  )
    .map(([name, type, path]) => `kind: notification_target\nversion: v1\nmetadata: { name: ${name} }\nspec: { type: ${type}, url: "${hooks.url(path)}" }`)
    .join("\n---\n");

beforeAll(async () => {
  hooks = await startHttpReceiver();
  smtp = await startSmtpReceiver(tempDir("azgate-smtp-"));
});
afterAll(async () => {
  await hooks?.close();
  await smtp?.close();
  await pgServer?.stop();
});
let pgServer: TestPostgres | undefined;
/** This test's state on PostgreSQL instead (outbox, expiry and audit log there), on the same fake clock. */
async function onPostgres() {
  await close?.();
  pgServer ??= await startPostgres();
  const storage = configSchema.parse({ storage: { type: "postgres", conn_string: await pgServer.database(`notify_${crypto.randomUUID().slice(0, 8)}`) } }).storage;
  ({ ctx, close } = await openState(tempDir("azgate-notify-pg-"), { clusterName: "test-cluster", settings: settingsFrom(configSchema.parse({})), purpose: "notification tests", storage, clock }));
}
// Each test: fresh state, and a fake clock that starts at the real now (receivers such as Standard Webhooks
// check a message's timestamp against the real time) and moves only when the test moves it.
beforeEach(async () => {
  clock = new FakeClock();
  ({ ctx, close } = await openState(tempDir("azgate-notify-"), { clusterName: "test-cluster", settings: settingsFrom(configSchema.parse({})), purpose: "notification tests", clock }));
});
afterEach(async () => {
  await close?.();
});

describe("notification targets", () => {
  it("a webhook carries the request, signed per Standard Webhooks: the npm library verifies it, and refuses a tampered body or another secret", async () => {
    await clearTargets();
    await putTargets(`kind: notification_target\nversion: v1\nmetadata: { name: hook }\nspec: { type: webhook, url: "${hooks.url("/hook")}", signing_secret: "${secret}" }\n`);
    const r = request();
    // Standard Webhooks receivers refuse a timestamp more than five minutes off: this one runs at the real now.
    expect(await enqueueNotifications(ctx, { event: "access_request.create", request: r, actor: "alice" })).toBe(1);
    expect(await dispatchDue(deps())).toBe(1);
    const [post] = byPath("/hook");
    const verified = new Webhook(secret).verify(post.body, post.headers as Record<string, string>) as { type: string; data: { request: { id: string; user: string; azure_identity: string; reason: string }; proxy: string } };
    expect(verified.type).toBe("access_request.create");
    expect(verified.data.request).toMatchObject({ id: r.metadata.name, user: "alice", azure_identity: READER, reason: "INC-42 restart the app" });
    expect(verified.data.proxy).toBe(CONTEXT.proxyUrl);
    // The link opens the request's page; nothing in a message acts when opened.
    expect((verified.data as unknown as { links: { request: string } }).links.request).toBe(`${CONTEXT.proxyUrl}/web/requests/${r.metadata.name}`);
    expect(post.headers["webhook-id"]).toMatch(/^msg_/);
    expect(() => new Webhook(secret).verify(post.body.replace("alice", "mallory"), post.headers as Record<string, string>)).toThrow();
    expect(() => new Webhook(newWebhookSecret()).verify(post.body, post.headers as Record<string, string>)).toThrow();
    expect(await ctx.backend.list(KEYS.notifications)).toEqual([]);
    const [sent] = await ctx.audit.search({ event: "notification.sent", request: r.metadata.name });
    expect(sent).toMatchObject({ target: "hook", notification_event: "access_request.create", attempts: 1, success: true });
  });

  it("a webhook target's secret rotates with an overlap: until previous_signing_secret.until both signatures are sent and a receiver with either secret verifies; after it only the new one", async () => {
    await clearTargets();
    const previous = newWebhookSecret();
    const until = new Date(clock.now() + 60_000).toISOString();
    await putTargets(`kind: notification_target\nversion: v1\nmetadata: { name: hook }\nspec: { type: webhook, url: "${hooks.url("/rotating")}", signing_secret: "${secret}", previous_signing_secret: { secret: "${previous}", until: "${until}" } }\n`);
    const send = async () => {
      expect(await enqueueNotifications(ctx, { event: "access_request.create", request: request(), actor: "alice" })).toBe(1);
      expect(await dispatchDue(deps())).toBe(1);
      return byPath("/rotating").at(-1)!;
    };
    const during = await send();
    expect(String(during.headers["webhook-signature"]).split(" ")).toHaveLength(2);
    for (const s of [secret, previous]) expect(() => new Webhook(s).verify(during.body, during.headers as Record<string, string>)).not.toThrow();
    // Past `until` (by the proxy's clock; still within the receivers' five minutes of the real time): the new secret alone.
    await clock.tick(61_000);
    const after = await send();
    expect(String(after.headers["webhook-signature"]).split(" ")).toHaveLength(1);
    expect(() => new Webhook(secret).verify(after.body, after.headers as Record<string, string>)).not.toThrow();
    expect(() => new Webhook(previous).verify(after.body, after.headers as Record<string, string>)).toThrow();
  });

  it("Slack and Mattermost posts are Mattermost's documented incoming-webhook shape; Teams gets one Adaptive Card that Microsoft's library parses cleanly", async () => {
    await clearTargets();
    await putTargets(chatTargets());
    const T0 = clock.date();
    const r = request({ state: "APPROVED", reviews: [{ author: "bob", state: "APPROVED", reason: "ok", created: T0.toISOString() }], grant: { not_before: T0.toISOString(), not_after: new Date(T0.getTime() + 3_600_000).toISOString() } });
    expect(await enqueueNotifications(ctx, { event: "access_request.approve", request: r, actor: "bob", reason: "ok" })).toBe(3);
    expect(await dispatchDue(deps())).toBe(3);
    const validate = new Ajv({ allErrors: true }).compile(JSON.parse(readFileSync(path.resolve("test/fixtures/notifications/mattermost-incoming-webhook.schema.json"), "utf8")));
    for (const p of ["/slack", "/mm"]) {
      const body = JSON.parse(byPath(p)[0].body);
      expect(validate(body), JSON.stringify(validate.errors)).toBe(true);
      expect(body.attachments[0].fields).toContainEqual({ title: "Request ID", value: expect.stringContaining(r.metadata.name.slice(0, 8)), short: true });
      expect(body.attachments[0].text).toContain(`azgate apps login azure-cli --azure-identity reader`);
      expect(body.attachments[0].title_link).toBe(`${CONTEXT.proxyUrl}/web/requests/${r.metadata.name}`);
    }
    const teams = JSON.parse(byPath("/teams")[0].body);
    expect(teams).toMatchObject({ type: "message", attachments: [{ contentType: "application/vnd.microsoft.card.adaptive", contentUrl: null }] });
    const card = new AC.AdaptiveCard();
    const parsing = new AC.SerializationContext();
    card.parse(teams.attachments[0].content, parsing);
    expect(Array.from({ length: parsing.eventCount }, (_, i) => parsing.getEventAt(i).message)).toEqual([]);
    expect(card.getItemCount()).toBeGreaterThanOrEqual(3);
    const texts = JSON.stringify(teams.attachments[0].content.body);
    expect(texts).toContain("approved");
    expect(texts).toContain("azgate apps login azure-cli --azure-identity reader");
    expect(teams.attachments[0].content.actions).toEqual([{ type: "Action.OpenUrl", title: "Open the request", url: `${CONTEXT.proxyUrl}/web/requests/${r.metadata.name}` }]);
  });

  it("a reason written to reach reviewers' chat cannot mention @channel or show a link: every text a user wrote is escaped for the target", async () => {
    hooks.posts.length = 0;
    await clearTargets();
    await putTargets(chatTargets());
    await enqueueNotifications(ctx, { event: "access_request.create", request: request({ reason: HOSTILE }), actor: "alice" });
    expect(await dispatchDue(deps())).toBe(3);
    const slack = JSON.stringify(JSON.parse(byPath("/slack")[0].body).attachments[0].fields);
    expect(slack).not.toContain("<!channel>");
    expect(slack).toContain("&lt;!channel&gt;");
    for (const p of ["/mm", "/teams"]) {
      const text = byPath(p)[0].body;
      expect(text).not.toContain("[Approve now](https://evil.example");
      expect(text).not.toContain(" @here");
      expect(text).toContain(String.raw`\\[Approve now\\]\\(https\\://evil\\.example/approve\\)`);
    }
  });

  it("an app name written to forge content (blank lines, a link, mentions) is escaped in every target's commands block, and cannot start a line of its own in mail", async () => {
    hooks.posts.length = 0;
    await clearTargets();
    await ctx.backend.put(KEYS.user("alice"), { kind: "user", version: "v2", metadata: { name: "alice" }, spec: { roles: [], traits: { email: ["alice@example.com"] } } });
    await putTargets(chatTargets() + `\n---\nkind: notification_target\nversion: v1\nmetadata: { name: mail }\nspec:\n  type: smtp\n  smtp: { host: 127.0.0.1, port: ${smtp.port}, username: ${smtp.user}, password: ${smtp.password}, ca_file: ${smtp.caFile}, from: azgate@example.com, to: [security@example.com] }\n`);
    // A request stored before app names were checked (or through another door): the messages must hold anyway.
    const app = "x\n\n" + HOSTILE + "\n\nOpen it: https://evil.example/approve\n  azgate request approve all";
    const T0 = clock.date();
    const r = request({ app, state: "APPROVED", reviews: [{ author: "bob", state: "APPROVED", reason: "ok", created: T0.toISOString() }], grant: { not_before: T0.toISOString(), not_after: new Date(T0.getTime() + 3_600_000).toISOString() } });
    smtp.mails.splice(0);
    expect(await enqueueNotifications(ctx, { event: "access_request.approve", request: r, actor: "bob" })).toBe(4);
    expect(await dispatchDue(deps())).toBe(4);

    const slack = JSON.parse(byPath("/slack")[0].body).attachments[0].text as string;
    const mm = JSON.parse(byPath("/mm")[0].body).attachments[0].text as string;
    for (const [name, commands] of [["slack", slack], ["mattermost", mm]]) {
      // Each command is one line, one code span: nothing in it becomes markdown or a line of its own.
      expect(commands.split("\n"), name).toHaveLength(2);
      for (const line of commands.split("\n")) expect(line, name).toMatch(/^`[^`\n]*`$/);
    }
    expect(slack).not.toContain("<!channel>");
    expect(slack).toContain("&lt;!channel&gt;");
    const teams = JSON.parse(byPath("/teams")[0].body).attachments[0].content.body as { type: string; text?: string; fontType?: string }[];
    const commands = teams.filter((b) => b.fontType === "Monospace").map((b) => b.text!);
    expect(commands).toHaveLength(2);
    for (const cmd of commands) {
      expect(cmd).not.toMatch(/\n/);
      expect(cmd).not.toContain("[Approve now](https://evil.example");
      expect(cmd).not.toContain(" @here");
    }
    expect(commands[0]).toContain(String.raw`\[Approve now\]\(https\://evil\.example/approve\)`);

    const [m] = await smtp.waitFor(1);
    smtp.mails.splice(0);
    const lines = m.text!.split("\n");
    // Only azgate's own lines start at the margin: the headline, the facts, "Open it", "Or from a terminal", and the commands two spaces in.
    expect(lines.filter((l) => l.startsWith("Open it:"))).toEqual([`Open it: ${CONTEXT.proxyUrl}/web/requests/${r.metadata.name}`]);
    expect(lines.filter((l) => /^\s*azgate request approve/.test(l))).toEqual([]);
    expect(m.subject).not.toMatch(/[\r\n]/);
    expect(lines[0]).toBe(m.subject!.replace(/^\[azgate\] /, ""));
  });

  it("mail goes over STARTTLS with a password to the target's list, the requester and the suggested reviewers who have an e-mail", async () => {
    await clearTargets();
    for (const [name, email] of [["alice", "alice@example.com"], ["bob", "bob@example.com"]]) {
      await ctx.backend.put(KEYS.user(name), { kind: "user", version: "v2", metadata: { name }, spec: { roles: [], traits: { email: [email] } } });
    }
    await putTargets(`kind: notification_target\nversion: v1\nmetadata: { name: mail }\nspec:\n  type: smtp\n  smtp: { host: 127.0.0.1, port: ${smtp.port}, security: starttls, username: ${smtp.user}, password: ${smtp.password}, ca_file: ${smtp.caFile}, from: azgate@example.com, to: [security@example.com] }\n`);
    const r = request({ ticket: "INC-42" });
    expect(await enqueueNotifications(ctx, { event: "access_request.create", request: r, actor: "alice" })).toBe(1);
    expect(await dispatchDue(deps())).toBe(1);
    const [m] = await smtp.waitFor(1);
    expect(m.secure).toBe(true);
    expect(m.envelopeTo.sort()).toEqual(["alice@example.com", "bob@example.com", "security@example.com"]);
    expect(m.subject).toBe("[azgate] alice requests reader on azure-cli for 1h");
    expect(m.text).toContain(`Request ID:`);
    expect(m.text).toContain(r.metadata.name);
    expect(m.text).toContain("Ticket:");
    expect(m.text).toContain(`azgate request approve ${r.metadata.name} --reason "..."`);
    expect(m.text).toContain(`Open it: ${CONTEXT.proxyUrl}/web/requests/${r.metadata.name}`);
  });

  it("a wrong SMTP password fails the send, audited with the server's reply code (not its words) and never the password; the entry waits for its retry", async () => {
    await clearTargets();
    await putTargets(`kind: notification_target\nversion: v1\nmetadata: { name: mail }\nspec:\n  type: smtp\n  smtp: { host: 127.0.0.1, port: ${smtp.port}, username: ${smtp.user}, password: not-the-password, ca_file: ${smtp.caFile}, from: azgate@example.com, to: [security@example.com] }\n`);
    const r = request();
    const T0 = clock.now();
    await enqueueNotifications(ctx, { event: "access_request.create", request: r });
    expect(await dispatchDue(deps())).toBe(0);
    const [failed] = await ctx.audit.search({ event: "notification.failed", request: r.metadata.name });
    expect(failed).toMatchObject({ target: "mail", success: false, receiver_status: 535, retry_at: new Date(T0 + BACKOFF_MS[0]).toISOString() });
    expect(failed.error).toBe("the SMTP server 127.0.0.1 refused the mail: EAUTH, SMTP 535");
    expect(JSON.stringify(failed)).not.toContain("not-the-password");
    for (const i of await ctx.backend.list(KEYS.notifications)) await ctx.backend.delete(i.key);
  });

  it.each(["file", "PostgreSQL"])("%s backend: retries a receiver that is down with back-off, with the same webhook-id; gives up after the last, audited each time", async (backend) => {
    if (backend === "PostgreSQL") await onPostgres();
    await clearTargets();
    hooks.posts.length = 0;
    await putTargets(`kind: notification_target\nversion: v1\nmetadata: { name: hook }\nspec: { type: webhook, url: "${hooks.url("/hook")}", signing_secret: "${secret}" }\n`);
    const r = request();
    await enqueueNotifications(ctx, { event: "access_request.create", request: r });
    hooks.failNext(503, 500);
    expect(await dispatchDue(deps())).toBe(0);
    // Not due again before its back-off (the clock moved to 1 ms short of it)...
    clock.advance(BACKOFF_MS[0] - 1);
    expect(await dispatchDue(deps())).toBe(0);
    clock.advance(1);
    expect(await dispatchDue(deps())).toBe(0);
    clock.advance(BACKOFF_MS[1]);
    expect(await dispatchDue(deps())).toBe(1);
    const failures = await ctx.audit.search({ event: "notification.failed", request: r.metadata.name });
    // The status only: what the receiver said is its text, not the audit log's.
    expect(failures.map((f) => [f.attempts, f.error, f.receiver_status])).toEqual([
      [1, "the webhook receiver answered HTTP 503", 503],
      [2, "the webhook receiver answered HTTP 500", 500],
    ]);
    expect(JSON.stringify(failures)).not.toContain("receiver is down");
    const [sent] = await ctx.audit.search({ event: "notification.sent", request: r.metadata.name });
    expect(sent.attempts).toBe(3);
    const ids = new Set(failures.map((f) => f.notification_id));
    expect(ids).toEqual(new Set([sent.notification_id]));
    expect(byPath("/hook")[0].headers["webhook-id"]).toBe(sent.notification_id);

    // A receiver that never comes back: after the last back-off the entry is given up, and that is audited.
    const dead = request();
    await enqueueNotifications(ctx, { event: "access_request.create", request: dead });
    hooks.failNext(...Array(BACKOFF_MS.length + 1).fill(502));
    for (const wait of [0, ...BACKOFF_MS]) {
      clock.advance(wait);
      expect(await dispatchDue(deps())).toBe(0);
    }
    const last = (await ctx.audit.search({ event: "notification.failed", request: dead.metadata.name })).at(-1)!;
    expect(last).toMatchObject({ attempts: BACKOFF_MS.length + 1, gave_up: true });
    expect(await ctx.backend.list(KEYS.notifications)).toEqual([]);
  });

  it("an unreachable receiver is a failure that names no URL (the URL is the target's secret)", async () => {
    await clearTargets();
    const gone = await startHttpReceiver();
    const url = gone.url("/services/T000/B000/XXXXSECRETXXXX");
    await gone.close();
    await putTargets(`kind: notification_target\nversion: v1\nmetadata: { name: slack }\nspec: { type: slack, url: "${url}" }\n`);
    const r = request();
    await enqueueNotifications(ctx, { event: "access_request.create", request: r });
    expect(await dispatchDue(deps())).toBe(0);
    const [failed] = await ctx.audit.search({ event: "notification.failed", request: r.metadata.name });
    expect(failed.error).toBe("could not reach the slack receiver: ECONNREFUSED");
    expect(JSON.stringify(failed)).not.toContain("XXXXSECRETXXXX");
    for (const i of await ctx.backend.list(KEYS.notifications)) await ctx.backend.delete(i.key);
  });

  it("the outbox lives by the backend's clock, not the machine's: an entry is due at once and swept OUTBOX_KEEP_MS later, however far that clock is from today", async () => {
    for (const offset of [-400 * 86_400_000, 400 * 86_400_000]) {
      // A state whose one clock is 400 days behind, then ahead, of the machine's.
      const far = new FakeClock(Date.now() + offset);
      const state = await openState(tempDir("azgate-notify-far-"), { clusterName: "test-cluster", settings: settingsFrom(configSchema.parse({})), purpose: "notification tests", clock: far });
      try {
        hooks.posts.length = 0;
        for (const r of parseResources(`kind: notification_target\nversion: v1\nmetadata: { name: chat }\nspec: { type: slack, url: "${hooks.url("/far")}" }\n`, "t.yaml").resources) await state.ctx.backend.put(KEYS.notificationTarget(r.metadata.name), r);
        const farDeps = { backend: state.ctx.backend, audit: state.ctx.audit, clock: far, context: async () => CONTEXT, allowPrivateAddresses: true };
        const made = (): AccessRequest => ({ ...request(), spec: { ...request().spec, created: far.date().toISOString() } });
        expect(await enqueueNotifications(state.ctx, { event: "access_request.create", request: made() })).toBe(1);
        expect(await dispatchDue(farDeps)).toBe(1);
        expect(byPath("/far")).toHaveLength(1);
        // One the receiver refuses stays for its retries, and is gone once OUTBOX_KEEP_MS have passed on that clock.
        hooks.failNext(503);
        await enqueueNotifications(state.ctx, { event: "access_request.create", request: made() });
        expect(await dispatchDue(farDeps)).toBe(0);
        far.advance(OUTBOX_KEEP_MS - 1);
        expect(await state.ctx.backend.list(KEYS.notifications)).toHaveLength(1);
        far.advance(1);
        expect(await state.ctx.backend.list(KEYS.notifications)).toEqual([]);
        // The audit log is dated by the same clock.
        const [sent] = await state.ctx.audit.search({ event: "notification.sent" });
        expect(Math.abs(Date.parse(sent.time) - (Date.now() + offset))).toBeLessThan(OUTBOX_KEEP_MS + 60_000);
      } finally {
        await state.close();
      }
    }
  });

  it("a target hears only its events and the requests its filter matches", async () => {
    await clearTargets();
    await putTargets(`kind: notification_target\nversion: v1\nmetadata: { name: prod }\nspec: { type: slack, url: "${hooks.url("/prod")}", events: [access_request.create], filter: { azure_identities: ["*/prod-*"], apps: [azure-cli] } }\n`);
    expect(await enqueueNotifications(ctx, { event: "access_request.create", request: request() })).toBe(0);
    expect(await enqueueNotifications(ctx, { event: "access_request.approve", request: request({ azure_identity: PROD }) })).toBe(0);
    expect(await enqueueNotifications(ctx, { event: "access_request.create", request: request({ azure_identity: PROD, app: "other" }) })).toBe(0);
    expect(await enqueueNotifications(ctx, { event: "access_request.create", request: request({ azure_identity: PROD }) })).toBe(1);
    const [entry] = await ctx.backend.list<OutboxEntry>(KEYS.notifications);
    expect(entry.value).toMatchObject({ target: "prod", attempts: 0, notice: { event: "access_request.create" } });
    await ctx.backend.delete(entry.key);
  });
});

describe("where notifications may go (notifications.allow_private_addresses)", () => {
  const target = (spec: string) => parseResources(`kind: notification_target\nversion: v1\nmetadata: { name: t }\nspec: ${spec}\n`, "t.yaml").resources[0] as NotificationTarget;
  const hook = `{ type: webhook, url: "URL", signing_secret: "${secret}" }`;
  const send = (t: NotificationTarget, resolve?: (host: string) => Promise<{ address: string; family: number }[]>) =>
    deliver(t, { id: "msg_1", notice: { event: "access_request.create", request: request() }, to: ["a@example.com"] }, CONTEXT, clock.date(), { resolve });

  it("by default a receiver on loopback is refused before anything is sent, audited (target_refused), the entry kept for its retries", async () => {
    hooks.posts.length = 0;
    smtp.mails.splice(0);
    await clearTargets();
    await putTargets(chatTargets() + `\n---\nkind: notification_target\nversion: v1\nmetadata: { name: mail }\nspec:\n  type: smtp\n  smtp: { host: 127.0.0.1, port: ${smtp.port}, username: ${smtp.user}, password: ${smtp.password}, ca_file: ${smtp.caFile}, from: azgate@example.com, to: [security@example.com] }\n`);
    const r = request();
    expect(await enqueueNotifications(ctx, { event: "access_request.create", request: r, actor: "alice" })).toBe(4);
    expect(await dispatchDue(deps(false))).toBe(0);
    expect(hooks.posts).toEqual([]);
    expect(smtp.mails).toEqual([]);
    const failed = await ctx.audit.search({ event: "notification.failed", request: r.metadata.name });
    expect(failed.map((f) => f.target).sort()).toEqual(["mail", "mm", "slack", "teams"]);
    for (const f of failed) {
      expect(f).toMatchObject({ success: false, error_code: "target_refused", retry_at: expect.any(String) });
      expect(f.error).toMatch(/'s host 127\.0\.0\.1 resolves to 127\.0\.0\.1 \(loopback\); the proxy sends notifications there only with notifications\.allow_private_addresses: true/);
    }
    expect(await ctx.backend.list(KEYS.notifications)).toHaveLength(4);
    for (const i of await ctx.backend.list(KEYS.notifications)) await ctx.backend.delete(i.key);
  });

  it("every address a name resolves to is checked: link-local (IMDS), private, CGNAT, IPv6 loopback and ULA, IPv4-mapped; for URLs and SMTP hosts", async () => {
    const resolvesTo = (...addresses: string[]) => async () => addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
    const refused = [
      [target(hook.replace("URL", "https://hooks.example.com/h")), resolvesTo("93.184.216.34", "10.0.0.5"), "10.0.0.5 (private)"],
      [target(hook.replace("URL", "https://metadata.example/h")), resolvesTo("169.254.169.254"), "169.254.169.254 (link-local (IMDS))"],
      [target(hook.replace("URL", "https://cgnat.example/h")), resolvesTo("100.64.1.1"), "100.64.1.1 (carrier-grade NAT)"],
      [target(hook.replace("URL", "https://v6.example/h")), resolvesTo("::1"), "::1 (loopback)"],
      [target(hook.replace("URL", "https://ula.example/h")), resolvesTo("fd12::1"), "fd12::1 (private (ULA))"],
      [target(hook.replace("URL", "https://mapped.example/h")), resolvesTo("::ffff:192.168.1.1"), "::ffff:192.168.1.1 (private)"],
      [target(hook.replace("URL", "http://169.254.169.254/metadata")), undefined, "169.254.169.254 (link-local (IMDS))"],
      [target(hook.replace("URL", "http://[::1]:8080/h")), undefined, "::1 (loopback)"],
      [target(hook.replace("URL", "http://localhost:8080/h")), undefined, "(loopback)"],
      [target(`{ type: smtp, smtp: { host: smtp.internal, from: a@example.com } }`), resolvesTo("192.168.1.10"), "192.168.1.10 (private)"],
    ] as const;
    for (const [t, resolve, why] of refused) {
      await expect(send(t, resolve), t.spec.url ?? t.spec.smtp?.host).rejects.toThrow(why);
    }
  });

  it("the checked address is the one connected to: the name serves for Host only", async () => {
    hooks.posts.length = 0;
    const port = new URL(hooks.url()).port;
    const res = await httpRequest(`http://receiver.invalid:${port}/pinned`, { method: "POST", body: "{}", address: { address: "127.0.0.1", family: 4 } });
    expect(res.status).toBe(200);
    expect(hooks.posts).toEqual([expect.objectContaining({ path: "/pinned", headers: expect.objectContaining({ host: `receiver.invalid:${port}` }) })]);
  });
});

describe("the notification_target resource", () => {
  const load = (spec: string) => parseResources(`kind: notification_target\nversion: v1\nmetadata: { name: t }\nspec: ${spec}\n`, "t.yaml");
  it("refuses what cannot work, naming the field", () => {
    expect(() => load(`{ type: webhook, url: "https://x.example/h" }`)).toThrow(/spec\.signing_secret: signing_secret is required for a webhook target/);
    expect(() => load(`{ type: webhook, url: "https://x.example/h", signing_secret: "hunter2" }`)).toThrow(/signing_secret must be whsec_/);
    expect(() => load(`{ type: slack }`)).toThrow(/spec\.url: url is required for a slack target/);
    expect(() => load(`{ type: slack, url: "file:///etc/passwd" }`)).toThrow(/url must be http or https/);
    expect(() => load(`{ type: pagerduty, url: "https://x.example" }`)).toThrow(/type must be one of webhook, slack, mattermost, teams_workflow, smtp/);
    expect(() => load(`{ type: slack, url: "https://x.example", events: [access_request.created] }`)).toThrow(/events: each must be one of/);
    expect(() => load(`{ type: smtp, smtp: { host: mail, from: "not an address" } }`)).toThrow(/spec\.smtp\.from: must be an e-mail address/);
    expect(() => load(`{ type: slack, url: "https://x.example", colour: red }`)).toThrow(/colour/);
    const prev = (p: string) => load(`{ type: webhook, url: "https://x.example/h", signing_secret: "${secret}", previous_signing_secret: ${p} }`);
    expect(() => prev(`{ secret: "${secret}", until: "2030-01-01T00:00:00Z" }`)).toThrow(/previous_signing_secret is the secret being replaced: it must differ from signing_secret/);
    expect(() => prev(`{ secret: "${newWebhookSecret()}", until: "tomorrow" }`)).toThrow(/previous_signing_secret.until must be a time/);
    expect(() => prev(`{ secret: "${newWebhookSecret()}" }`)).toThrow(/until/);
    expect(() => prev(`{ secret: "hunter2", until: "2030-01-01T00:00:00Z" }`)).toThrow(/previous_signing_secret.secret must be whsec_/);
    expect(() => load(`{ type: slack, url: "https://x.example", previous_signing_secret: { secret: "${secret}", until: "2030-01-01T00:00:00Z" } }`)).toThrow(/previous_signing_secret is only for a webhook target/);
  });

  it("hides the URL, signing secret and SMTP password unless asked with secrets", () => {
    const [t] = load(`{ type: webhook, url: "https://x.example/h", signing_secret: "${secret}", previous_signing_secret: { secret: "${newWebhookSecret()}", until: "2030-01-01T00:00:00Z" } }`).resources as NotificationTarget[];
    expect(withoutTargetSecrets(t).spec).toEqual({ type: "webhook" });
    const [m] = load(`{ type: smtp, smtp: { host: mail, from: a@example.com, password: p } }`).resources as NotificationTarget[];
    expect(withoutTargetSecrets(m).spec.smtp).toEqual({ host: "mail", from: "a@example.com", to: [] });
  });
});
