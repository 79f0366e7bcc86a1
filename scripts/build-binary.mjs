// npm run build:binary: dist/azgate, a Node single executable application
// holding every mode. Offline: esbuild bundles to one CommonJS file, Node
// makes the SEA blob, postject injects it into a copy of this node binary.
import { build } from "esbuild";
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const dist = path.join(root, "dist");
const bundle = path.join(dist, "azgate.cjs");
const blob = path.join(dist, "azgate.blob");
const binary = path.join(dist, process.platform === "win32" ? "azgate.exe" : "azgate");

// Start-up (`azgate --help` in under 150 ms; `npm run bench` prints it): two
// changes to what the bundle runs before the command's own code.
const lazyStringWidth = {
  name: "lazy-string-width",
  setup(b) {
    const shim = path.join(root, "scripts/binary/string-width.mjs");
    b.onResolve({ filter: /^string-width$/ }, async (a) => {
      if (a.importer === shim) return { path: path.join(root, "node_modules/string-width/index.js") };
      return { path: shim };
    });
  },
};
// yargs guesses its own version by walking up from the working directory to
// the nearest package.json (a directory listing per level, then whatever
// project the user stands in). The binary sets its version, so the walk only
// costs time: find nothing, and fail without building an AssertionError.
const yargsWithoutVersionGuess = {
  name: "yargs-without-version-guess",
  setup(b) {
    b.onLoad({ filter: /yargs[\\/]lib[\\/]platform-shims[\\/]esm\.mjs$/ }, async (a) => {
      const source = await readFile(a.path, "utf8");
      const patched = replaceOnce(replaceOnce(source, "import { notStrictEqual, strictEqual } from 'assert'", PLAIN_ASSERTS), "findUp: escalade,", "findUp: () => undefined,");
      return { contents: patched, loader: "js" };
    });
  },
};
const PLAIN_ASSERTS = `
const notStrictEqual = (a, b, m) => { if (a === b) throw new Error(m ?? "unexpected value"); };
const strictEqual = (a, b, m) => { if (a !== b) throw new Error(m ?? "unexpected value"); };`;
function replaceOnce(source, from, to) {
  if (!source.includes(from)) throw new Error(`build-binary: yargs changed; update the start-up patch (no "${from}")`);
  return source.replace(from, to);
}

// A single executable cannot import() (Node 20's SEA has no dynamic-import hook): the OTLP exporter's
// import('http') / import('https') of built-ins become requires of them.
const otlpWithoutDynamicImport = {
  name: "otlp-without-dynamic-import",
  setup(b) {
    b.onLoad({ filter: /@opentelemetry[\\/]otlp-exporter-base[\\/]build[\\/].*\.js$/ }, async (a) => {
      const source = await readFile(a.path, "utf8");
      return { contents: source.replace(/import\('(https?)'\)/g, "Promise.resolve(require('$1'))"), loader: "js" };
    });
  },
};

mkdirSync(dist, { recursive: true });
await build({
  entryPoints: [path.join(root, "scripts/binary-entry.ts")],
  outfile: bundle,
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  minify: true,
  legalComments: "none",
  // Optional modules (ws native helpers, debug colours): a stub that throws, so they fall back
  // (left external, the SEA's require would warn on every start).
  plugins: [
    {
      name: "optional-natives",
      setup(b) {
        b.onResolve({ filter: /^(bufferutil|utf-8-validate|supports-color)$/ }, (a) => ({ path: a.path, namespace: "stub" }));
        b.onLoad({ filter: /.*/, namespace: "stub" }, () => ({ contents: "throw new Error('not bundled');", loader: "js" }));
      },
    },
    lazyStringWidth,
    yargsWithoutVersionGuess,
    otlpWithoutDynamicImport,
  ],
  // yargs 18 and our runtime helpers use import.meta.url: give the CJS bundle one.
  banner: { js: "const __azgate_import_meta_url = require('url').pathToFileURL(__filename).href;" },
  define: { "import.meta.url": "__azgate_import_meta_url" },
  logLevel: "warning",
});

// What the executable cannot run is refused here, not found by a user: an import() of a module (see otlpWithoutDynamicImport).
const dynamicImport = /(?<![\w$.])import\(\s*["'`]/.exec(readFileSync(bundle, "utf8"));
if (dynamicImport) throw new Error(`build-binary: the bundle has an import() a single executable cannot run, near: ${readFileSync(bundle, "utf8").slice(dynamicImport.index - 80, dynamicImport.index + 40)}`);

const seaConfig = path.join(dist, "sea-config.json");
writeFileSync(seaConfig, JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true }));
execFileSync(process.execPath, ["--experimental-sea-config", seaConfig], { stdio: "inherit" });

rmSync(binary, { force: true });
copyFileSync(process.execPath, binary);
chmodSync(binary, 0o755);
const injected = spawnSync(process.execPath, [path.join(root, "node_modules/postject/dist/cli.js"), binary, "NODE_SEA_BLOB", blob, "--sentinel-fuse", "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2"], { encoding: "utf8" });
// postject warns about ELF note sections it does not need; show anything else.
process.stderr.write(injected.stderr.split("\n").filter((l) => l && !/string offset for section name/.test(l)).map((l) => l + "\n").join(""));
if (injected.status !== 0) throw new Error(`postject failed (exit ${injected.status})`);
rmSync(blob);
rmSync(seaConfig);
console.log(`built ${path.relative(root, binary)} (${(statSync(binary).size / 1e6).toFixed(0)} MB, Node ${process.versions.node})`);
