/**
 * Bots as administrators see them (`azgate admin bots add|ls|rm`): a bot is
 * a user record of kind bot named bot-NAME, with ordinary roles, no
 * password and no invite; everything that reads users (locks, roles, access
 * requests, the audit log) reads it alike. Authorised by the `bot` rule
 * resource, as in Teleport.
 */
import { audit } from "../../audit/events.ts";
import { AzgateError } from "../../errors/index.ts";
import { BOT_NAME, botUserName, checkTraits, isBot, type User } from "../../resources/user.ts";
import { putIfAbsent } from "../../storage/backend.ts";
import { endRequestsOfUser } from "../access-requests.ts";
import { authorize, type Caller } from "../caller.ts";
import type { ProxyContext } from "../context.ts";
import { KEYS } from "../keys.ts";
import { newUserStatus, requireRolesExist } from "../users.ts";

export interface BotView {
  name: string;
  user: string;
  roles: string[];
  created?: string;
}

const view = (u: User): BotView => ({ name: u.metadata.name.replace(/^bot-/, ""), user: u.metadata.name, roles: u.spec.roles, created: u.spec.created_by?.time });

export function checkBotName(name: string): void {
  if (!BOT_NAME.test(name)) throw new AzgateError("bad_parameter", `bot name ${JSON.stringify(name.slice(0, 100))} must be 1-63 lowercase letters, digits, '.', '_' or '-'`);
}

export async function addBot(ctx: ProxyContext, caller: Caller, name: string, roles: string[], traits: Record<string, string[]> = {}): Promise<BotView> {
  authorize(caller, "bot", "create");
  checkBotName(name);
  // Its user would be bot-bot-NAME, which admin lock --bot cannot name.
  if (name.startsWith("bot-")) throw new AzgateError("bad_parameter", `bot name ${JSON.stringify(name)} must not start with bot- (its user name is bot-NAME already): azgate admin bots add ${name.slice(4)}`);
  roles = [...new Set(roles)];
  if (roles.length === 0) throw new AzgateError("bad_parameter", "a bot needs at least one role: --roles azure-deployer");
  traits = checkTraits(traits);
  await requireRolesExist(ctx, roles);
  const user: User = {
    kind: "user",
    version: "v2",
    metadata: { name: botUserName(name) },
    spec: { roles, traits, created_by: { time: ctx.clock.date().toISOString(), user: caller.name } },
    status: { ...newUserStatus(), kind: "bot" },
  };
  if (!(await putIfAbsent(ctx.backend, KEYS.user(user.metadata.name), user))) throw new AzgateError("already_exists", `a bot or user named "${user.metadata.name}" already exists`);
  await ctx.audit.emit(audit("BOT_CREATED", { user: caller.name, name, roles }));
  return view(user);
}

export async function listBots(ctx: ProxyContext, caller: Caller): Promise<BotView[]> {
  authorize(caller, "bot", "list");
  return (await ctx.backend.list<User>(KEYS.users)).map((i) => i.value).filter(isBot).map(view);
}

/** Removes the bot's record: its certificates are refused on their next use (resolveCaller), its access requests end. */
export async function removeBot(ctx: ProxyContext, caller: Caller, name: string): Promise<string> {
  authorize(caller, "bot", "delete");
  checkBotName(name);
  const key = KEYS.user(botUserName(name));
  const item = await ctx.backend.get<User>(key);
  if (!item || !isBot(item.value) || !(await ctx.backend.delete(key))) throw new AzgateError("not_found", `bot "${name}" is not found`);
  await ctx.audit.emit(audit("BOT_DELETED", { user: caller.name, name }));
  await endRequestsOfUser(ctx, caller, botUserName(name));
  return `bot "${name}" has been deleted`;
}
