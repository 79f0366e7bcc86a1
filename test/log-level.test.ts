/**
 * The agent's log level (agent.log_level, AZGATE_LOG_LEVEL, --log-level; the
 * agent chart's log.level): which lines a level lets through, and the
 * config's refusal of a level it does not know.
 */
import { describe, expect, it } from "vitest";
import { levelled, type LogLevel } from "../src/util/log.ts";
import { loadConfig } from "../src/config/load.ts";

describe("agent log level", () => {
  const written = (min: LogLevel) => {
    const lines: string[] = [];
    const log = levelled(min, (line, level) => lines.push(`${level} ${line}`));
    log("forwarding GET management.azure.com/subscriptions", "debug");
    log("tunnel is up");
    log("tunnel lost; reconnecting", "warn");
    log("the proxy refused this agent", "error");
    return lines;
  };

  it("writes the lines at the level and above; a line without a level is info", () => {
    expect(written("debug")).toHaveLength(4);
    expect(written("info")).toEqual(["info tunnel is up", "warn tunnel lost; reconnecting", "error the proxy refused this agent"]);
    expect(written("warn")).toEqual(["warn tunnel lost; reconnecting", "error the proxy refused this agent"]);
    expect(written("error")).toEqual(["error the proxy refused this agent"]);
  });

  it("is read from the file, AZGATE_LOG_LEVEL or --log-level, and refused when it is no level", () => {
    expect(loadConfig({ env: { AZGATE_LOG_LEVEL: "debug" } }).agent?.log_level).toBe("debug");
    expect(loadConfig({ flags: [[["agent", "log_level"], "warn"]] }).agent?.log_level).toBe("warn");
    expect(() => loadConfig({ env: { AZGATE_LOG_LEVEL: "loud" } })).toThrow(/agent\.log_level: Invalid option: expected one of "debug"\|"info"\|"warn"\|"error"/);
  });
});
