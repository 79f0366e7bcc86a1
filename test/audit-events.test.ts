/**
 * The audit event registry (src/audit/events.ts), walked: unique codes,
 * Teleport's codes for Teleport's names and none of Teleport's for azgate's
 * own, every event in the sources made through the registry, the proxy's
 * sink refusing what is not registered, and the docs' table generated.
 */
import { describe, expect, it } from "vitest";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { AUDIT_EVENTS, audit, auditEventsMarkdown, severityOf, unregistered } from "../src/audit/events.ts";
import { registeredSink } from "../src/audit/registered.ts";
import type { AuditEvent, AuditSink } from "../src/audit/sink.ts";

const SRC = path.resolve(import.meta.dirname, "../src");
const files = (dir: string): string[] => readdirSync(dir).flatMap((n) => (statSync(path.join(dir, n)).isDirectory() ? files(path.join(dir, n)) : n.endsWith(".ts") ? [path.join(dir, n)] : []));

/** Teleport's codes for the names azgate shares with it (gravitational/teleport lib/events/codes.go). */
const TELEPORT_NAMES: Record<string, string[]> = {
  "user.login": ["T1000I", "T1000W", "T1001I", "T1001W"],
  "user.create": ["T1002I"],
  "user.update": ["T1003I"],
  "user.password_change": ["T1005I"],
  "mfa.add": ["T1006I"],
  "mfa.delete": ["T1007I"],
  "app.session.start": ["T2007I"],
  "access_request.create": ["T5000I"],
  "access_request.review": ["T5002I"],
  "access_request.expire": ["T5005I"],
  "role.created": ["T9000I"],
  "role.deleted": ["T9001I"],
  "role.updated": ["T9002I"],
  "github.created": ["T8000I"],
  "github.deleted": ["T8001I"],
  "github.updated": ["T80002I"],
  "oidc.created": ["T8100I"],
  "oidc.deleted": ["T8101I"],
  "oidc.updated": ["T8102I"],
  "saml.created": ["T8200I"],
  "saml.deleted": ["T8201I"],
  "saml.updated": ["T8202I"],
  "lock.created": ["TLK00I"],
  "lock.deleted": ["TLK01I"],
  "cert.create": ["TC000I"],
  "join_token.create": ["TJT00I"],
  "bot.create": ["TB001I"],
  "bot.update": ["TB002I"],
  "bot.delete": ["TB003I"],
  "bot.join": ["TJ001I", "TJ001E"],
};
/** Teleport codes whose meaning azgate must not take for another event (a subset of codes.go, the families azgate writes in). */
const TELEPORT_CODES = new Set([
  ...Object.values(TELEPORT_NAMES).flat(),
  "T1004I", "T1006I", "T1006W", "T1007I", "T1008I", "T1009I", "T1009W", "T1010I", "T1011W", "T1012I", "T1013I", "T1013W", "T1014W", "T1015I", "T1016I", "T1016W",
  "T2000I", "T2001I", "T2002I", "T2003I", "T2004I", "T2005I", "T2006I", "T2007E", "T2008I", "T2009I", "T2010I", "T2011I", "T2012I", "T2013I",
  "T5001I", "T5003I", "T5004I", "T6000I", "T6001I", "T6002I", "TJ001I", "TJ001E", "TJ002I", "TJ002E", "TB001I", "TB002I", "TB003I",
]);
/** Where azgate's name is Teleport's meaning under another spelling, the code is Teleport's too (user.deleted is Teleport's user.delete; app.request is its app.session.request). */
const SAME_MEANING: Record<string, string> = { T1004I: "user.deleted", T2009I: "app.request", T2009E: "app.request" };

describe("the audit event registry", () => {
  const specs = Object.values(AUDIT_EVENTS);

  it("every code is one event's, its last letter its severity; names are dotted lower case", () => {
    expect(new Set(specs.map((s) => s.code)).size).toBe(specs.length);
    for (const s of specs) {
      expect(s.code, s.event).toMatch(/^(T|AZ)[A-Z0-9]{3,7}[IWE]$/);
      expect(s.event).toMatch(/^[a-z_]+(\.[a-z_]+)+$/);
      expect(["info", "warning", "error"]).toContain(severityOf(s.code));
      expect(s.summary.length).toBeGreaterThan(10);
    }
  });

  it("Teleport's names carry Teleport's codes, and azgate's own events use none of Teleport's", () => {
    for (const s of specs) {
      const teleport = TELEPORT_NAMES[s.event];
      // A Teleport name's event is Teleport's code; a refusal Teleport has no code for is azgate's (AZ...W).
      if (teleport) expect(teleport.includes(s.code) || (s.code.startsWith("AZ") && /[WE]$/.test(s.code)), `${s.event} ${s.code}`).toBe(true);
      else if (TELEPORT_CODES.has(s.code) || SAME_MEANING[s.code]) expect(SAME_MEANING[s.code], `${s.event} takes Teleport's ${s.code}`).toBe(s.event);
      else expect(s.code.startsWith("AZ"), `${s.event} ${s.code}: azgate's own events have AZ codes`).toBe(true);
    }
  });

  it("every event in the sources is made through the registry (audit(ID, ...)): no hand-written event and code", () => {
    const handWritten = files(SRC)
      .filter((f) => !f.endsWith(path.join("audit", "events.ts")) && !f.includes(`${path.sep}emulator${path.sep}`))
      .flatMap((f) => readFileSync(f, "utf8").split("\n").flatMap((line, i) => (/\bevent:\s*["`][a-z_]+\.[a-z_.]+["`].*\bcode:/.test(line) || /\bcode:\s*"(T|AZ)[A-Z0-9]+[IWE]"/.test(line) ? [`${path.relative(SRC, f)}:${i + 1}`] : [])));
    expect(handWritten).toEqual([]);
  });

  it("the proxy's sink refuses an unregistered name or code, a name with another's code, or a missing field, and stores nothing", async () => {
    const stored: unknown[] = [];
    const inner: AuditSink = { emit: async (e) => void stored.push(e), emitLater: async (e) => void stored.push(e), search: async () => [], prune: async () => ({ events: 0, oldest: null }), oldest: async () => null, readAfter: async (cursor) => ({ events: [], cursor }), close: async () => undefined };
    const sink = registeredSink(inner);
    await expect(sink.emit({ event: "made.up", code: "AZ9999I" })).rejects.toMatchObject({ code: "internal", message: expect.stringContaining("is not registered") });
    await expect(sink.emit({ event: "user.login", code: "T5000I", user: "x" } as Omit<AuditEvent, "time">)).rejects.toMatchObject({ message: expect.stringContaining("does not go with code T5000I") });
    await expect(sink.emitLater({ event: "app.request", code: "T2009I", user: "x" })).rejects.toMatchObject({ message: expect.stringContaining("lacks app, azure_identity") });
    expect(stored).toEqual([]);
    await sink.emit(audit("LOCK_DELETED", { user: "root", name: "l1" }));
    expect(stored).toEqual([{ event: "lock.deleted", code: "TLK01I", user: "root", name: "l1" }]);
    expect(unregistered({ event: "lock.deleted", code: "TLK01I", user: "root", name: "l1" })).toBeNull();
  });

  it("docs/audit-events.md is the registry's table (npm run docs writes it)", () => {
    expect(readFileSync(path.resolve(import.meta.dirname, "../docs/audit-events.md"), "utf8")).toBe(auditEventsMarkdown());
  });
});
