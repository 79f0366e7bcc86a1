/**
 * What the proxy's HTTP API reads from a caller, bounded before it is read:
 * bodies are capped by Content-Length and by counting the bytes that arrive
 * (hono's bodyLimit), and JSON routes take only `application/json`, so a
 * cross-site form (a "simple request") cannot post to login, invite or join.
 */
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { AzgateError } from "../errors/index.ts";

export const BODY_LIMITS = {
  /** Login, invites, join, SSO start and pickup: a key, a password, a token. */
  public: 64 * 1024,
  /** A SAML response posted by the browser (signed XML with certificates). */
  samlResponse: 512 * 1024,
  /** Signed calls (admin create takes resource files). */
  authenticated: 1024 * 1024,
};

export function limitBody(maxSize: number): MiddlewareHandler {
  return bodyLimit({
    maxSize,
    onError: () => {
      throw new AzgateError("payload_too_large", `request body is larger than ${maxSize} bytes`);
    },
  });
}

/** Refuses a body that does not say it is JSON (415) on routes that read JSON. */
export const requireJson: MiddlewareHandler = async (c, next) => {
  const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
  const length = c.req.header("content-length");
  const hasBody = length !== undefined ? length !== "0" : c.req.header("transfer-encoding") !== undefined;
  if (hasBody && type !== "application/json") {
    throw new AzgateError("unsupported_media_type", "this endpoint takes Content-Type: application/json");
  }
  await next();
};
