/**
 * One temporary directory per test run, removed when the run ends. Every
 * temp dir the tests, the processes they spawn and the code under test make
 * lands under it (TMPDIR is what os.tmpdir() and mkdtemp read, on Node,
 * Deno, Python and Go alike), so a run leaves nothing behind: the streaming
 * tests alone write a gigabyte, and runs on one machine add up.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { freshBinary } from "./helpers/fresh-binary.ts";
import { TEST_BINARY_ENV } from "./helpers/azgate.ts";

declare const Deno: object | undefined;

export default function setup(): () => void {
  // On Node the end-to-end files spawn the single binary (helpers/azgate.ts says why); the in-process
  // files spawn none. Built before TMPDIR moves: the build's own temp files are not the run's.
  if (typeof Deno === "undefined" && !process.env.AZGATE_TEST_IN_PROCESS && !process.env.AZGATE_TEST_FROM_SOURCE) process.env[TEST_BINARY_ENV] = freshBinary();
  const root = mkdtempSync(path.join(tmpdir(), "azgate-tests-"));
  // As /tmp is: PostgreSQL's initdb and server run as their own user and read and write here too.
  chmodSync(root, 0o1777);
  for (const name of ["TMPDIR", "TMP", "TEMP"]) process.env[name] = root;
  return () => rmSync(root, { recursive: true, force: true });
}
