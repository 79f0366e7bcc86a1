import path from "node:path";
import { AzgateError } from "../errors/index.ts";
import { ApiClient } from "../api/client.ts";
import { loadCredentials, loadProfile } from "../client/profile.ts";
import { systemClock } from "../util/clock.ts";
import { profileApiClient } from "../client/rotation.ts";
import { run } from "./run.ts";

export interface AdminArgs {
  "data-dir"?: string;
  config?: string;
}

/** Runs `fn` with a connection to the cluster and always closes it. */
export function withAdmin<A extends AdminArgs>(fn: (conn: AdminConnection, argv: A) => Promise<void>) {
  return run<A>(async (argv) => {
    const conn = await connectAdmin({ dataDir: argv["data-dir"], config: argv.config });
    try {
      await fn(conn, argv);
    } finally {
      await conn.close();
    }
  });
}

export interface AdminConnection {
  client: ApiClient;
  close(): Promise<void>;
}

/**
 * How admin commands reach the cluster:
 *  - `--data-dir` with a proxy running on it: through that proxy, as the local admin;
 *  - `--data-dir` with no proxy: the same API, in this process, on the locked backend;
 *  - otherwise: through the proxy of the current login profile.
 */
export async function connectAdmin(opts: { dataDir?: string; config?: string }): Promise<AdminConnection> {
  // Loaded only here: the offline path runs the proxy's API in this process, which the
  // everyday commands (status, apps ls) must not pay for at start-up.
  if (opts.dataDir) return (await import("./connect-local.ts")).connectLocal(path.resolve(opts.dataDir), opts.config);
  return { client: await profileClient(), close: async () => undefined };
}

export async function profileClient(): Promise<ApiClient> {
  const profile = await loadProfile();
  const creds = profile ? await loadCredentials(profile) : null;
  if (!profile || !creds) {
    throw new AzgateError("unauthenticated", "not logged in; run azgate login --proxy HOST:PORT --user NAME (or, on the proxy host, pass --data-dir)");
  }
  // It follows a rotation of the cluster's CAs at this call (client/rotation.ts).
  return profileApiClient(profile, creds, systemClock);
}
