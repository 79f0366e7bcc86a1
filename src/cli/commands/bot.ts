/**
 * `azgate bot exec -- COMMAND ...` and `azgate bot proxy azure`: a CI job's
 * tools through azgate with no Azure credential in the job. The bot joins
 * with its CI's own OIDC token (client/ci-token.ts), gets its app session in
 * memory (client/bot-session.ts), and runs the command with the environment
 * `azgate exec` gives (exec-env.ts), or prints it and stays up, renewing.
 * Nothing is written under the home directory or the workspace.
 */
import type { Argv } from "yargs";
import { DESCRIBE } from "../catalog.ts";
import { systemClock } from "../../util/clock.ts";
import { AzgateError } from "../../errors/index.ts";
import { proxyCaFromArgs, readProxyCaFile } from "../../api/trust.ts";
import { JOIN_METHODS, type JoinMethod } from "../../resources/join-token.ts";
import { execEnv, SCRUBBED } from "../../client/exec-env.ts";
import { print, printErr } from "../output.ts";
import { exportLines, unsetLine, type Shell } from "../shell-exports.ts";
import { run, subcommandNeeded, untilSignalled } from "../run.ts";
import { exitAfterStop } from "../../runtime/index.ts";

export interface BotArgs {
  proxy: string;
  token: string;
  "join-method"?: JoinMethod;
  "ca-pin"?: string;
  "proxy-ca-file"?: string;
  app?: string;
  "azure-identity"?: string;
  audience?: string;
  "id-token-env"?: string;
  "id-token-file"?: string;
  "service-connection"?: string;
  "ci-ca-file"?: string;
  "output-dir"?: string;
  debug?: boolean;
}

/** The flags every bot command takes (test/bot-fixtures.test.ts checks the docs' workflows against them). */
export function botOptions<T>(b: Argv<T>): Argv<T & BotArgs> {
  return b
    .option("proxy", { type: "string", demandOption: true, describe: "The azgate proxy (host:port)" })
    .option("token", { type: "string", demandOption: true, describe: "The bot's join token (its name: kind: token, spec.bot_name)" })
    .option("join-method", { choices: JOIN_METHODS, describe: "How the CI proves the run (default: from the CI's environment: GITHUB_ACTIONS, TF_BUILD, GITLAB_CI, KUBERNETES_SERVICE_HOST)" })
    .option("ca-pin", { type: "string", describe: "The cluster's CA pin (sha256:...), unless the proxy's certificate is from the web PKI" })
    .option("proxy-ca-file", { type: "string", describe: "CA (PEM) of the proxy address's TLS certificate, when an ingress or an operator certificate serves it (AZGATE_PROXY_CA_FILE)" })
    .option("app", { type: "string", describe: "The app, when the bot may use several" })
    .option("azure-identity", { type: "string", describe: "The Azure identity (resource ID or name), when the bot may use several" })
    .option("audience", { type: "string", describe: "The audience to ask the CI for (default: what the proxy says, its cluster's name)" })
    .option("id-token-env", { type: "string", describe: "gitlab: the job's id_tokens variable (default AZGATE_ID_TOKEN)" })
    .option("id-token-file", { type: "string", describe: "kubernetes: the projected service-account token (default /var/run/secrets/tokens/azgate)" })
    .option("service-connection", { type: "string", describe: "azure_devops: join with this service connection's token instead of the pipeline's" })
    .option("ci-ca-file", { type: "string", describe: "github, azure_devops: CA (PEM) of the CI's token service, when a company CA serves it (GitHub Enterprise Server, Azure DevOps Server); the web PKI is trusted anyway" })
    .option("output-dir", { type: "string", describe: "Keep the clients' files here (the local CA's certificate, a CA bundle, az's config dir; azgate writes no key or token there) instead of a temporary directory removed at the end" })
    .option("debug", { type: "boolean", describe: "Log tokens issued, renewals and refusals to stderr" }) as Argv<T & BotArgs>;
}

