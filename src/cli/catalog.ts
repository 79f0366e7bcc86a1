/**
 * The top-level commands, their one-line descriptions, and the module that
 * defines each. main.ts loads only the module of the command being run (the
 * rest appear in `--help` from these lines), so `azgate --help` or
 * `azgate healthcheck` does not load the proxy, the agent or the Azure SDK.
 */
import type { Argv } from "yargs";

export const DESCRIBE = {
  start: "Run the proxy or the agent",
  login: "Sign in to a cluster and store a certificate",
  logout: "Remove stored credentials",
  status: "Show the current login",
  users: "Your own account",
  apps: "Apps you can use (Azure CLI access)",
  roles: "Explain what your roles allow for an Azure request (azgate roles explain)",
  request: "Access requests: ask for an Azure identity for a while, review others' requests, revoke",
  proxy: "Local proxies for tools other than az",
  az: "Run the Azure CLI through azgate: azgate az ARGS... (after apps login)",
  env: 'Start the local proxy in the background and print its environment for eval "$(azgate env)" (--unset stops it)',
  exec: "Run any tool through azgate with the app session's managed identity: azgate exec [--app NAME] -- COMMAND ARGS... (terraform, Python, Go, SDK scripts)",
  bot: "Bots: a CI job joins with its CI's own OIDC token and runs its tools through azgate (bot exec, bot proxy azure)",
  admin: "Manage the cluster: users, bots, roles, join tokens, audit",
  emulator: "Run the offline Azure emulator (Entra ID, ARM, IMDS, Key Vault, Blob storage)",
  demo: "Run an offline demo: emulated Azure, a proxy and an agent in one process, and you logged in",
  healthcheck: "Exit 0 when a local azgate answers its probe (for container HEALTHCHECK)",
  version: "Print the version",
} as const;

type Register = (y: Argv) => Argv;

/** Each module with the top-level commands it registers (hidden ones listed too, so they load). */
export const MODULES: { commands: string[]; hidden?: string[]; load: () => Promise<Register> }[] = [
  { commands: ["start"], load: async () => (await import("./commands/start.ts")).startCommand },
  { commands: ["login", "logout", "status", "users"], load: async () => (await import("./commands/session.ts")).sessionCommands },
  { commands: ["apps"], load: async () => (await import("./commands/apps.ts")).appsCommands },
  { commands: ["request"], load: async () => (await import("./commands/requests.ts")).requestCommands },
  { commands: ["roles"], load: async () => (await import("./commands/roles.ts")).rolesCommands },
  { commands: ["proxy"], load: async () => (await import("./commands/azure.ts")).proxyCommands },
  { commands: ["bot"], load: async () => (await import("./commands/bot.ts")).botCommands },
  { commands: ["env"], load: async () => (await import("./commands/env.ts")).envCommand },
  { commands: ["admin"], load: async () => (await import("./commands/admin.ts")).adminCommands },
  { commands: ["emulator"], load: async () => (await import("./commands/emulator.ts")).emulatorCommand },
  { commands: ["demo"], hidden: ["demo-client"], load: async () => (await import("./commands/demo.ts")).demoCommands },
  { commands: ["healthcheck"], load: async () => (await import("./commands/healthcheck.ts")).healthcheckCommand },
];
