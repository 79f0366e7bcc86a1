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
  } else if (systemErrorMessage(e)) {
    printErr(`ERROR: ${systemErrorMessage(e)}`);
    if (debug) console.error(e);
  } else {
    printErr(`ERROR: ${e instanceof Error ? e.message : String(e)}`);
    if (debug) console.error(e);
  }
  process.exitCode = 1;
}

/** The operating system's refusals, said as a person can act on them (the path or address included). */
function systemErrorMessage(e: unknown): string | null {
  const err = e as NodeJS.ErrnoException & { path?: string; address?: string; port?: number };
  const where = err?.path ?? (err?.address ? `${err.address}${err.port ? `:${err.port}` : ""}` : "");
  switch (err?.code) {
    case "EACCES":
    case "EPERM":
      return err.syscall === "listen" || err.syscall === "bind"
        ? `not allowed to listen on ${where} (ports below 1024 need privileges); choose another address`
        : `permission denied on ${where}: run as a user who may write there, or choose another path (--data-dir)`;
    case "EADDRINUSE":
      return `${where} is already in use; stop what listens there or choose another address`;
    case "EADDRNOTAVAIL":
      return `${where} is not an address of this machine; choose one it has (127.0.0.1, 0.0.0.0)`;
    case "ENOENT":
      return `${where} does not exist`;
    case "ENOTDIR":
      return `${where}: a part of this path is a file, not a directory; choose another path`;
    case "ENOSPC":
      return `no space left on the device holding ${where}`;
    case "EROFS":
      return `${where} is on a read-only file system; choose another path`;
    default:
      return null;
  }
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
