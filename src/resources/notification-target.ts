/**
 * Where the proxy tells people about access requests, without plugins:
 * a generic webhook signed per Standard Webhooks, Slack or Mattermost
 * incoming webhooks, a Microsoft Teams Workflows URL, or SMTP mail. Pure:
 * the schema, which fields are secrets, and which events a target hears.
 *
 *   kind: notification_target
 *   version: v1
 *   metadata: { name: prod-approvals }
 *   spec:
 *     type: slack
 *     url: https://hooks.slack.com/services/...   # a secret: shown only with --with-secrets
 *     events: [access_request.create, access_request.approve]
 *     filter: { azure_identities: ["*prod-*"] }
 */
import { z } from "zod";
import { globMatch } from "../rbac/azure-api.ts";
import { invalidRegexMessage, isRegexValue, isUnreadableRegex } from "../util/regex.ts";

/** The events a target can hear: every step of an access request's life. */
export const NOTIFICATION_EVENTS = [
  "access_request.create",
  "access_request.review",
  "access_request.approve",
  "access_request.deny",
  "access_request.cancel",
  "access_request.expire",
  "access_request.revoke",
  "access_grant.end",
] as const;
export type NotificationEvent = (typeof NOTIFICATION_EVENTS)[number];

export const TARGET_TYPES = ["webhook", "slack", "mattermost", "teams_workflow", "smtp"] as const;

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "name must be 1-64 letters, digits, '.', '_' or '-'");
const httpUrl = z
  .string()
  .url("url must be a URL")
  .refine((u) => /^https?:$/.test(new URL(u).protocol), { message: "url must be http or https" });
/** Globs or `^...$` regular expressions (RE2's, checked here: a filter RE2 cannot read would silence the target). */
const globs = (what: string) =>
  z
    .array(
      z
        .string()
        .min(1, `${what}: an empty pattern matches nothing`)
        .superRefine((v, ctx) => {
          const invalid = isRegexValue(v) ? invalidRegexMessage(v) : null;
          if (invalid) ctx.addIssue({ code: "custom", message: `${what}: ${invalid}` });
        }),
    )
    .optional();
const whsec = (field: string) => z.string().regex(/^whsec_[A-Za-z0-9+/]{24,}={0,2}$/, `${field} must be whsec_ followed by at least 18 base64-encoded bytes`);
const email = z.string().regex(/^[^\s@<>]+@[^\s@<>]+$/, "must be an e-mail address");

const smtp = z.strictObject({
  host: z.string().min(1, "smtp.host is required"),
  port: z.number().int().min(1).max(65535).optional(),
  /** starttls (port 587, the default), tls (implicit, port 465), or none (a relay on a trusted network). */
  security: z.enum(["starttls", "tls", "none"]).optional(),
  username: z.string().optional(),
  password: z.string().optional(),
  /** A PEM bundle the SMTP server's certificate must chain to (default: the system's roots). */
  ca_file: z.string().optional(),
  from: email,
  /** Always mailed; the requester and suggested reviewers are added when their user has an e-mail. */
  to: z.array(email).default([]),
});

export const notificationTargetSchema = z
  .strictObject({
    kind: z.literal("notification_target"),
    version: z.literal("v1", { message: "version must be v1" }),
    metadata: z.strictObject({ name, description: z.string().optional(), labels: z.record(z.string(), z.string()).optional(), revision: z.string().optional() }),
    spec: z.strictObject({
      type: z.enum(TARGET_TYPES, { message: `type must be one of ${TARGET_TYPES.join(", ")}` }),
      url: httpUrl.optional(),
      /** Standard Webhooks secret, whsec_ and base64 (webhook only). */
      signing_secret: whsec("signing_secret").optional(),
      /**
       * Rotating the secret: the one it replaces, still signed with until `until`
       * (Standard Webhooks lets `webhook-signature` carry several), so receivers
       * can move to the new one without a delivery failing.
       */
      previous_signing_secret: z
        .strictObject({
          secret: whsec("previous_signing_secret.secret"),
          until: z.string().refine((t) => /^\d{4}-\d{2}-\d{2}T/.test(t) && !Number.isNaN(Date.parse(t)), { message: "previous_signing_secret.until must be a time, e.g. 2026-12-31T00:00:00Z" }),
        })
        .optional(),
      smtp: smtp.optional(),
      /** What this target hears (default: every event). */
      events: z.array(z.enum(NOTIFICATION_EVENTS, { message: `events: each must be one of ${NOTIFICATION_EVENTS.join(", ")}` })).min(1, "events: give at least one, or leave it out for all").optional(),
      /** Only requests that match every list given (globs, * for any run of characters, or ^regex$; case-insensitive). */
      filter: z.strictObject({ apps: globs("filter.apps"), azure_identities: globs("filter.azure_identities"), users: globs("filter.users") }).optional(),
    }),
  })
  .superRefine((t, ctx) => {
    const need = (ok: boolean, field: string, message: string) => ok || ctx.addIssue({ code: "custom", path: ["spec", field], message });
    if (t.spec.type === "smtp") {
      need(t.spec.smtp !== undefined, "smtp", "smtp: give host, from and to for an smtp target");
      need(t.spec.url === undefined, "url", "url is not used by an smtp target");
    } else {
      need(t.spec.url !== undefined, "url", `url is required for a ${t.spec.type} target`);
      need(t.spec.smtp === undefined, "smtp", `smtp is only for an smtp target, not ${t.spec.type}`);
    }
    if (t.spec.type === "webhook") need(t.spec.signing_secret !== undefined, "signing_secret", "signing_secret is required for a webhook target (receivers verify it): whsec_ and base64, e.g. from `openssl rand -base64 32`");
    else need(t.spec.signing_secret === undefined, "signing_secret", "signing_secret is only for a webhook target");
    if (t.spec.previous_signing_secret) {
      need(t.spec.type === "webhook", "previous_signing_secret", "previous_signing_secret is only for a webhook target");
      need(t.spec.previous_signing_secret.secret !== t.spec.signing_secret, "previous_signing_secret", "previous_signing_secret is the secret being replaced: it must differ from signing_secret");
    }
  });

export type NotificationTarget = z.infer<typeof notificationTargetSchema>;

/** The target with its secrets removed (what `get` shows without --with-secrets): the URL is one, as Slack's and Teams' URLs carry their key. */
export function withoutTargetSecrets(t: NotificationTarget): NotificationTarget {
  const copy = structuredClone(t);
  delete copy.spec.url;
  delete copy.spec.signing_secret;
  delete copy.spec.previous_signing_secret;
  if (copy.spec.smtp) delete copy.spec.smtp.password;
  return copy;
}

/** The secrets a webhook target signs with at `now`: its own, then the one it replaces until that one's `until`. */
export function signingSecrets(t: NotificationTarget, now: Date): string[] {
  const previous = t.spec.previous_signing_secret;
  return [t.spec.signing_secret!, ...(previous && now.getTime() < Date.parse(previous.until) ? [previous.secret] : [])];
}

/** Does this target hear `event` about this request? */
export function targetHears(t: NotificationTarget, event: NotificationEvent, request: { app: string; azure_identity: string; user: string }): boolean {
  if (t.spec.events && !t.spec.events.includes(event)) return false;
  const f = t.spec.filter;
  // A filter RE2 cannot read (one stored before loading checked it) hears everything rather than silencing the target.
  const any = (patterns: string[] | undefined, value: string) => !patterns || patterns.some((p) => isUnreadableRegex(p) || globMatch(p, value, "any"));
  return any(f?.apps, request.app) && any(f?.azure_identities, request.azure_identity) && any(f?.users, request.user);
}
