/**
 * The mode boundaries: the agent, the client and the proxy never import
 * each other; what they share (wire types, the API client, addresses,
 * Azure rules, the tunnel) lives in folders of its own, and those import no
 * mode. Read from the sources, static and dynamic imports alike.
 */
import { describe, expect, it } from "vitest";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

const SRC = path.resolve(import.meta.dirname, "../src");
const MODES = ["agent", "client", "proxy"];
/** Shared folders: every mode may import them, and they import no mode. */
const SHARED = ["api", "azure", "auth", "errors", "net", "pki", "rbac", "resources", "runtime", "storage", "tunnel", "util", "sso", "audit", "metrics", "health", "config", "tracing"];

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? filesUnder(full) : full.endsWith(".ts") ? [full] : [];
  });
}

/** The top-level src/ folder of each module a file imports by relative path. */
function importedFolders(file: string): { spec: string; folder: string }[] {
  const text = readFileSync(file, "utf8");
  const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)].map((m) => m[1]);
  return specs.map((spec) => ({ spec, folder: path.relative(SRC, path.resolve(path.dirname(file), spec)).split(path.sep)[0] }));
}

describe("mode boundaries", () => {
  it.each(MODES)("src/%s imports no other mode", (mode) => {
    const crossings = filesUnder(path.join(SRC, mode)).flatMap((file) =>
      importedFolders(file)
        .filter(({ folder }) => MODES.includes(folder) && folder !== mode)
        .map(({ spec }) => `${path.relative(SRC, file)} -> ${spec}`),
    );
    expect(crossings).toEqual([]);
  });

  it("the shared folders import no mode and no command", () => {
    const crossings = SHARED.flatMap((dir) => {
      const full = path.join(SRC, dir);
      try {
        statSync(full);
      } catch {
        return [];
      }
      return filesUnder(full).flatMap((file) =>
        importedFolders(file)
          .filter(({ folder }) => [...MODES, "cli", "demo", "emulator"].includes(folder))
          .map(({ spec }) => `${path.relative(SRC, file)} -> ${spec}`),
      );
    });
    expect(crossings).toEqual([]);
  });
});
