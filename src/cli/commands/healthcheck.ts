/**
 * `azgate healthcheck [--url URL] [--data-dir DIR]`: the container image's
 * HEALTHCHECK (the image has no curl). Exits 0 when the URL answers 200.
 * Without --url it asks what the proxy or agent running on the data dir
 * recorded at start (health/probe-record.ts), so one image's check fits
 * either mode; with no record, the proxy's default port. Loopback only, so
 * skipping certificate checks (the proxy's certificate is from its own CA)
 * cannot be turned against anything else.
 */
import type { Argv } from "yargs";
import { DESCRIBE } from "../catalog.ts";
import http from "node:http";
import https from "node:https";
import { AzgateError } from "../../errors/index.ts";
import { isLoopback } from "../../net/connect-server.ts";
import { print } from "../output.ts";
import path from "node:path";
import { readProbeRecord } from "../../health/probe-record.ts";
import { defaultDataDir, loadConfig } from "../../config/load.ts";
import { run } from "../run.ts";

/** Where a proxy started with the defaults answers. */
const PROXY_DEFAULT = "https://127.0.0.1:3080/readyz";

export function healthcheckCommand(y: Argv) {
  return y.command<{ url?: string; "data-dir"?: string }>(
    "healthcheck",
    DESCRIBE.healthcheck,
    (a) =>
      a
        .option("url", { type: "string", describe: `Probe URL on this machine (default: what the proxy or agent on --data-dir recorded, else ${PROXY_DEFAULT})` })
        .option("data-dir", { type: "string", describe: "The running proxy's or agent's data dir (default: AZGATE_DATA_DIR, else the default data dir)" }),
    run(async (argv) => {
      // The data dir as start finds it (flag, then AZGATE_DATA_DIR, then the default).
      const dataDir = () => loadConfig({ env: process.env, flags: [[["data_dir"], argv["data-dir"]]] }).data_dir ?? defaultDataDir();
      const recorded = argv.url ? null : await readProbeRecord(path.resolve(dataDir()));
      const url = new URL(argv.url ?? recorded?.url ?? PROXY_DEFAULT);
      if (!isLoopback(url.hostname.replace(/^\[|\]$/g, ""))) throw new AzgateError("bad_parameter", `--url must be a loopback address, not ${url.hostname}`);
      const status = await new Promise<number>((resolve, reject) => {
        const req = (url.protocol === "https:" ? https : http).get(url, { rejectUnauthorized: false, timeout: 5000 }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("timeout", () => req.destroy(new Error("timed out")));
        req.on("error", reject);
      }).catch((e: Error) => {
        throw new AzgateError("connection_failed", `${url.href}: ${e.message}`);
      });
      if (status !== 200) throw new AzgateError("connection_failed", `${url.href} answered ${status}`);
      print(`${url.href}: ok${recorded ? ` (${recorded.mode})` : ""}`);
    }),
  );
}
