/**
 * What a notification says, and the body each kind of target takes. Pure.
 *
 * Requesters write the reason and ticket, and reviewers read them in chat:
 * every text a user wrote is escaped for the target's markup, so a reason
 * cannot mention @channel, or show a link that looks like an approve button.
 * Messages carry the commands to act; they never carry anything that acts
 * when opened (chat apps open links to preview them). The commands hold user
 * text too (the app and identity asked for): each stays one line, and is
 * escaped for the target like the rest (a code span in Slack and Mattermost,
 * markdown in a Teams card).
 */
import type { AccessRequest } from "../../resources/access-request.ts";
import type { NotificationEvent } from "../../resources/notification-target.ts";
import { identityName } from "../../azure/resource-id.ts";
import { formatDuration } from "../../util/duration.ts";

export interface Notice {
  event: NotificationEvent;
  request: AccessRequest;
  /** Who did it (reviewer, requester); absent for what time did. */
  actor?: string;
  /** The actor's reason (a review's, a revoke's). */
  reason?: string;
}

export interface Context {
  cluster: string;
  /** The proxy's public URL: where to log in to act. */
  proxyUrl: string;
}

interface Text {
  headline: string;
  facts: [string, string][];
  commands: string[];
  /** Ours, never escaped as user text is: it is built from the proxy's URL and a UUID. */
  link: string;
}

/** Line breaks and other control characters as spaces: text that must stay on its line (a headline, a command) cannot start one of its own. */
export const oneLine = (s: string) => s.replace(/[\x00-\x1f\x7f\u2028\u2029]+/g, " ");

/** `userText` escapes the user's words inside commands for the target (they are one line whatever it does). */
function describe(n: Notice, c: Context, userText: (s: string) => string = (s) => s): Text {
  const r = n.request.spec;
  const id = n.request.metadata.name;
  const who = n.actor ?? "azgate";
  const identity = identityName(r.azure_identity);
  const what = `${r.user}'s request for ${identity} on ${r.app}`;
  const approvals = r.reviews.filter((x) => x.state === "APPROVED").length;
  const headline = {
    "access_request.create": `${r.user} requests ${identity} on ${r.app} for ${formatDuration(r.duration_ms)}`,
    "access_request.review": `${who} ${r.reviews.at(-1)?.state === "DENIED" ? "denied" : "approved"} ${what} (${approvals} of ${r.thresholds.approve} approvals)`,
    "access_request.approve": `${what} is approved${r.grant ? `: access from ${r.grant.not_before} until ${r.grant.not_after}` : ""}`,
    "access_request.deny": `${what} is denied by ${who}`,
    "access_request.cancel": `${what} is cancelled by ${who}`,
    "access_request.expire": `${what} expired: nobody reviewed it in time`,
    "access_request.revoke": `${what} is revoked by ${who}: access ended`,
    "access_grant.end": `${r.user}'s access to ${identity} on ${r.app} has ended (its window is over)`,
  }[n.event];
  const facts: [string, string][] = [
    ["Request ID", id],
    ["Status", r.state],
    ["User", r.user],
    ["App", r.app],
    ["Azure identity", r.azure_identity],
    ["Duration", formatDuration(r.duration_ms)],
    ["Reason", r.reason || "(none given)"],
    ...(r.ticket ? ([["Ticket", r.ticket]] as [string, string][]) : []),
    ...(n.reason ? ([[n.event === "access_request.revoke" ? "Revoke reason" : "Review reason", n.reason]] as [string, string][]) : []),
    ...(r.suggested_reviewers.length ? ([["Suggested reviewers", r.suggested_reviewers.join(", ")]] as [string, string][]) : []),
    ["Cluster", c.cluster],
  ];
  const reviewable = n.event === "access_request.create" || (n.event === "access_request.review" && r.state === "PENDING");
  const user = (s: string) => userText(oneLine(s));
  const commands = reviewable
    ? [`azgate request show ${id}`, `azgate request approve ${id} --reason "..."`, `azgate request deny ${id} --reason "..."`]
    : n.event === "access_request.approve"
      ? [`azgate apps login ${user(r.app)} --azure-identity ${user(identity)}`, `azgate request revoke ${id}`]
      : [`azgate request show ${id}`];
  return { headline: oneLine(headline), facts, commands, link: requestLink(n, c) };
}

/** The request's page in the web UI. Opening it shows the request (after sign-in); acting on it takes a form post there. */
export function requestLink(n: Notice, c: Context): string {
  return `${c.proxyUrl}/web/requests/${n.request.metadata.name}`;
}

