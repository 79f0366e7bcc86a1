/**
 * Second review, the audit export's targets after the first review's fixes
 * (proxy/audit-export/targets.ts, syslog.ts, exporter.ts): the syslog settle
 * window against a receiver one WAN round trip away, a webhook whose 2xx
 * answer is long, the 413 halving.
 */
import { afterEach, describe, expect, it } from "vitest";
import http from "node:http";
import net from "node:net";
import tls from "node:tls";
import { readFileSync } from "node:fs";
import path from "node:path";
import type { AddressInfo } from "node:net";
import { AuditExporter, type ExportState } from "../src/proxy/audit-export/exporter.ts";
import { exportTarget } from "../src/proxy/audit-export/targets.ts";
import { KEYS } from "../src/proxy/keys.ts";
import { operatorCa } from "./helpers/tls-front.ts";
import { base, closeAll, closers, httpServer } from "./helpers/export-fixture.ts";

afterEach(closeAll);

/** Reads a webhook POST's events. */
function events(req: http.IncomingMessage): Promise<{ n: number }[]> {
  return new Promise((ok) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => ok((JSON.parse(Buffer.concat(chunks).toString()) as { events: { n: number }[] }).events));
  });
}

describe("syslog: the 150 ms settle window", () => {
  /** A TCP relay that delays every byte by `oneWayMs` each way: a receiver a WAN round trip away (a SIEM in another region). */
  async function latency(port: number, oneWayMs: number): Promise<number> {
    const relay = net.createServer((c) => {
      const up = net.connect(port, "127.0.0.1");
      const later = (fn: () => void) => setTimeout(fn, oneWayMs);
      c.on("data", (d) => later(() => up.write(d)));
      up.on("data", (d) => later(() => c.write(d)));
      c.on("end", () => later(() => up.end()));
      up.on("end", () => later(() => c.end()));
      c.on("close", () => later(() => up.destroy()));
      up.on("close", () => later(() => c.destroy()));
      c.on("error", () => undefined);
      up.on("error", () => undefined);
      closers.push(() => (c.destroy(), up.destroy()));
    });
    await new Promise<void>((r) => relay.listen(0, "127.0.0.1", r));
    closers.push(() => new Promise<void>((r) => relay.close(() => r())));
    return (relay.address() as AddressInfo).port;
  }

  it("a receiver 200 ms away (round trip) that refuses the client's certificate: nothing it refused counts as sent, the cursor stays", async () => {
    const s = await base(0);
    const ca = operatorCa(path.join(s.dir, "ca"), "Syslog Test CA");
    const leaf = ca.issue("syslog", ["localhost", "127.0.0.1"]);
    let bytes = "";
    // Mutual TLS (TLS 1.3): our client has no certificate, so the receiver refuses it once it has read the client's flight.
    const server = tls.createServer({ key: readFileSync(leaf.keyFile), cert: readFileSync(leaf.certFile), requestCert: true, rejectUnauthorized: true, ca: [readFileSync(ca.caFile, "utf8")] }, (c) => {
      c.on("data", (d: Buffer) => (bytes += d.toString("utf8")));
      c.on("error", () => undefined);
    });
    server.on("tlsClientError", () => undefined);
    const sockets = new Set<net.Socket>();
    server.on("connection", (c) => (sockets.add(c), c.on("close", () => sockets.delete(c))));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    closers.push(() => new Promise<void>((r) => (sockets.forEach((c) => c.destroy()), server.close(() => r()))));
    const port = await latency((server.address() as AddressInfo).port, 100);

    const target = exportTarget({ type: "syslog", name: "siem", address: `localhost:${port}`, ca_file: ca.caFile }, s.clock, "c");
    closers.push(() => target.close());
    const counted: number[] = [];
    const x = new AuditExporter({ backend: s.backend, audit: s.audit, clock: s.clock, replica: "r1", target, count: (_t, what, n) => void (what === "events" && counted.push(n)) });
    let failures = 0;
    for (let b = 0; b < 4; b++) {
      for (let n = 0; n < 3; n++) await s.audit.emit({ event: "app.request", code: "T2009I", n: b * 3 + n });
      await x.drain().catch(() => failures++);
      await new Promise((r) => setTimeout(r, 400)); // the alert arrives; the socket closes
    }
    const state = (await s.backend.get<ExportState>(KEYS.auditExport("siem")))?.value;
    const received = bytes.split("\ufeff").length - 1;
    expect({ received, sentMetric: counted.reduce((a, n) => a + n, 0), sentState: state?.sent ?? 0 }).toEqual({ received: 0, sentMetric: 0, sentState: 0 });
    expect(failures).toBeGreaterThan(0);
  }, 30_000);
});

describe("webhook: the answer", () => {
  it("a receiver that takes the batch (HTTP 200) and answers with more than 64 KiB (a per-event result list, a verbose page): the batch counts as taken, the export goes on", async () => {
    const s = await base(1000);
    const got: number[] = [];
    const url = await httpServer(async (req, res) => {
      for (const e of await events(req)) got.push(e.n);
      // ~200 bytes of result per event, as bulk-ingest APIs answer (Elasticsearch's _bulk); 500 events: ~100 KiB.
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ items: got.slice(-500).map((n) => ({ index: { _index: "azgate-audit-2026.12.07", _id: `event-${n}`, _version: 1, status: 201, result: "created", _seq_no: n, _primary_term: 1, _shards: { total: 2, successful: 2, failed: 0 } } })) }));
    });
    const x = new AuditExporter({ backend: s.backend, audit: s.audit, clock: s.clock, replica: "r1", target: exportTarget({ type: "webhook", name: "siem", url, secret_file: s.secretFile }, s.clock, "c") });
    const errors: string[] = [];
    for (let i = 0; i < 4; i++) await x.drain().catch((e) => errors.push((e as Error).message));
    const state = (await s.backend.get<ExportState>(KEYS.auditExport("siem")))?.value;
    expect({ delivered: got.length, distinct: new Set(got).size, sent: state?.sent ?? 0, errors }).toEqual({ delivered: 1000, distinct: 1000, sent: 1000, errors: [] });
  }, 60_000);
});

describe("webhook: 413 halving", () => {
  it("one 413 (a receiver's brief limit, a proxy in front restarting): later batches go back to 500 events, not half as many for the rest of the process's life", async () => {
    const s = await base(600);
    const sizes: number[] = [];
    let refuseOnce = true;
    const url = await httpServer(async (req, res) => {
      const evs = await events(req);
      if (refuseOnce) return void ((refuseOnce = false), res.writeHead(413).end());
      sizes.push(evs.length);
      res.writeHead(200).end();
    });
    const x = new AuditExporter({ backend: s.backend, audit: s.audit, clock: s.clock, replica: "r1", target: exportTarget({ type: "webhook", name: "siem", url, secret_file: s.secretFile }, s.clock, "c") });
    await x.drain().catch(() => undefined);
    await x.drain();
    // Hours later, a backlog of 1,000 (the receiver was down a while): how many POSTs does it take?
    sizes.length = 0;
    for (let i = 0; i < 1000; i++) await s.audit.emit({ event: "app.request", code: "T2009I", n: 600 + i });
    await x.drain();
    expect(sizes).toEqual([500, 500]);
  }, 60_000);
});
