import { systemClock } from "../../util/clock.ts";
import { tracingEndpoint } from "../../tracing/index.ts";
import { readProxyCaFile } from "../../api/trust.ts";
import type { Argv } from "yargs";
import { DESCRIBE } from "../catalog.ts";
import path from "node:path";
import { AzgateError } from "../../errors/index.ts";
import { defaultDataDir, loadConfig } from "../../config/load.ts";
import { startProxy } from "../../proxy/server.ts";
import { startAgent } from "../../agent/server.ts";
import type { Config } from "../../config/schema.ts";
import { runtimeVersion } from "../../runtime/index.ts";
import { VERSION } from "../../version.ts";
import { fields, print } from "../output.ts";
import { csv, run, untilSignalled } from "../run.ts";
import { exitAfterStop } from "../../runtime/index.ts";
import { loopbackUrl, removeProbeRecord, writeProbeRecord } from "../../health/probe-record.ts";
import { splitHostPort } from "../../util/address.ts";

interface StartArgs {
  mode: "proxy" | "agent";
  config?: string;
  "data-dir"?: string;
  listen?: string;
  "public-addr"?: string;
  "advertise-addr"?: string;
  "cluster-name"?: string;
  "second-factor"?: string;
  "tls-cert-file"?: string;
  "tls-key-file"?: string;
  proxy?: string;
  token?: string;
  "ca-pin"?: string;
  "proxy-ca-file"?: string;
  "server-names"?: string;
  "trusted-proxies"?: string;
  app?: string;
  "app-cloud"?: string;
  labels?: string;
  "azure-connect-to"?: string;
  "azure-ca-file"?: string;
  "log-level"?: string;
}

export function startCommand(y: Argv) {
  return y.command<StartArgs>(
    "start",
    DESCRIBE.start,
    (a) =>
      a
        .option("mode", { choices: ["proxy", "agent"] as const, demandOption: true, describe: "What to run" })
        .option("config", { alias: "c", type: "string", describe: "YAML config file (then AZGATE_* env, then flags)" })
        .option("data-dir", { type: "string", describe: "State directory" })
        .option("listen", { type: "string", describe: "proxy: address to listen on (host:port)" })
        .option("public-addr", { type: "string", describe: "proxy: address clients and agents reach it by" })
        .option("advertise-addr", { type: "string", describe: "proxy: this replica's own address, for agents to connect to every replica (e.g. the pod IP:3080)" })
        .option("cluster-name", { type: "string", describe: "proxy: cluster name (fixed at first start)" })
        .option("second-factor", { type: "string", describe: "proxy: otp or off" })
        .option("tls-cert-file", { type: "string", describe: "proxy: TLS certificate (default: one from the host CA)" })
        .option("tls-key-file", { type: "string", describe: "proxy: TLS key" })
        .option("trusted-proxies", { type: "string", describe: "proxy: CIDRs of fronts (an Ingress controller) whose X-Forwarded-For names the caller, comma-separated" })
        .option("server-names", { type: "string", describe: "proxy: more names for its self-issued certificate, comma-separated (e.g. the Service name agents dial in-cluster)" })
        .option("proxy", { type: "string", describe: "agent: proxy address" })
        .option("token", { type: "string", describe: "agent: join token" })
        .option("ca-pin", { type: "string", describe: "agent: CA pin of the proxy" })
        .option("proxy-ca-file", { type: "string", describe: "agent: CA (PEM) of the proxy address's TLS certificate, when an ingress or an operator certificate serves it (AZGATE_PROXY_CA_FILE)" })
        .option("app", { type: "string", describe: "agent: app name to serve" })
        .option("app-cloud", { type: "string", describe: "agent: the app's cloud: Azure (default), AzureUSGovernment or AzureChinaCloud" })
        .option("labels", { type: "string", describe: "agent: app labels, k=v,k2=v2" })
        .option("azure-connect-to", { type: "string", describe: "agent: send all Azure connections to host:port (an emulator), keeping host names" })
        .option("azure-ca-file", { type: "string", describe: "agent: CA to trust for --azure-connect-to" })
        .option("diag-addr", { type: "string", describe: "serve /metrics (Prometheus), /healthz and /readyz on this host:port (plain HTTP)" })
        .option("log-level", { type: "string", describe: "agent: the lowest level logged: debug (each forwarded request), info (default), warn or error (AZGATE_LOG_LEVEL)" }),
    run(async (argv) => {
      const config = loadConfig({
        file: argv.config,
        env: process.env,
        flags: [
          [["data_dir"], argv["data-dir"]],
          [["cluster_name"], argv["cluster-name"]],
          [["proxy", "listen"], argv.listen],
          [["proxy", "public_addr"], argv["public-addr"]],
          [["proxy", "advertise_addr"], argv["advertise-addr"]],
          [["proxy", "tls", "cert_file"], argv["tls-cert-file"]],
          [["proxy", "tls", "key_file"], argv["tls-key-file"]],
          [["auth", "second_factor"], argv["second-factor"]],
          [["agent", "proxy_addr"], argv.proxy],
          [["agent", "auth_token"], argv.token],
          [["agent", "ca_pin"], argv["ca-pin"]],
          [["agent", "proxy_ca_file"], argv["proxy-ca-file"]],
          [["proxy", "trusted_proxies"], argv["trusted-proxies"]?.split(",").map((n) => n.trim()).filter(Boolean)],
          [["proxy", "server_names"], argv["server-names"]?.split(",").map((n) => n.trim()).filter(Boolean)],
          [["agent", "apps"], argv.app ? [{ name: argv.app, cloud: argv["app-cloud"] ?? "Azure", labels: parseLabels(argv.labels) }] : undefined],
          [["agent", "connect_to", "address"], argv["azure-connect-to"]],
          [["agent", "connect_to", "ca_file"], argv["azure-ca-file"]],
          [[argv.mode === "agent" ? "agent" : "proxy", "diag_addr"], argv["diag-addr"]],
          [["agent", "log_level"], argv["log-level"]],
        ],
      });
      if (argv.mode === "agent") return runAgent(config);
      const dataDir = path.resolve(config.data_dir ?? defaultDataDir());
      // A mode's start: the one place the machine's clock is chosen (util/clock.ts).
      const proxy = await startProxy({ ...config, data_dir: dataDir }, systemClock);
      // For azgate healthcheck: the diagnostics port when loopback reaches it (plain HTTP, off the busy main port), else the main port.
      const diag = proxy.diagPort ? loopbackUrl("http", splitHostPort(config.proxy.diag_addr!, 3000).host, proxy.diagPort, "/readyz") : null;
      await writeProbeRecord(dataDir, { mode: "proxy", url: diag ?? loopbackUrl("https", splitHostPort(config.proxy.listen, 3080).host, proxy.port, "/readyz") ?? `https://127.0.0.1:${proxy.port}/readyz` });
      // Listening for signals before the banner: a supervisor may stop us the moment it reads it.
      const signalled = untilSignalled();
      print(
        [
          `azgate proxy ${VERSION} (${runtimeVersion()}) is running.`,
          fields([
            ["Cluster", proxy.clusterName],
            ["Listening", `${config.proxy.listen.replace(/:\d+$/, "")}:${proxy.port}`],
            ["Public URL", proxy.publicUrlFrom ? `${proxy.publicUrl} (${proxy.publicUrlFrom === "hostname" ? "this machine's host name" : "listening on loopback"}; links name it: set --public-addr or AZGATE_PUBLIC_ADDR to the address users reach)` : proxy.publicUrl],
            ["CA pin", proxy.caPins.join(", ")],
            ["Data dir", dataDir],
            ...(proxy.diagPort ? [["Diagnostics", `http://${config.proxy.diag_addr!.replace(/:\d+$/, "")}:${proxy.diagPort}/metrics, /healthz, /readyz`] as [string, string]] : []),
          ]),
          ``,
          `Create the first user on this host: azgate admin --data-dir ${dataDir} users add NAME --roles access,editor`,
        ].join("\n"),
      );
      await signalled;
      await proxy.close();
      await removeProbeRecord(dataDir);
      print("azgate proxy stopped.");
      exitAfterStop();
    }),
  );
}

