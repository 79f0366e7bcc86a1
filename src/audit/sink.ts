import { promises as fsp } from "node:fs";
import path from "node:path";
import { ensureDir } from "../runtime/index.ts";

/**
 * Audit events. Secrets never go in: callers pass names, ids and outcomes,
 * never passwords, codes, tokens or keys.
 */
export interface AuditEvent {
  event: string;
  code: string;
  time: string;
  user?: string;
  success?: boolean;
  [field: string]: unknown;
}

export interface AuditSink {
  emit(e: Omit<AuditEvent, "time">): Promise<void>;
  close(): Promise<void>;
}

/**
 * Append-only JSON lines, fsync'd before an event is acknowledged, so an
 * acknowledged event survives a crash. Events that arrive while a write is in
 * flight are written together with one fsync (group commit): each caller
 * still waits for the fsync that covers its own line.
 */
export class JsonLinesAuditSink implements AuditSink {
  private pending: { line: string; done: () => void; fail: (e: unknown) => void }[] = [];
  private writing: Promise<void> | null = null;
  private constructor(private readonly file: string) {}

  static async open(dataDir: string): Promise<JsonLinesAuditSink> {
    const dir = path.join(dataDir, "audit");
    await ensureDir(dir);
    return new JsonLinesAuditSink(path.join(dir, "events.jsonl"));
  }

  emit(e: Omit<AuditEvent, "time">): Promise<void> {
    const line = JSON.stringify({ time: new Date().toISOString(), ...e }) + "\n";
    return new Promise<void>((done, fail) => {
      this.pending.push({ line, done, fail });
      this.writing ??= this.flush();
    });
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        const fh = await fsp.open(this.file, "a", 0o600);
        try {
          await fh.appendFile(batch.map((b) => b.line).join(""));
          await fh.sync();
        } finally {
          await fh.close();
        }
        for (const b of batch) b.done();
      } catch (e) {
        for (const b of batch) b.fail(e);
      }
    }
    this.writing = null;
  }

  async close(): Promise<void> {
    await this.writing?.catch(() => undefined);
  }
}
