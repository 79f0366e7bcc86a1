/**
 * The audit export's syslog target against Debian's rsyslogd: RFC 5424
 * messages over TLS with RFC 5425 framing, parsed by rsyslog's own parser
 * into the fields an operator's rules match on (facility log audit and the
 * severity from the event's code, APP-NAME, MSGID the code, the event as
 * JSON). A receiver that goes away gets the events again once it is back.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JsonLinesAuditSink, type AuditEvent } from "../src/audit/sink.ts";
import { FileBackend } from "../src/storage/file.ts";
import { AuditExporter } from "../src/proxy/audit-export/exporter.ts";
import { exportTarget } from "../src/proxy/audit-export/targets.ts";
import { syslogMessage } from "../src/proxy/audit-export/syslog.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { tempDir } from "./helpers/azgate.ts";
import { freePort } from "./helpers/tls-front.ts";
import { startRsyslog, type Rsyslog } from "./helpers/rsyslog.ts";

let rsyslog: Rsyslog;
beforeAll(async () => {
  rsyslog = await startRsyslog(tempDir("azgate-rsyslog-"), await freePort());
}, 30_000);
afterAll(() => rsyslog?.stop());

/** Waits (real time: rsyslog writes on its own) until it has written `n` messages. */
async function received(n: number): Promise<ReturnType<Rsyslog["messages"]>> {
  for (const deadline = Date.now() + 10_000; ; await new Promise((r) => setTimeout(r, 50))) {
    const m = rsyslog.messages();
    if (m.length >= n || Date.now() > deadline) return m;
  }
}

describe("audit export to syslog (rsyslogd, TLS)", () => {
  it("each event is a message rsyslog parses: facility log audit, severity by code, MSGID the code, the event as JSON; a receiver back after a stop gets what it missed", async () => {
    const dir = tempDir("azgate-syslog-");
    const clock = new FakeClock();
    const backend = await FileBackend.open(dir, clock);
    const audit = await JsonLinesAuditSink.open(dir, clock);
    await audit.emit({ event: "user.login", code: "T1000I", user: "alice", success: true });
    await audit.emit({ event: "app.request.denied", code: "AZ2004W", user: "mallory", reason: "a line\nwith | pipes and \u001b[31m escapes", success: false });
    await audit.emit({ event: "app.request", code: "T2009E", user: "bob", success: false });
    await audit.emit({ event: "some.future event", code: "not a code, too long for MSGID anyway", n: 1 });
    const target = exportTarget({ type: "syslog", name: "siem", address: `localhost:${rsyslog.port}`, ca_file: rsyslog.caFile, hostname: "proxy-1" }, clock, "c");
    const x = new AuditExporter({ backend, audit, clock, replica: "r1", target });
    expect(await x.drain()).toBe(4);
    const got = await received(4);
    expect(got.map((m) => [m.pri, m.host, m.app, m.msgid])).toEqual([
      [13 * 8 + 5, "proxy-1", "azgate", "T1000I"],
      [13 * 8 + 4, "proxy-1", "azgate", "AZ2004W"],
      [13 * 8 + 3, "proxy-1", "azgate", "T2009E"],
      [13 * 8 + 5, "proxy-1", "azgate", "notacode,toolongforMSGIDanyway"],
    ]);
    const events = got.map((m) => JSON.parse(m.msg.replace(/^\ufeff/, "")) as AuditEvent);
    expect(events.map((e) => e.user ?? e.event)).toEqual(["alice", "mallory", "bob", "some.future event"]);
    expect(events[1].reason).toBe("a line\nwith | pipes and \u001b[31m escapes");
    expect(Date.parse(got[0].time)).toBe(Date.parse(events[0].time));

    // The receiver goes away: the export fails (and would back off), then the receiver is back and gets the rest.
    await rsyslog.stop();
    await audit.emit({ event: "user.login", code: "T1000I", user: "carol", success: true });
    await expect(x.drain()).rejects.toThrow();
    await rsyslog.restart();
    expect(await x.drain()).toBe(1);
    expect((await received(5)).map((m) => JSON.parse(m.msg.replace(/^\ufeff/, "")).user ?? "")).toEqual(["alice", "mallory", "bob", "", "carol"]);
    target.close();
    await audit.close();
    await backend.close();
  });

  it("refuses a receiver whose certificate it cannot verify: nothing is sent, the cursor stays", async () => {
    const dir = tempDir("azgate-syslog-");
    const clock = new FakeClock();
    const backend = await FileBackend.open(dir, clock);
    const audit = await JsonLinesAuditSink.open(dir, clock);
    await audit.emit({ event: "user.login", code: "T1000I", user: "eve", success: true });
    const before = rsyslog.messages().length;
    const target = exportTarget({ type: "syslog", address: `localhost:${rsyslog.port}` }, clock, "c");
    await expect(new AuditExporter({ backend, audit, clock, replica: "r1", target }).drain()).rejects.toThrow(/certificate/);
    expect((await backend.get<{ cursor: string | null }>("audit-export/syslog"))?.value.cursor ?? null).toBeNull();
    expect(rsyslog.messages().length).toBe(before);
    await audit.close();
    await backend.close();
  });

  it("formats a message as RFC 5424 says, whatever the event holds", () => {
    const e = { event: "x", code: "T1000I", time: "2026-01-02T03:04:05.678Z", user: "a b" } as AuditEvent;
    expect(syslogMessage(e, { host: "h o\tst", appName: "" })).toBe(`<109>1 2026-01-02T03:04:05.678Z host - ${process.pid} T1000I - \ufeff${JSON.stringify(e)}`);
  });
});
