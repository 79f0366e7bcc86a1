/**
 * Audit events as syslog messages (RFC 5424), sent over TCP with TLS and
 * octet-counting framing (RFC 5425: "LENGTH SP MESSAGE"), so a message may
 * hold any byte and the receiver never splits one. The message is the
 * event's JSON after a UTF-8 BOM (RFC 5424 6.4: the receiver knows it is
 * UTF-8); MSGID is the event's code, the severity its last letter.
 */
import { hostname } from "node:os";
import tls from "node:tls";
import type { AuditEvent } from "../../audit/sink.ts";
import { tlsTrust } from "../../runtime/index.ts";
import type { Clock } from "../../util/clock.ts";

/** RFC 5424 facility 13: log audit. */
const FACILITY = 13;
const SEVERITY: Record<string, number> = { E: 3, W: 4, I: 5 };

/** A header field of RFC 5424: printable US-ASCII without spaces, at most `max` characters, or "-". */
function field(v: unknown, max: number): string {
  const s = typeof v === "string" ? v.replace(/[^\x21-\x7e]/g, "").slice(0, max) : "";
  return s || "-";
}

/** One event as an RFC 5424 message (without the framing). */
export function syslogMessage(e: AuditEvent, o: { host: string; appName: string }): string {
  const code = typeof e.code === "string" ? e.code : "";
  const severity = SEVERITY[code.slice(-1)] ?? 5;
  const time = typeof e.time === "string" && !Number.isNaN(Date.parse(e.time)) ? new Date(e.time).toISOString() : "-";
  return `<${FACILITY * 8 + severity}>1 ${time} ${field(o.host, 255)} ${field(o.appName, 48)} ${process.pid} ${field(code, 32)} - \ufeff${JSON.stringify(e)}`;
}

/** RFC 5425 framing: the message's length in octets, a space, the message. */
export function frame(message: string): Buffer {
  const body = Buffer.from(message, "utf8");
  return Buffer.concat([Buffer.from(`${body.length} `), body]);
}

export interface SyslogOptions {
  host: string;
  port: number;
  /** CA certificates (PEM) the receiver's certificate is checked against, besides the web PKI's. */
  ca?: string;
  /** A client certificate and key (PEM), for a receiver that asks for one. */
  cert?: string;
  key?: string;
  appName?: string;
  /** The HOSTNAME field (default: this machine's name). */
  hostname?: string;
  timeoutMs?: number;
  /** Times the connection's idleness (IDLE_MS): the exporter's clock. */
  clock: Clock;
}

/**
 * After a write, how long a refusal may take to arrive: at least this, and
 * for a connection's first batch twice its handshake (TLS 1.3 refuses a
 * client certificate after the handshake, a round trip later: a receiver far
 * away answers late).
 */
const SETTLE_MS = 150;
/** A connection idle this long is opened again before the next batch (a middlebox may have dropped it silently). */
export const IDLE_MS = 60_000;

/**
 * A connection kept open between batches and opened again after a failure,
 * or after IDLE_MS unused. A batch counts as sent once its bytes are handed
 * to the kernel and no error or close came within SETTLE_MS: TLS over TCP
 * has no receipt, so bytes in flight when a connection breaks may still be
 * lost (RFC 5425 gives no more; rsyslog's own forwarding makes the same
 * trade). Where every event must arrive, use the webhook.
 */
export class SyslogSender {
  private socket: tls.TLSSocket | null = null;
  private lastUsed = 0;
  /** The connection's handshake took this long; a batch it took already means it was not refused. */
  private handshakeMs = 0;
  private proven = false;
  /** Why the connection failed, when it did between batches (the receiver's alert, a reset). */
  private broken: Error | null = null;
  constructor(private readonly o: SyslogOptions) {}

  async send(events: AuditEvent[]): Promise<void> {
    const host = this.o.hostname ?? hostname();
    const data = Buffer.concat(events.map((e) => frame(syslogMessage(e, { host, appName: this.o.appName ?? "azgate" }))));
    if (this.socket && (this.broken || this.o.clock.now() - this.lastUsed > IDLE_MS)) this.close();
    const socket = this.socket ?? (this.socket = await this.connect());
    try {
      await new Promise<void>((ok, fail) => {
        const timer = setTimeout(() => fail(new Error("the syslog receiver took too long to take the batch")), this.o.timeoutMs ?? 10_000);
        socket.write(data, (err) => (clearTimeout(timer), err ? fail(err) : ok()));
      });
      // A refusal (a client certificate it does not take, under TLS 1.3) or a close comes right after: then the batch did not arrive.
      await new Promise((r) => setTimeout(r, this.proven ? SETTLE_MS : Math.max(SETTLE_MS, 2 * this.handshakeMs)));
      if (this.broken || socket.destroyed) throw new Error(`the syslog receiver closed the connection${this.broken ? `: ${this.broken.message}` : ""}`);
      this.lastUsed = this.o.clock.now();
      this.proven = true;
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private connect(): Promise<tls.TLSSocket> {
    this.broken = null;
    this.proven = false;
    const started = performance.now();
    return new Promise((ok, fail) => {
      const socket = tls.connect({ host: this.o.host, port: this.o.port, servername: /^[\d.]+$|:/.test(this.o.host) ? undefined : this.o.host, ...tlsTrust(this.o.ca ? [this.o.ca] : []).options, cert: this.o.cert, key: this.o.key });
      const timer = setTimeout(() => socket.destroy(new Error("timed out connecting to the syslog receiver")), this.o.timeoutMs ?? 10_000);
      socket.once("secureConnect", () => {
        clearTimeout(timer);
        this.handshakeMs = performance.now() - started;
        socket.setKeepAlive(true, 30_000);
        // Whatever ends the connection between batches is kept, and fails the next batch (which reconnects).
        // (This connection's only: an old one closed after a reconnect says nothing of the new.)
        socket.on("error", (e) => void (this.socket === socket && (this.broken ??= e)));
        socket.on("close", () => void (this.socket === socket && (this.broken ??= new Error("closed by the receiver"))));
        // The receiver sends nothing back; reading keeps its close and alerts coming.
        socket.resume();
        ok(socket);
      });
      socket.once("error", (e) => (clearTimeout(timer), fail(e)));
    });
  }

  close(): void {
    const socket = this.socket;
    this.socket = null;
    socket?.destroy();
  }
}
