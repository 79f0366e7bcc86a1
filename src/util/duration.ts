import { AzgateError } from "../errors/index.ts";

const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses Go-style durations as Teleport writes them ("12h", "1h30m", "30m0s", "90s").
 * Pure; throws bad_parameter naming `field` on bad input.
 */
export function parseDuration(text: string, field = "duration"): number {
  const s = String(text).trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(s)) {
    throw new AzgateError("bad_parameter", `${field}: "${text}" is not a duration (examples: 30m, 1h, 12h, 1h30m)`);
  }
  let total = 0;
  for (const [, num, unit] of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) total += Number(num) * unitMs[unit];
  if (total <= 0) throw new AzgateError("bad_parameter", `${field}: "${text}" must be longer than zero`);
  return Math.round(total);
}

/** Formats a duration the way parseDuration reads it, largest units first ("1h30m"). */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  let rest = Math.round(ms / 1000);
  const h = Math.floor(rest / 3600); rest -= h * 3600;
  const m = Math.floor(rest / 60); const s = rest - m * 60;
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${s || (!h && !m) ? `${s}s` : ""}`;
}
