/**
 * Standard Webhooks signatures (standardwebhooks.com, spec v1): the
 * receiver checks `webhook-signature` with the shared secret and refuses a
 * `webhook-timestamp` more than five minutes off, so a captured delivery
 * cannot be replayed later. `webhook-id` stays the same across retries so
 * a receiver can drop duplicates.
 */
import { createHmac } from "node:crypto";

/**
 * The three headers for `body`, signed with each `whsec_...` secret: one
 * signature each, space-separated (the spec's list), so a receiver that has
 * either secret accepts it while a target's secret rotates.
 */
export function signWebhook(secrets: readonly string[], id: string, timestamp: Date, body: string): Record<string, string> {
  const seconds = Math.floor(timestamp.getTime() / 1000);
  const sign = (secret: string) => createHmac("sha256", Buffer.from(secret.replace(/^whsec_/, ""), "base64")).update(`${id}.${seconds}.${body}`).digest("base64");
  return { "webhook-id": id, "webhook-timestamp": String(seconds), "webhook-signature": secrets.map((s) => `v1,${sign(s)}`).join(" ") };
}
