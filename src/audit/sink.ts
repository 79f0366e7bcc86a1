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

/** Append-only JSON lines, fsync'd per event so an acknowledged event survives a crash. */
export class JsonLinesAuditSink implements AuditSink {
  private queue: Promise<void> = Promise.resolve();
  private constructor(private readonly file: string) {}

  static async open(dataDir: string): Promise<JsonLinesAuditSink> {
    const dir = path.join(dataDir, "audit");
    await ensureDir(dir);
    return new JsonLinesAuditSink(path.join(dir, "events.jsonl"));
  }

  emit(e: Omit<AuditEvent, "time">): Promise<void> {
    const line = JSON.stringify({ time: new Date().toISOString(), ...e }) + "\n";
    const write = async () => {
      const fh = await fsp.open(this.file, "a", 0o600);
      try {
        await fh.appendFile(line);
        await fh.sync();
      } finally {
        await fh.close();
      }
    };
    this.queue = this.queue.then(write, write);
    return this.queue;
  }

  async close(): Promise<void> {
    await this.queue.catch(() => undefined);
  }
}
