import type { Argv } from "yargs";
import { DESCRIBE } from "../catalog.ts";
import { rmSync } from "node:fs";
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
        .option("dir", { type: "string", describe: "Where to keep the emulator's CA, blobs and az state (default: a temp dir, removed on exit)" }),
    run(async (argv) => {
      const direct = splitHostPort(argv.listen, 0);
      const proxy = splitHostPort(argv["proxy-listen"], 0);
      const dir = path.resolve(argv.dir ?? path.join(os.tmpdir(), `azgate-emulator-${process.pid}`));
      const emu = await startEmulator({ dir, worldFile: argv.world, hostname: direct.host, httpsPort: direct.port, proxyPort: proxy.port });
      const proxyUrl = `http://${proxy.host}:${emu.proxyPort}`;
      const w = emu.world;
      // A service account some identity trusts (federated credential): the emulator writes and rotates its token, as AKS does.
      const federated = w.identities.flatMap((id) => id.federated_credentials.map((fc) => ({ id, sa: /^system:serviceaccount:([^:]+):(.+)$/.exec(fc.subject) }))).find((x) => x.sa);
      const tokenFile = path.join(dir, "sa-token");
      const projection = federated?.sa ? await emu.issuer.project(tokenFile, { namespace: federated.sa[1], serviceAccount: federated.sa[2] }) : null;
      const pad = Math.max(...w.identities.map((i) => i.name.length), 4);
      // Listening for signals before the banner: a supervisor (or a test) may stop us the moment it reads it.
      const signalled = untilSignalled();
      print(
        [
          "azgate Azure emulator is running.",
          fields([
            ["Tenant", w.tenant_id],
            ["HTTPS", `${direct.host}:${emu.httpsPort}`],
            ["HTTP proxy", `${proxy.host}:${emu.proxyPort}`],
            ["CA", emu.caFile],
          ]),
          "",
          "Point a client at it: paste these into a shell (its CA is trusted only where you say so):",
          `  export HTTPS_PROXY=${proxyUrl}`,
          `  export HTTP_PROXY=${proxyUrl}          # IMDS is plain HTTP: without it, az login --identity goes to the real 169.254.169.254`,
          "  export NO_PROXY= no_proxy=             # nothing bypasses the emulator",
          `  export REQUESTS_CA_BUNDLE=${emu.caFile}   # az, Python`,
          `  export NODE_EXTRA_CA_CERTS=${emu.caFile}  # Node, Deno`,
          `  export AZURE_CONFIG_DIR=${path.join(dir, "azure")}   # az's state for this emulator, not your own ~/.azure`,
          `  export AZURE_TENANT_ID=${w.tenant_id}`,
          "",
          "Managed identities (az login --identity --username CLIENT_ID, then az group list):",
          ...w.identities.map((i) => `  ${i.name.padEnd(pad)}  ${i.client_id}${w.imds.user_assigned.includes(i.name) ? "" : "  (not on this VM's IMDS; Workload ID only)"}`),
          ...(w.applications.length ? ["", "Applications (client credentials):", ...w.applications.map((ap) => `  ${ap.display_name}  client ID ${ap.client_id}${ap.secret ? `  secret ${ap.secret}` : ""}`)] : []),
          ...(federated
            ? [
                "",
                `An agent against it, with Workload ID (the emulator writes ${federated.sa![1]}/${federated.sa![2]}'s token to ${tokenFile}):`,
                `  AZURE_CLIENT_ID=${federated.id.client_id} AZURE_TENANT_ID=${w.tenant_id} AZURE_FEDERATED_TOKEN_FILE=${tokenFile} AZURE_AUTHORITY_HOST=https://login.microsoftonline.com/ \\`,
                // Its own data dir, beside the emulator's state: the default (/var/lib/azgate) is not a normal user's to write.
                `    azgate start --mode agent --proxy PROXY_HOST:PORT --token JOIN_TOKEN --ca-pin CA_PIN --app azure-cli --data-dir ${path.join(dir, "agent")} \\`,
                `    --azure-connect-to ${direct.host}:${emu.httpsPort} --azure-ca-file ${emu.caFile}`,
              ]
            : []),
        ].join("\n"),
      );
      await signalled;
      try {
        projection?.stop();
        await emu.close();
      } finally {
        // A dir we chose holds only this run's state (blobs can be large): nobody can find it again.
        if (!argv.dir) rmSync(dir, { recursive: true, force: true });
      }
    }),
  );
}
