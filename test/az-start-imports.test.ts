/**
 * What `azgate az` and `azgate exec` run before they start the command
 * (cli/commands/azure.ts throughSession: prepareLocalSession, then runAz or
 * runChild) loads no zod: zod and the tunnel's schemas load after the command
 * has started, while it boots. Loading them first cost about 28 ms of every
 * `azgate az` (the single binary, az's start measured from outside, 12
 * interleaved runs each). Read from the bundle esbuild makes of those modules.
 */
import { build } from "esbuild";
import path from "node:path";
import { describe, expect, it } from "vitest";

const root = path.resolve(import.meta.dirname, "..");
const BEFORE_THE_COMMAND = ["src/client/local-session.ts", "src/client/az.ts", "src/client/exec-env.ts"];

async function inputsOf(entry: string): Promise<string[]> {
  const result = await build({ entryPoints: [path.join(root, entry)], bundle: true, platform: "node", format: "esm", write: false, metafile: true, logLevel: "silent" });
  return Object.keys(result.metafile!.inputs);
}

describe("what runs before azgate az starts az", () => {
  it.each(BEFORE_THE_COMMAND)("%s loads no zod and no tunnel schemas", async (entry) => {
    const inputs = await inputsOf(entry);
    expect(inputs.length).toBeGreaterThan(1);
    expect(inputs.filter((i) => /node_modules\/zod\//.test(i) || i.endsWith("src/tunnel/http.ts"))).toEqual([]);
  });

  it("the check sees zod where it is loaded (the local proxy, started once the command runs)", async () => {
    expect((await inputsOf("src/client/local-proxy.ts")).some((i) => /node_modules\/zod\//.test(i))).toBe(true);
  });
});
