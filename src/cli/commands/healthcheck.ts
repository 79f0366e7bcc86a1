/**
 * `azgate healthcheck [--url URL]`: the container image's HEALTHCHECK (the
 * image has no curl). Exits 0 when the URL answers 200. Loopback only, so
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
import { run } from "../run.ts";

export function healthcheckCommand(y: Argv) {
  return y.command<{ url: string }>(
    "healthcheck",
    DESCRIBE.healthcheck,
    (a) => a.option("url", { type: "string", default: "https://127.0.0.1:3080/readyz", describe: "Probe URL on this machine (agent: http://127.0.0.1:3000/readyz)" }),
    run(async (argv) => {
      const url = new URL(argv.url);
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
      print(`${url.href}: ok`);
    }),
  );
}
