/**
 * Sends one notification to one target: an HTTP POST for webhooks and chat,
 * a mail over SMTP. Throws on failure with a message that never contains
 * the target's URL (it is the target's secret: Slack's and Teams' URLs carry
 * their key) or its password; the outbox retries.
 */
import { readFile } from "node:fs/promises";
import nodemailer from "nodemailer";
import type { NotificationTarget } from "../../resources/notification-target.ts";
import { chatBody, mail, teamsBody, webhookBody, type Context, type Notice } from "./messages.ts";
import { signWebhook } from "./standard-webhooks.ts";
import { request, type HttpResponse } from "../../runtime/index.ts";

/** Past this a receiver is taken as down (and retried later). */
const TIMEOUT_MS = 10_000;

export interface Delivery {
  /** The same id on every attempt (Standard Webhooks' webhook-id: receivers drop duplicates by it). */
  id: string;
  notice: Notice;
  /** E-mail recipients (smtp targets). */
  to: string[];
}

export async function deliver(target: NotificationTarget, d: Delivery, c: Context, now: Date): Promise<void> {
  const spec = target.spec;
  if (spec.type === "smtp") return sendMail(spec.smtp!, d, c);
  const body = spec.type === "webhook" ? webhookBody(d.notice, c, now) : spec.type === "teams_workflow" ? teamsBody(d.notice, c) : chatBody(d.notice, c, spec.type);
  const headers: Record<string, string> = { "content-type": "application/json", "user-agent": "azgate-notifier", ...(spec.type === "webhook" ? signWebhook(spec.signing_secret!, d.id, now, body) : {}) };
  let res: HttpResponse;
  try {
    res = await request(spec.url!, { method: "POST", headers, body, timeoutMs: TIMEOUT_MS });
  } catch (e) {
    throw new Error(`could not reach the ${spec.type} receiver: ${(e as { code?: string }).code ?? withoutUrls((e as Error).message)}`);
  }
  // The body says why (Slack: "invalid_payload"); a little of it is enough, and it is the receiver's, not ours.
  const said = withoutUrls(res.body.slice(0, 200)).replace(/[\x00-\x1f]+/g, " ");
  if (res.status < 200 || res.status > 299) throw new Error(`the ${spec.type} receiver answered HTTP ${res.status}${said ? `: ${said}` : ""}`);
}

/** A runtime's error may quote the URL it was given, and the URL is the target's secret. */
const withoutUrls = (text: string) => text.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s)"']+/gi, "(url)");

async function sendMail(smtp: NonNullable<NotificationTarget["spec"]["smtp"]>, d: Delivery, c: Context): Promise<void> {
  const security = smtp.security ?? "starttls";
  const transport = nodemailer.createTransport({
    host: smtp.host,
    port: smtp.port ?? (security === "tls" ? 465 : 587),
    secure: security === "tls",
    requireTLS: security === "starttls",
    ignoreTLS: security === "none",
    auth: smtp.username ? { user: smtp.username, pass: smtp.password ?? "" } : undefined,
    tls: smtp.ca_file ? { ca: await readFile(smtp.ca_file, "utf8") } : undefined,
    connectionTimeout: TIMEOUT_MS,
    greetingTimeout: TIMEOUT_MS,
    socketTimeout: TIMEOUT_MS,
  });
  try {
    const { subject, text } = mail(d.notice, c);
    await transport.sendMail({ from: smtp.from, to: d.to, subject, text, messageId: `<${d.id}@azgate>` });
  } catch (e) {
    const err = e as { code?: string; responseCode?: number; response?: string; message: string };
    throw new Error(`the SMTP server ${smtp.host} refused the mail: ${err.response ?? err.code ?? err.message}`.slice(0, 300));
  } finally {
    transport.close();
  }
}
