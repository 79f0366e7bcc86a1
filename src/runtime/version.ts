/** Which runtime this is, without loading anything else (the CLI's start-up path uses it). */
declare const Deno: { version: { deno: string } } | undefined;

export type RuntimeName = "node" | "deno";

export function runtimeName(): RuntimeName {
  return typeof Deno !== "undefined" ? "deno" : "node";
}

export function runtimeVersion(): string {
  return runtimeName() === "deno" ? `deno ${Deno!.version.deno}` : `node ${process.versions.node}`;
}
