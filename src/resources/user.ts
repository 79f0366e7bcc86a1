import { z } from "zod";
import { AzgateError } from "../errors/index.ts";
import { identityIdProblem, requireIdentityId } from "../azure/resource-id.ts";

export const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/;

/**
 * What traits may hold, wherever they come from (an administrator through
 * the API or a file, an SSO login's claims): traits travel in every
 * certificate and stored user, so they are bounded, and they are printable
 * text (no control characters: NUL above all, which PostgreSQL refuses,
 * so the same input is refused alike on either backend).
 */
export const TRAIT_LIMITS = { nameChars: 128, valueChars: 1024, valuesPerTrait: 256, traits: 128 };
const CONTROL = /[\x00-\x1f\x7f]/;
export const traitNameOk = (name: string) => name.length > 0 && name.length <= TRAIT_LIMITS.nameChars && !CONTROL.test(name);
export const traitValueOk = (value: string) => value.length <= TRAIT_LIMITS.valueChars && !CONTROL.test(value);

/** Why `traits` cannot be a user's traits, or null when they can. */
export function traitsProblem(traits: unknown): string | null {
  if (typeof traits !== "object" || traits === null || Array.isArray(traits)) return "traits must be a mapping of trait names to lists of strings";
  const entries = Object.entries(traits);
  if (entries.length > TRAIT_LIMITS.traits) return `a user has at most ${TRAIT_LIMITS.traits} traits`;
  for (const [name, values] of entries) {
    if (!traitNameOk(name)) return `trait name ${JSON.stringify(name.slice(0, 64))} must be 1-${TRAIT_LIMITS.nameChars} characters with no control characters`;
    if (!Array.isArray(values) || values.some((v) => typeof v !== "string")) return `trait "${name}" must be a list of strings`;
    if (values.length > TRAIT_LIMITS.valuesPerTrait) return `trait "${name}" has more than ${TRAIT_LIMITS.valuesPerTrait} values`;
    const bad = values.find((v) => !traitValueOk(v));
    if (bad !== undefined) return `trait "${name}" has the value ${JSON.stringify(bad.slice(0, 64))}: values are at most ${TRAIT_LIMITS.valueChars} characters, with no control characters (NUL included)`;
  }
  return null;
}

/** `traits`, checked: refused with bad_parameter (400) before anything is stored. */
export function checkTraits(traits: unknown): Record<string, string[]> {
  const problem = traitsProblem(traits);
  if (problem) throw new AzgateError("bad_parameter", problem);
  return traits as Record<string, string[]>;
}

export interface User {
  kind: "user";
  version: "v2";
  /** `expires` is set on users made by an SSO login: they last as long as their certificate. */
  metadata: { name: string; description?: string; labels?: Record<string, string>; expires?: string };
  spec: {
    roles: string[];
    traits: Record<string, string[]>;
    /** `user` for users an administrator made; `connector` for users an SSO login made (as in Teleport). */
    created_by?: { time: string; user?: string; connector?: { type: string; id: string; identity: string; subject?: string } };
  };
  /**
   * Set by the proxy, never taken from a file: a random id for this user
   * record and a credential generation that a reset bumps. Certificates carry
   * both, so a certificate outlives neither a deleted-and-recreated user of
   * the same name nor a reset.
   */
  status?: UserStatus;
}

export interface UserStatus {
  id: string;
  generation: number;
  /**
   * "bot" for a bot (azgate admin bots add): a user record with ordinary
   * roles, whose certificates come only from a join with its CI's token
   * (proxy/bots/), never from a password, an invite or SSO. Set by the
   * proxy, never taken from a file: people have none.
   */
  kind?: "bot";
}

/** A bot's name (as join tokens' bot_name name it). */
export const BOT_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/** A bot's user record is bot-NAME, as Teleport names them: a bot never takes a person's name. */
export const botUserName = (bot: string) => `bot-${bot}`;
/**
 * The user a lock on bot `bot` targets (\`admin lock --bot NAME\`): the bot's
 * name as \`admin bots ls\` shows it, never its user name (bot-NAME) nor
 * another spelling, which would lock a user no bot is.
 */
export function botLockUser(bot: string): string {
  if (/^bot-/i.test(bot)) throw new AzgateError("bad_parameter", `--bot takes the bot's name, not its user name: --bot ${JSON.stringify(bot.slice(4, 104))} (azgate admin bots ls), or --user ${JSON.stringify(bot.slice(0, 100))}`);
  if (!BOT_NAME.test(bot)) throw new AzgateError("bad_parameter", `bot name ${JSON.stringify(bot.slice(0, 100))} must be 1-63 lowercase letters, digits, '.', '_' or '-' (azgate admin bots ls)`);
  return botUserName(bot);
}
/** Whether a user record is a bot's. */
export const isBot = (user: User | null | undefined): boolean => user?.status?.kind === "bot";

export const userSchema = z.strictObject({
  kind: z.literal("user"),
  version: z.literal("v2", { message: "version must be v2" }),
  metadata: z.strictObject({
    name: z.string().regex(USER_NAME, "name must be 1-128 letters, digits, '.', '_', '@', '+' or '-'"),
    description: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    revision: z.string().optional(),
  }),
  spec: z.strictObject({
    roles: z.array(z.string().min(1)).default([]),
    traits: z
      .record(z.string(), z.array(z.string()))
      .default({})
      .superRefine((traits, ctx) => {
        const problem = traitsProblem(traits);
        if (problem) ctx.addIssue({ code: "custom", message: problem });
        (traits.azure_identities ?? []).forEach((id, i) => {
          const problem = identityIdProblem(id);
          if (problem) ctx.addIssue({ code: "custom", path: ["azure_identities", i], message: `${JSON.stringify(id)} ${problem}` });
        });
      }),
    created_by: z.unknown().optional(),
    status: z.unknown().optional(),
  }),
  // Ignored on input: the proxy keeps the stored record's own.
  status: z.unknown().optional(),
});

/**
 * The `azure_identities` trait (what `{{internal.azure_identities}}` expands
 * to) where it enters, from an administrator or an identity provider: every
 * value an identity ID in the one grammar (azure/resource-id.ts), or
 * `bad_parameter` naming the bad one. Other traits are free text; where a
 * role builds an identity from them, the engine checks what it expands to.
 */
export function checkIdentityTrait(values: unknown, where = "trait azure_identities"): void {
  if (values === undefined) return;
  if (!Array.isArray(values)) throw new AzgateError("bad_parameter", `${where} must be a list of Azure identity resource IDs`);
  values.forEach((v, i) => requireIdentityId(v, `${where}[${i}]`));
}
