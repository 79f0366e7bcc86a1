/**
 * The audit export's attack tests' set-up (test/audit-export-attacks-receivers
 * and -review2-receivers): a file backend and audit log with `n` events, a
 * webhook secret, a receiver on loopback, and what to close after each test.
 */
import http from "node:http";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import type { AddressInfo } from "node:net";
import { JsonLinesAuditSink } from "../../src/audit/sink.ts";
import { FileBackend } from "../../src/storage/file.ts";
import { FakeClock } from "./fake-clock.ts";
import { tempDir } from "./azgate.ts";

/** Closed in reverse order by closeAll (the test file's afterEach). */
export const closers: (() => Promise<unknown> | unknown)[] = [];

export async function closeAll(): Promise<void> {
  for (const c of closers.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
}

export async function base(n: number, fields: Record<string, unknown> = {}) {
  const dir = tempDir("azgate-attack-rx-");
  const clock = new FakeClock();
  const backend = await FileBackend.open(dir, clock);
  const audit = await JsonLinesAuditSink.open(dir, clock);
  closers.push(() => backend.close(), () => audit.close());
  for (let i = 0; i < n; i++) await audit.emit({ event: "app.request", code: "T2009I", n: i, ...fields });
  const secretFile = path.join(dir, "whsec");
  writeFileSync(secretFile, `whsec_${randomBytes(24).toString("base64")}\n`);
  return { dir, clock, backend, audit, secretFile };
}

export async function httpServer(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  closers.push(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/audit`;
}
