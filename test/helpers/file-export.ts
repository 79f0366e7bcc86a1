/**
 * The file-sink export tests' set-up (audit-export-attacks-file,
 * audit-export-review2-file): a file backend and a JSON-lines audit log in
 * a fresh directory on the test's clock, and an exporter to a target that
 * keeps everything it is sent.
 */
import { JsonLinesAuditSink, type AuditEvent } from "../../src/audit/sink.ts";
import { FileBackend } from "../../src/storage/file.ts";
import { AuditExporter } from "../../src/proxy/audit-export/exporter.ts";
import type { ExportTarget } from "../../src/proxy/audit-export/targets.ts";
import type { Clock } from "../../src/util/clock.ts";
import { tempDir } from "./azgate.ts";

/** A target that takes everything, in order, duplicates included. */
export function collector(): ExportTarget & { got: AuditEvent[] } {
  const got: AuditEvent[] = [];
  return { name: "siem", got, send: async (events) => void got.push(...events), close: () => undefined };
}

/** The `n` of each event, in the order of its first arrival (a receiver drops repeats by uid). */
export const firstSeen = (events: AuditEvent[]) => [...new Map(events.map((e) => [e.uid, e])).values()].map((e) => e.n);

/** The backend, the log and an exporter to a collector in a new directory; their closing goes on `closers`. */
export async function fileExport(prefix: string, clock: Clock, closers: (() => Promise<unknown>)[], sink?: { maxFileBytes?: number }) {
  const dir = tempDir(prefix);
  const backend = await FileBackend.open(dir, clock);
  const audit = await JsonLinesAuditSink.open(dir, clock, sink);
  closers.push(() => backend.close(), () => audit.close());
  const target = collector();
  return { dir, backend, audit, target, x: new AuditExporter({ backend, audit, clock, replica: "r1", target }) };
}