export function botCommands(y: Argv) {
  return y.command("bot", DESCRIBE.bot, (b) =>
    b
      // Everything after -- is the command's, never azgate's.
      .parserConfiguration({ "populate--": true })
      .command<BotArgs & { "az-login": boolean; "--"?: string[] }>(
        "exec",
        "Join as the bot with the CI's token, then run a command through azgate as azgate exec does: bot exec --proxy HOST:PORT --token NAME [--app A] [--azure-identity I] -- COMMAND ARGS...",
        (e) => botOptions(e).option("az-login", { type: "boolean", default: true, describe: "When az is installed, log it in to the session's identity first (--no-az-login skips it)" }),
        run(async (argv) => {
          const command = (argv["--"] ?? []).map(String);
          if (command.length === 0) throw new AzgateError("bad_parameter", "azgate bot exec needs a command after --: azgate bot exec --proxy HOST:PORT --token NAME -- COMMAND [ARGS...]");
          const { botExec } = await import("../../client/bot-exec.ts");
          process.exitCode = await botExec({ ...sessionArgs(argv), command, azLogin: argv["az-login"], log: logger(argv.debug) });
        }),
      )
      .command("proxy", "Local proxies for a bot", (p) =>
        p
          .command<BotArgs & { port?: number; format?: Shell }>(
            ["azure", "az"],
            "Join as the bot, start the local Azure proxy, print its environment, and renew in memory until stopped; a refusal (a lock on the bot) ends it",
            (a) =>
              botOptions(a)
                .option("port", { alias: "p", type: "number", describe: "Port of the forward proxy (random when omitted)" })
                .option("format", { alias: "f", choices: ["unix", "powershell", "command-prompt", "text"] as const, describe: "Export syntax (default: unix)" }),
            run(async (argv) => {
              const { joinAsBot, openBotApp } = await import("../../client/bot-session.ts");
              const bot = await joinAsBot(sessionArgs(argv).bot);
              let refused: (e: AzgateError) => void = () => undefined;
              const ended = new Promise<AzgateError>((resolve) => (refused = resolve));
              const session = await openBotApp(bot, { ...sessionArgs(argv).app, port: argv.port, log: logger(argv.debug), onRefused: (e) => refused(e) });
              const exports = execEnv({}, { sessionEnv: session.env, identity: session.identity, tenant: session.tenant, clientId: session.clientId, cloud: session.cloud });
              const format = argv.format ?? "unix";
              const signalled = untilSignalled();
              print(
                [
                  `Bot "${bot.bot}" joined (${bot.method}); Azure proxy on http://127.0.0.1:${session.proxy.port} (app "${session.app}", identity ${session.identity}), renewed in memory until stopped.`,
                  ...session.wrote.map((w) => `Wrote ${w}.`),
                  ``,
                  ...[unsetLine(SCRUBBED.filter((n) => !(n in exports)), format) ?? []].flat(),
                  exportLines(exports, format),
                ].join("\n"),
              );
              const why = await Promise.race([signalled.then(() => null), ended]);
              // The refusal is answered to the client that met it before the proxy goes (a second, on the runtime's timer: I/O, not access).
              if (why) await new Promise((r) => setTimeout(r, 1000));
              await session.close();
              if (why) {
                printErr(`ERROR: the proxy refused bot "${bot.bot}": ${why.message}; the Azure proxy stopped.`);
                process.exitCode = 1;
              }
              exitAfterStop();
            }),
          )
          .demandCommand(...subcommandNeeded("bot proxy")),
      )
      .demandCommand(...subcommandNeeded("bot")),
  );
}

function sessionArgs(argv: BotArgs) {
  return {
    bot: {
      proxy: argv.proxy,
      token: argv.token,
      method: argv["join-method"],
      caPin: argv["ca-pin"],
      proxyCaPems: proxyCaFromArgs(argv["proxy-ca-file"]),
      audience: argv.audience,
      idTokenEnv: argv["id-token-env"],
      idTokenFile: argv["id-token-file"],
      serviceConnection: argv["service-connection"],
      caPems: argv["ci-ca-file"] ? readProxyCaFile(argv["ci-ca-file"], "--ci-ca-file") : undefined,
      env: process.env,
      clock: systemClock,
    },
    app: { app: argv.app, azureIdentity: argv["azure-identity"], outputDir: argv["output-dir"] },
  };
}

const logger = (debug?: boolean) => (debug ? (line: string) => process.stderr.write(`[azgate bot] ${line}\n`) : undefined);
