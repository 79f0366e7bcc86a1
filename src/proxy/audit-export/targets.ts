/**
 * Where the audit export sends events (config `audit.export`): a webhook
 * (an HTTP POST of a batch, signed as the notification webhooks are:
 * Standard Webhooks), the proxy's standard output as JSON lines (for a
 * cluster's log collector), and syslog over TLS (syslog.ts). A target's
 * send resolves once the receiver took the batch, and throws otherwise;
 * the exporter (exporter.ts) then tries the same batch again later.
 */
import { createHash } from "node:crypto";
import { AzgateError } from "../../errors/index.ts";
import { readFileSync } from "node:fs";
import type { AuditEvent } from "../../audit/sink.ts";
import type { AuditExportTarget } from "../../config/schema.ts";
import { request } from "../../runtime/index.ts";
import { signWebhook } from "../notify/standard-webhooks.ts";
import { SyslogSender } from "./syslog.ts";
import type { Clock } from "../../util/clock.ts";

export interface ExportTarget {
  /** The name its cursor is kept under (config: `name`, or the type). */
  name: string;
  send(events: AuditEvent[]): Promise<void>;
  close(): void;
}

/** The longest one batch's delivery may take (connection, body, answer). */
const TIMEOUT_MS = 10_000;
/** A batch's JSON at most (the default of many HTTP collectors' limits is larger; 413 halves it anyway). */
const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** What is read of a receiver's answer (its status is what counts: a long answer to a taken batch is still a taken batch). */
const MAX_ANSWER_BYTES = 64 * 1024;

/** A batch the receiver cannot take whole: the exporter sends smaller ones (exporter.ts). */
export class TooLarge extends Error {
  readonly tooLarge = true;
}

/** Makes the target a configuration names (`timeoutMs`: one batch's delivery at most, TIMEOUT_MS unless a test says); a file it names that cannot be read, or a secret that is not one, stops the start with the key named. */
export function exportTarget(t: AuditExportTarget, clock: Clock, cluster: string, opts: { timeoutMs?: number } = {}): ExportTarget {
  const timeoutMs = opts.timeoutMs ?? TIMEOUT_MS;
  const name = t.name ?? t.type;
  const file = (key: string, path: string | undefined) => {
    if (!path) return undefined;
    try {
      return readFileSync(path, "utf8");
    } catch (e) {
      throw new AzgateError("bad_parameter", `audit.export ${name}: ${key} ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  };
  if (t.type === "stdout") return { name, send: (events) => writeStdout(events, timeoutMs), close: () => undefined };
  if (t.type === "syslog") {
    const [host, port] = splitAddress(t.address);
    const sender = new SyslogSender({ host, port, ca: file("ca_file", t.ca_file), cert: file("cert_file", t.cert_file), key: file("key_file", t.key_file), appName: t.app_name, hostname: t.hostname, clock, timeoutMs });
    return { name, send: (events) => sender.send(events), close: () => sender.close() };
  }
  const secret = file("secret_file", t.secret_file)!.trim();
  if (!/^whsec_[A-Za-z0-9+/]{16,}={0,2}$/.test(secret)) throw new AzgateError("bad_parameter", `audit.export ${name}: secret_file must hold a Standard Webhooks secret (whsec_ and at least 16 base64 characters)`);
  const ca = file("ca_file", t.ca_file);
  return {
    name,
    close: () => undefined,
    async send(events) {
      const body = JSON.stringify({ cluster, events });
      // A body past MAX_BODY_BYTES goes as smaller batches (the exporter halves them), as after a 413.
      const bytes = Buffer.byteLength(body);
      if (bytes > MAX_BODY_BYTES && events.length > 1) throw new TooLarge(`a batch of ${events.length} events is ${bytes} bytes, more than ${MAX_BODY_BYTES}`);
      const now = clock.date();
      const headers = { "content-type": "application/json", "user-agent": "azgate-audit-export", ...signWebhook([secret], batchId(events), now, body) };
      let status: number;
      try {
        // The whole exchange within TIMEOUT_MS (a receiver that trickles its answer does not hold the export), its answer bounded.
        status = (await request(t.url, { method: "POST", headers, body, timeoutMs, signal: AbortSignal.timeout(timeoutMs), keepBytes: MAX_ANSWER_BYTES, ...(ca ? { ca } : {}) })).status;
      } catch (e) {
        throw new Error(`could not reach the webhook receiver: ${(e as { code?: string }).code ?? (e as Error).message}`);
      }
      if (status === 413) throw new TooLarge(`the webhook receiver refused a batch of ${events.length} events as too large (HTTP 413)`);
      if (status < 200 || status > 299) throw new Error(`the webhook receiver answered HTTP ${status}`);
    },
  };
}

/**
 * The batch's webhook-id: the same for the same events (a retry, or the
 * same batch sent again after a restart), so a receiver may drop it; a batch
 * that holds one more event is another delivery.
 */
export function batchId(events: AuditEvent[]): string {
  const h = createHash("sha256");
  for (const e of events) h.update(`${e.uid ?? JSON.stringify(e)}\n`);
  return `audit_${h.digest("hex").slice(0, 32)}`;
}

/** JSON lines on standard output; a pipe nobody reads fails the batch after the timeout (it is tried again). */
function writeStdout(events: AuditEvent[], timeoutMs: number): Promise<void> {
  const text = events.map((e) => JSON.stringify(e)).join("\n") + "\n";
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`standard output took no events for ${timeoutMs / 1000} s (a full pipe?)`)), timeoutMs);
    process.stdout.write(text, (err) => (clearTimeout(timer), err ? fail(err) : ok()));
  });
}

function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(":");
  return [address.slice(0, i).replace(/^\[(.*)\]$/, "$1"), Number(address.slice(i + 1))];
}
