import type { Argv } from "yargs";
import { DESCRIBE } from "../catalog.ts";
import path from "node:path";
import os from "node:os";
import { startEmulator } from "../../emulator/server.ts";
import { splitHostPort } from "../../util/address.ts";
import { fields, print } from "../output.ts";
import { run, untilSignalled } from "../run.ts";

interface EmulatorArgs {
  world?: string;
  listen: string;
  "proxy-listen": string;
  dir?: string;
}

export function emulatorCommand(y: Argv) {
  return y.command<EmulatorArgs>(
    "emulator",
    DESCRIBE.emulator,
    (a) =>
      a
        .option("world", { type: "string", describe: "World YAML file (default: the seed guide's world)" })
        .option("listen", { type: "string", default: "127.0.0.1:0", describe: "Direct HTTPS address (point the real host names here)" })
        .option("proxy-listen", { type: "string", default: "127.0.0.1:0", describe: "HTTP proxy address (for HTTPS_PROXY clients)" })
        .option("dir", { type: "string", describe: "Where to write the emulator CA (default: a new temp dir)" }),
    run(async (argv) => {
      const direct = splitHostPort(argv.listen, 0);
      const proxy = splitHostPort(argv["proxy-listen"], 0);
      const dir = path.resolve(argv.dir ?? path.join(os.tmpdir(), `azgate-emulator-${process.pid}`));
      const emu = await startEmulator({ dir, worldFile: argv.world, hostname: direct.host, httpsPort: direct.port, proxyPort: proxy.port });
      print(
        [
          "azgate Azure emulator is running.",
          fields([
            ["Tenant", emu.world.tenant_id],
            ["HTTPS", `${direct.host}:${emu.httpsPort}`],
            ["HTTP proxy", `${proxy.host}:${emu.proxyPort}`],
            ["CA", emu.caFile],
          ]),
          "",
          "Point a client at it (its CA is trusted only where you say so):",
          `  export HTTPS_PROXY=http://${proxy.host}:${emu.proxyPort}`,
          `  export NODE_EXTRA_CA_CERTS=${emu.caFile}      # Node, Deno`,
          `  export REQUESTS_CA_BUNDLE=${emu.caFile}       # az, Python`,
          `  export AZURE_TENANT_ID=${emu.world.tenant_id}`,
        ].join("\n"),
      );
      await untilSignalled();
      await emu.close();
    }),
  );
}
