/**
 * How to start this same program again as a child (for `demo --check`, whose
 * client half must run in its own process with its own environment, as a
 * second shell would). Three cases: a Node single executable (the binary is
 * the program), Node running a script, and Deno running a module.
 */
import { createRequire } from "node:module";

declare const Deno: { execPath(): string; mainModule: string } | undefined;

function isSingleExecutable(): boolean {
  try {
    // node:sea exists from Node 20; outside an executable isSea() is false.
    const sea = createRequire(import.meta.url)("node:sea") as { isSea(): boolean };
    return sea.isSea();
  } catch {
    return false;
  }
}

export function selfCommand(args: string[]): [string, string[]] {
  if (typeof Deno !== "undefined") return [Deno.execPath(), ["run", "-A", "--quiet", Deno.mainModule, ...args]];
  if (isSingleExecutable()) return [process.execPath, args];
  return [process.execPath, [...process.execArgv, process.argv[1], ...args]];
}
