/**
 * Where a running proxy or agent says how to ask it whether it is ready: a
 * small file in its data dir, written at start, removed at a clean stop.
 * `azgate healthcheck` (the container image's HEALTHCHECK) reads it, so one
 * image probes whichever mode it runs: a proxy on its port, an agent on its
 * diagnostics port, each on loopback.
 */
import path from "node:path";
import { readTextOrNull, removeFile, writeFileAtomic } from "../runtime/index.ts";
import { isLoopback } from "../net/connect-server.ts";
import { AzgateError } from "../errors/index.ts";

export const PROBE_RECORD = "healthcheck.json";

export interface ProbeRecord {
  mode: "proxy" | "agent";
  /** The readiness URL, on loopback. */
  url: string;
}

/** The URL to reach a listener bound to `host` from this machine, or null when loopback cannot reach it. */
export function loopbackUrl(scheme: "http" | "https", host: string, port: number, pathname: string): string | null {
  const bare = host.replace(/^\[|\]$/g, "");
  const at = bare === "" || bare === "0.0.0.0" ? "127.0.0.1" : bare === "::" ? "[::1]" : isLoopback(bare) ? (bare.includes(":") ? `[${bare}]` : bare) : bare === "localhost" ? "127.0.0.1" : null;
  return at ? `${scheme}://${at}:${port}${pathname}` : null;
}

export const writeProbeRecord = (dataDir: string, record: ProbeRecord) => writeFileAtomic(path.join(dataDir, PROBE_RECORD), JSON.stringify(record) + "\n", 0o644);

export const removeProbeRecord = (dataDir: string) => removeFile(path.join(dataDir, PROBE_RECORD)).catch(() => false);

/** The record in `dataDir`, or null when none is there (nothing started with it, or it stopped cleanly). */
export async function readProbeRecord(dataDir: string): Promise<ProbeRecord | null> {
  const text = await readTextOrNull(path.join(dataDir, PROBE_RECORD));
  if (text === null) return null;
  try {
    const r = JSON.parse(text) as Partial<ProbeRecord>;
    if ((r.mode === "proxy" || r.mode === "agent") && typeof r.url === "string") return { mode: r.mode, url: r.url };
  } catch {
    // fall through: a damaged record is reported as such
  }
  throw new AzgateError("config_invalid", `${path.join(dataDir, PROBE_RECORD)} is damaged; restart azgate (it rewrites the file at start) or give --url`);
}
