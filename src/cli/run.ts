import { isAzgateError } from "../errors/index.ts";
import { closePrompts } from "./prompt.ts";
import { printErr } from "./output.ts";

/**
 * Wraps a command handler: a user mistake prints `ERROR: <message>` and exits
 * non-zero, never a stack trace (unless AZGATE_DEBUG=1).
 */
export function run<A>(handler: (argv: A) => Promise<void>): (argv: A) => Promise<void> {
  return async (argv: A) => {
    try {
      await handler(argv);
    } catch (e) {
      reportError(e);
    } finally {
      closePrompts();
    }
  };
}

/** For `.demandCommand(...subcommandNeeded("admin users"))`: yargs' own words are about "non-option arguments". */
export function subcommandNeeded(command: string): [number, string] {
  return [1, `name a subcommand; "azgate ${command} --help" lists them`];
}

export function reportError(e: unknown): void {
  const debug = process.env.AZGATE_DEBUG === "1";
  if (isAzgateError(e)) {
    printErr(`ERROR: ${e.message}`);
    if (debug && e.cause) console.error(e.cause);
  } else {
    printErr(`ERROR: ${e instanceof Error ? e.message : String(e)}`);
    if (debug) console.error(e);
  }
  process.exitCode = 1;
}

/** "a,b , c" -> ["a","b","c"]; repeated flags are joined too. */
export function csv(value: unknown): string[] {
  const parts = (Array.isArray(value) ? value : [value]).flatMap((v) => (v === undefined || v === null ? [] : String(v).split(",")));
  return parts.map((s) => s.trim()).filter(Boolean);
}

/** Resolves on the first SIGINT or SIGTERM: long-running modes stop cleanly on Ctrl-C or a pod stop. */
export function untilSignalled(): Promise<void> {
  return new Promise((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
}
