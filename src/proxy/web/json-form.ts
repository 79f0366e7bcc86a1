/**
 * The pages' scripts that speak WebAuthn post forms and read JSON back
 * (web/assets.ts): the routes that answer them, in one shape. A refusal is
 * JSON with its code and message (the script shows the message); a page
 * without a session (sign-in, the CLI's steps, an invite) is checked for
 * its origin and rate limited by address first.
 */
import type { Context } from "hono";
import { AzgateError, isAzgateError } from "../../errors/index.ts";
import { remoteAddr, type LoginRateLimiter } from "../rate-limit.ts";
import { checkCsrf } from "./session.ts";

type Form = Record<string, unknown>;

/** A refusal as the script reads it; anything not an AzgateError is the server's own failure, thrown on. */
export function jsonError(c: Context, e: unknown) {
  if (!isAzgateError(e)) throw e;
  return c.json({ error: { code: e.code, message: e.message } }, e.status as 400);
}

/** The browser's WebAuthn answer a form field carries (JSON), or undefined when the field is empty. */
export function answerOf(f: Form, field: string): unknown {
  if (typeof f[field] !== "string" || !f[field]) return undefined;
  try {
    return JSON.parse(f[field] as string);
  } catch {
    throw new AzgateError("bad_parameter", `${field}: not the browser's WebAuthn answer`);
  }
}

/** A route a signed-in page's script posts to (the session's CSRF check is the middleware's). */
export function jsonForm<C extends Context>(handler: (c: C, form: Form) => Promise<unknown>) {
  return async (c: C) => {
    try {
      return c.json(await handler(c, await c.req.parseBody()));
    } catch (e) {
      return jsonError(c, e);
    }
  };
}

/** A route a page without a session posts to: its origin checked, its address rate limited. */
export function anonymousJsonForm(limiter: LoginRateLimiter, handler: (c: Context, form: Form, remote: string | undefined) => Promise<unknown>) {
  return async (c: Context) => {
    try {
      checkCsrf(c, null, undefined);
      const remote = remoteAddr(c);
      limiter.check(remote);
      return c.json(await handler(c, await c.req.parseBody(), remote));
    } catch (e) {
      return jsonError(c, e);
    }
  };
}