/** Standard Webhooks' recommended shape: type, timestamp, data. */
export function webhookBody(n: Notice, c: Context, now: Date): string {
  const { headline } = describe(n, c);
  return JSON.stringify({
    type: n.event,
    timestamp: now.toISOString(),
    data: { cluster: c.cluster, proxy: c.proxyUrl, summary: headline, actor: n.actor ?? null, reason: n.reason ?? null, request: { id: n.request.metadata.name, ...n.request.spec }, links: { request: requestLink(n, c) } },
  });
}

const COLOR: Partial<Record<NotificationEvent, string>> = { "access_request.create": "#2f6fdb", "access_request.approve": "#2eb67d", "access_request.deny": "#e01e5a", "access_request.revoke": "#e01e5a" };

/** Slack's mrkdwn: &, < and > are its only control characters (<!channel>, <url|label>). */
const slackEscape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
/** Markdown (Mattermost, Teams' Adaptive Cards): backslash-escape what makes links, emphasis and mentions. */
const markdownEscape = (s: string) => s.replace(/[\\`*_{}[\]()#+\-.!|<>~@:]/g, "\\$&");
/** The same inside one line that starts with azgate's own words: what makes blocks (#, -, + at a line's start) cannot act there, and names keep their dashes. */
const inlineMarkdownEscape = (s: string) => s.replace(/[\\`*_{}[\]().!|<>~@:]/g, "\\$&");

/** Slack's and Mattermost's incoming webhooks: text plus one attachment (Mattermost takes Slack's attachments). */
export function chatBody(n: Notice, c: Context, flavour: "slack" | "mattermost"): string {
  const t = describe(n, c);
  const esc = flavour === "slack" ? slackEscape : markdownEscape;
  // A code span shows markdown as it is, but Slack reads <!channel> and <url|label> even there.
  const code = (cmd: string) => "`" + (flavour === "slack" ? slackEscape(cmd) : cmd).replace(/`/g, "'") + "`";
  return JSON.stringify({
    text: esc(t.headline),
    attachments: [
      {
        fallback: t.headline,
        color: COLOR[n.event] ?? "#888888",
        title: `Access request ${n.request.metadata.name}`,
        title_link: t.link,
        fields: t.facts.map(([title, value]) => ({ title, value: esc(value), short: value.length <= 40 })),
        text: t.commands.map(code).join("\n"),
        footer: `azgate · ${c.cluster}`,
      },
    ],
  });
}

/** A Teams Workflows "when a webhook request is received" post: one Adaptive Card (buttons do not work there, so none). */
export function teamsBody(n: Notice, c: Context): string {
  // A TextBlock renders markdown, monospace or not: the user's words in a command are escaped for inline markdown.
  const t = describe(n, c, inlineMarkdownEscape);
  return JSON.stringify({
    type: "message",
    attachments: [
      {
        contentType: "application/vnd.microsoft.card.adaptive",
        contentUrl: null,
        content: {
          $schema: "http://adaptivecards.io/schemas/adaptive-card.json",
          type: "AdaptiveCard",
          version: "1.4",
          body: [
            { type: "TextBlock", text: markdownEscape(t.headline), weight: "Bolder", size: "Medium", wrap: true },
            { type: "FactSet", facts: t.facts.map(([title, value]) => ({ title, value: markdownEscape(value) })) },
            ...t.commands.map((cmd) => ({ type: "TextBlock", text: cmd, fontType: "Monospace", wrap: true })),
          ],
          // Opens the request's page; reviewing takes a signed-in form post there.
          actions: [{ type: "Action.OpenUrl", title: "Open the request", url: t.link }],
        },
      },
    ],
  });
}

/** Plain-text mail. The subject is the headline, one line (oneLine): no line break reaches a header. */
export function mail(n: Notice, c: Context): { subject: string; text: string } {
  const t = describe(n, c);
  const width = Math.max(...t.facts.map(([k]) => k.length));
  // Each fact on its one line: a reason or an app name cannot make a line that looks like ours ("Open it: ...", a command).
  const fact = ([k, v]: [string, string]) => `${`${k}:`.padEnd(width + 2)}${oneLine(v)}`;
  return {
    subject: `[azgate] ${t.headline}`,
    text: [t.headline, "", ...t.facts.map(fact), "", `Open it: ${t.link}`, "", "Or from a terminal:", ...t.commands.map((cmd) => `  ${cmd}`), ""].join("\n"),
  };
}
