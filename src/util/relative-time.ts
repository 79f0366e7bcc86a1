/**
 * A time as a person reads it next to the clock: "in 58 min", "3 min ago",
 * "in 2 h 5 min", "1 d 4 h ago". Pure: `now` is the caller's clock (the
 * proxy's ctx.clock for the web UI), never the machine's. Whole units,
 * rounded down, at most two of them.
 */
const UNITS: [number, string][] = [
  [86_400_000, "d"],
  [3_600_000, "h"],
  [60_000, "min"],
  [1_000, "s"],
];

export function relativeTime(then: number, now: number): string {
  const ms = then - now;
  const abs = Math.abs(ms);
  if (abs < 1_000) return "now";
  const i = UNITS.findIndex(([size]) => abs >= size);
  const [size, unit] = UNITS[i];
  const whole = Math.floor(abs / size);
  const next = UNITS[i + 1];
  const rest = next && unit !== "min" ? Math.floor((abs % size) / next[0]) : 0;
  const text = `${whole} ${unit}${rest ? ` ${rest} ${next[1]}` : ""}`;
  return ms > 0 ? `in ${text}` : `${text} ago`;
}
