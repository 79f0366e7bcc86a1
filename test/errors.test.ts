/**
 * The error registry: every code has one status, the wire carries exactly
 * that status (the one refusal builder, the API body and its parse back), the
 * request path's classes use registered codes, and docs/tunnel-protocol.md
 * lists every code the request path answers with.
 */
import { describe, expect, it } from "vitest";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import * as errors from "../src/errors/index.ts";
import { AzgateError, ERROR_STATUS, fromErrorBody, toErrorBody, type ErrorCode } from "../src/errors/index.ts";
import { refusal } from "../src/azure/forwarding.ts";

const ROOT = path.resolve(import.meta.dirname, "..");
const codes = Object.keys(ERROR_STATUS) as ErrorCode[];

describe("the error registry", () => {
  it.each(codes)("%s: one status, the same on the wire and back", (code) => {
    const status = ERROR_STATUS[code];
    expect(status >= 400 && status < 600).toBe(true);
    const err = new AzgateError(code, "why");
    expect(err.status).toBe(status);
    const wire = refusal(err, "azgate");
    expect(wire).toEqual({ status, body: { error: { code, message: "azgate: why" } } });
    const back = fromErrorBody(status, toErrorBody(err));
    expect([back.code, back.status]).toEqual([code, status]);
  });

  it("every request-path error class has a registered code", () => {
    const classes = Object.values(errors).filter((v): v is typeof AzgateError & { code?: string } => typeof v === "function" && v.prototype instanceof AzgateError);
    expect(classes.length).toBeGreaterThanOrEqual(12);
    for (const cls of classes) {
      const instance = cls.name === "TokenUnavailable" ? new errors.TokenUnavailable("timeout", "m") : cls.name === "PlaceholderInvalid" ? new errors.PlaceholderInvalid("expired", "m") : new (cls as unknown as new (m: string) => AzgateError)("m");
      expect(codes, cls.name).toContain(instance.code);
      expect(instance.status, cls.name).toBe(ERROR_STATUS[instance.code]);
      if (cls.code) expect(instance.code).toBe(cls.code);
    }
  });

  it("docs/tunnel-protocol.md lists every code the request path answers with, with its status", () => {
    const doc = readFileSync(path.join(ROOT, "docs/tunnel-protocol.md"), "utf8");
    const requestPath: ErrorCode[] = ["bad_request", "access_denied", "unauthenticated", "locked", "method_not_allowed", "target_refused", "host_mismatch", "token_invalid", "token_audience_mismatch", "token_timeout", "token_no_federated_credential", "token_identity_not_found", "token_agent_cannot_read_identity", "token_not_an_identity", "token_entra", "token_unavailable", "target_unreachable", "upstream_failed", "app_unavailable", "agent_unavailable", "audit_unavailable", "azgate_unavailable", "policy_denied"];
    for (const code of requestPath) {
      const row = doc.split("\n").find((l) => l.startsWith("|") && l.includes(`\`${code}\``));
      expect(row, code).toBeDefined();
      expect(row, code).toContain(`| ${ERROR_STATUS[code]} |`);
    }
  });

  it("no error body in the sources names an unregistered code", () => {
    const files = (function walk(dir: string): string[] {
      return readdirSync(dir).flatMap((n) => (statSync(path.join(dir, n)).isDirectory() ? walk(path.join(dir, n)) : n.endsWith(".ts") ? [path.join(dir, n)] : []));
    })(path.join(ROOT, "src")).filter((f) => !f.includes(`${path.sep}emulator${path.sep}`));
    const unregistered: string[] = [];
    for (const f of files) {
      for (const m of readFileSync(f, "utf8").matchAll(/error: \{ code: "([a-z_]+)"/g)) if (!codes.includes(m[1] as ErrorCode)) unregistered.push(`${path.relative(ROOT, f)}: ${m[1]}`);
    }
    expect(unregistered).toEqual([]);
  });
});
