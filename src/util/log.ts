/**
 * Log levels for the long-running modes' own lines (the agent's): a line
 * carries its level, and a sink drops those below the level configured
 * (`agent.log_level`, the chart's `log.level`). A sink that ignores the
 * level (a test's) sees every line, as before levels existed.
 */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogLine = (line: string, level?: LogLevel) => void;

/** `write` for the lines at `min` and above; a line without a level is info. */
export function levelled(min: LogLevel, write: (line: string, level: LogLevel) => void): LogLine {
  const floor = LOG_LEVELS.indexOf(min);
  return (line, level = "info") => {
    if (LOG_LEVELS.indexOf(level) >= floor) write(line, level);
  };
}
