/**
 * Standard Webhooks signatures (standardwebhooks.com, spec v1): the
 * receiver checks `webhook-signature` with the shared secret and refuses a
 * `webhook-timestamp` more than five minutes off, so a captured delivery
 * cannot be replayed later. `webhook-id` stays the same across retries so
 * a receiver can drop duplicates.
 */
import { createHmac } from "node:crypto";

/** The three headers for `body`, signed with a `whsec_...` secret. */
export function signWebhook(secret: string, id: string, timestamp: Date, body: string): Record<string, string> {
  const seconds = Math.floor(timestamp.getTime() / 1000);
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const signature = createHmac("sha256", key).update(`${id}.${seconds}.${body}`).digest("base64");
  return { "webhook-id": id, "webhook-timestamp": String(seconds), "webhook-signature": `v1,${signature}` };
}
