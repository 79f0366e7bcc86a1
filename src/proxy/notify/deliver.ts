/**
 * Sends one notification to one target: an HTTP POST for webhooks and chat,
 * a mail over SMTP, to an address the destination policy let through
 * (destination.ts). Throws on failure with a message that never contains
 * the target's URL (it is the target's secret: Slack's and Teams' URLs carry
 * their key) or its password, nor what the receiver answered beyond its
 * status (its body is the receiver's text, not ours to keep); the outbox
 * retries.
 */
import { readFile } from "node:fs/promises";
import nodemailer from "nodemailer";
import { signingSecrets, type NotificationTarget } from "../../resources/notification-target.ts";
import { chatBody, mail, teamsBody, webhookBody, type Context, type Notice } from "./messages.ts";
import { signWebhook } from "./standard-webhooks.ts";
import { request, type HttpResponse } from "../../runtime/index.ts";
import { checkedDestination, type DestinationPolicy } from "./destination.ts";

/** Past this a receiver is taken as down (and retried later). */
const TIMEOUT_MS = 10_000;

export interface Delivery {
  /** The same id on every attempt (Standard Webhooks' webhook-id: receivers drop duplicates by it). */
  id: string;
  notice: Notice;
  /** E-mail recipients (smtp targets). */
  to: string[];
}

/** A receiver's refusal: its status (HTTP) or reply code (SMTP), nothing it said. */
export class DeliveryFailed extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export async function deliver(target: NotificationTarget, d: Delivery, c: Context, now: Date, policy: DestinationPolicy = {}): Promise<void> {
  const spec = target.spec;
  if (spec.type === "smtp") return sendMail(spec.smtp!, d, c, policy);
  const address = await checkedDestination(new URL(spec.url!).hostname, `the ${spec.type} receiver`, policy);
  const body = spec.type === "webhook" ? webhookBody(d.notice, c, now) : spec.type === "teams_workflow" ? teamsBody(d.notice, c) : chatBody(d.notice, c, spec.type);
  const headers: Record<string, string> = { "content-type": "application/json", "user-agent": "azgate-notifier", ...(spec.type === "webhook" ? signWebhook(signingSecrets(target, now), d.id, now, body) : {}) };
  let res: HttpResponse;
  try {
    res = await request(spec.url!, { method: "POST", headers, body, timeoutMs: TIMEOUT_MS, ...(address ? { address } : {}) });
  } catch (e) {
    throw new Error(`could not reach the ${spec.type} receiver: ${(e as { code?: string }).code ?? withoutUrls((e as Error).message)}`);
  }
  if (res.status < 200 || res.status > 299) throw new DeliveryFailed(`the ${spec.type} receiver answered HTTP ${res.status}`, res.status);
}

/** A runtime's error may quote the URL it was given, and the URL is the target's secret. */
const withoutUrls = (text: string) => text.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s)"']+/gi, "(url)");

async function sendMail(smtp: NonNullable<NotificationTarget["spec"]["smtp"]>, d: Delivery, c: Context, policy: DestinationPolicy): Promise<void> {
  const security = smtp.security ?? "starttls";
  const address = await checkedDestination(smtp.host, "the SMTP server", policy);
  const transport = nodemailer.createTransport({
    // The checked address; the name still verifies the server's certificate.
    host: address?.address ?? smtp.host,
    ...(address && !/^[\d.]+$|:/.test(smtp.host) ? { servername: smtp.host } : {}),
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
    // Its reply code and nodemailer's error code (EAUTH, ECONNREFUSED...), not the server's words.
    const err = e as { code?: string; responseCode?: number };
    throw new DeliveryFailed(`the SMTP server ${smtp.host} refused the mail: ${[err.code, err.responseCode ? `SMTP ${err.responseCode}` : undefined].filter(Boolean).join(", ") || "no reason given"}`, err.responseCode);
  } finally {
    transport.close();
  }
}