async function runAgent(config: Config): Promise<void> {
  const agent = config.agent;
  const missing = [!agent?.proxy_addr && "agent.proxy_addr (--proxy)", !agent?.apps.length && "agent.apps (--app)"].filter(Boolean);
  if (missing.length || !agent?.proxy_addr) throw new AzgateError("config_invalid", `invalid configuration: missing ${missing.join(", ")}`);
  if (agent.connect_to && !agent.connect_to.ca_file) throw new AzgateError("config_invalid", "agent.connect_to.ca_file (--azure-ca-file): the CA of the address in agent.connect_to is needed");
  const dataDir = path.resolve(agent.data_dir ?? config.data_dir ?? defaultDataDir());
  const running = await startAgent({
    dataDir,
    proxyAddr: agent.proxy_addr,
    token: agent.auth_token,
    caPin: agent.ca_pin,
    proxyCaPems: agent.proxy_ca_file ? readProxyCaFile(agent.proxy_ca_file, "agent.proxy_ca_file") : undefined,
    apps: agent.apps.map((a) => ({ name: a.name, cloud: a.cloud, uri: a.uri, labels: a.labels, ...(a.description ? { description: a.description } : {}) })),
    connectTo: agent.connect_to ? { address: agent.connect_to.address, caFile: agent.connect_to.ca_file } : undefined,
    diagAddr: agent.diag_addr,
    logLevel: agent.log_level,
    clock: systemClock,
    tracingUrl: tracingEndpoint(config.tracing?.endpoint),
  });
  await writeProbeRecord(dataDir, { mode: "agent", url: running.probeUrl });
  const signalled = untilSignalled(); // before the banner, as for the proxy
  print(
    [
      `azgate agent ${VERSION} (${runtimeVersion()}) is running.`,
      fields([
        ["Cluster", running.clusterName],
        ["Host ID", running.hostId],
        ["Proxy", agent.proxy_addr],
        ["Apps", agent.apps.map((a) => a.name).join(", ")],
        ["Azure credentials", running.tokens.mode === "workload" ? "Workload ID (AZURE_* environment)" : "managed identity (IMDS)"],
        ...(agent.connect_to ? [["Azure connect-to", agent.connect_to.address] as [string, string]] : []),
        ...(running.diagPort ? [["Diagnostics", `http://${agent.diag_addr!.replace(/:\d+$/, "")}:${running.diagPort}/metrics, /healthz, /readyz`] as [string, string]] : []),
        ["Data dir", dataDir],
      ]),
    ].join("\n"),
  );
  const fatal = await Promise.race([signalled.then(() => null), running.stopped]);
  await running.close();
  await removeProbeRecord(dataDir);
  exitAfterStop();
  if (fatal) throw fatal;
  print("azgate agent stopped.");
}

export function parseLabels(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of csv(text)) {
    const [k, ...v] = pair.split("=");
    if (!k || v.length === 0) throw new AzgateError("bad_parameter", `--labels: "${pair}" must be key=value`);
    out[k.trim()] = v.join("=").trim();
  }
  return out;
}
