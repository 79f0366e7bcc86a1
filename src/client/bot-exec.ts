/**
 * `azgate bot exec -- COMMAND ...`: join as the bot, open its app session in
 * memory, log az in to the session's identity when az is installed (into
 * the session's own config directory), run the command with the
 * environment `azgate exec` gives (the job's own Azure and CI credentials
 * removed, the CI token's variable too), and answer with its exit code.
 * The run carries one invocation ID, as `azgate exec` does, so the audit's
 * command view folds its requests together. Everything is removed at the end.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { AzgateError } from "../errors/index.ts";
import { azVersion, findAz, runChild, usesMsal } from "./az.ts";
import { joinAsBot, openBotApp, type BotOptions } from "./bot-session.ts";
import { tokenVariables } from "./ci-token.ts";
import { execEnv } from "./exec-env.ts";

export interface BotExecOptions {
  bot: BotOptions;
  app: { app?: string; azureIdentity?: string; outputDir?: string };
  command: string[];
  azLogin: boolean;
  log?: (line: string) => void;
}

export async function botExec(o: BotExecOptions): Promise<number> {
  // az's version decides its login flag; learnt while the bot joins (az is slow to start), in a config dir of its own.
  const az = o.azLogin ? installedAz() : null;
  const versionDir = az ? mkdtempSync(path.join(os.tmpdir(), "azgate-az-")) : null;
  const version = az ? azVersion(az, versionDir!).finally(() => rmSync(versionDir!, { recursive: true, force: true })) : null;
  version?.catch(() => undefined);
  const bot = await joinAsBot(o.bot);
  const invocation = { id: crypto.randomUUID(), program: path.basename(o.command[0]) };
  const session = await openBotApp(bot, { ...o.app, invocation, log: o.log });
  try {
    // The job's environment, minus the CI token's own variable: the command never sees it.
    const dropped = new Set(tokenVariables({ method: bot.method, idTokenEnv: o.bot.idTokenEnv }));
    const parent = Object.fromEntries(Object.entries(process.env).filter(([k]) => !dropped.has(k)));
    const env = execEnv(parent, { sessionEnv: session.env, identity: session.identity, tenant: session.tenant, clientId: session.clientId, cloud: session.cloud });
    if (az) await loginAz(az, await version, env, session.identity);
    else if (o.azLogin) o.log?.("az is not installed: no az login");
    return (await runChild(o.command[0], o.command.slice(1), env)).code;
  } finally {
    await session.close();
  }
}

function installedAz(): string | null {
  try {
    return findAz();
  } catch {
    return null;
  }
}

/** az login --identity into the session's config dir (az needs an account to run most commands); nothing printed but its failure. */
async function loginAz(az: string, version: string | null, env: Record<string, string>, identity: string): Promise<void> {
  // As apps login does: az 2.73+ (MSAL) takes --resource-id, older ones --username.
  const flag = usesMsal(version) ? "--resource-id" : "--username";
  const res = await runChild(az, ["login", "--identity", flag, identity, "--output", "none"], env);
  if (res.code !== 0) throw new AzgateError("login_failed", `az login --identity for ${identity} failed (exit ${res.code}); run with --no-az-login to skip it`);
}
