import path from "node:path";
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { allowedAzureIdentities, checkAppAccess, checkAzureIdentity, checkRule, expandTemplate, matchLabels, sessionTtlMs, PRESET_ROLES, type Role } from "../src/rbac/index.ts";
import { parseResources } from "../src/resources/parse.ts";

const SUB = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities";
const READER = `${SUB}/teleport-reader`;
const WRITER = `${SUB}/teleport-writer`;
const app = { name: "azure-cli", labels: { env: "prod", team: "platform" } };

function role(name: string, spec: Role["spec"]): Role {
  return { kind: "role", version: "v7", metadata: { name }, spec };
}
const fixture = (f: string) => parseResources(readFileSync(path.join(import.meta.dirname, "fixtures/seed", f), "utf8"), f).resources[0] as Role;

describe("azure identity matching", () => {
  it("allows a listed identity ignoring case, and returns it as written", () => {
    const roles = [role("r", { allow: { app_labels: { "*": "*" }, azure_identities: [READER] } })];
    expect(checkAzureIdentity(roles, {}, app, READER.toUpperCase()).allowed).toBe(true);
    expect(allowedAzureIdentities(roles, {})).toEqual([READER]);
  });

  it("refuses an identity no role lists", () => {
    const roles = [role("r", { allow: { app_labels: { "*": "*" }, azure_identities: [READER] } })];
    const d = checkAzureIdentity(roles, {}, app, WRITER);
    expect(d.allowed).toBe(false);
    expect(d.reason).toContain("no role allows Azure identity");
  });

  it("deny of a specific identity wins over allow, in any case spelling", () => {
    const roles = [
      role("allow", { allow: { app_labels: { "*": "*" }, azure_identities: [READER, WRITER] } }),
      role("deny", { deny: { azure_identities: [WRITER.toLowerCase()] } }),
    ];
    expect(checkAzureIdentity(roles, {}, app, WRITER).allowed).toBe(false);
    expect(checkAzureIdentity(roles, {}, app, WRITER).reason).toContain('role "deny"');
    expect(checkAzureIdentity(roles, {}, app, READER).allowed).toBe(true);
    expect(allowedAzureIdentities(roles, {})).toEqual([READER]);
  });

  it("deny * removes every identity (the no-azure-identities seed role)", () => {
    const roles = [fixture("azure-cli-access-static.yaml"), fixture("no-azure-identities.yaml")];
    const id = roles[0].spec.allow!.azure_identities![0];
    expect(checkAzureIdentity(roles, {}, app, id).allowed).toBe(false);
    expect(checkAzureIdentity(roles, {}, app, id.toUpperCase()).reason).toContain("denies all Azure identities");
    expect(allowedAzureIdentities(roles, {})).toEqual([]);
    // The app itself stays allowed: deny * is about identities only.
    expect(checkAppAccess(roles, {}, app).allowed).toBe(true);
  });

  it("a wildcard value arriving through a trait never grants in allow", () => {
    const roles = [fixture("azure-cli-access-internal.yaml")];
    expect(allowedAzureIdentities(roles, { azure_identities: ["*"] })).toEqual([]);
    expect(checkAzureIdentity(roles, { azure_identities: ["*"] }, app, READER).allowed).toBe(false);
  });

  it("the app and the identity must be allowed by the same role", () => {
    const roles = [
      role("dev-ids", { allow: { app_labels: { env: "dev" }, azure_identities: [WRITER] } }),
      role("prod-apps", { allow: { app_labels: { env: "prod" } } }),
    ];
    expect(checkAppAccess(roles, {}, app).allowed).toBe(true);
    expect(checkAzureIdentity(roles, {}, app, WRITER).allowed).toBe(false);
    expect(checkAzureIdentity(roles, {}, { name: "dev", labels: { env: "dev" } }, WRITER).allowed).toBe(true);
  });

  it("sorts identities and drops duplicates that differ only in case", () => {
    const roles = [role("a", { allow: { azure_identities: [WRITER, READER, READER.toLowerCase()] } })];
    expect(allowedAzureIdentities(roles, {})).toEqual([READER, WRITER]);
  });
});

describe("trait templates", () => {
  it("expands {{internal.azure_identities}} to every value (Teleport's access preset)", () => {
    const access = PRESET_ROLES.find((r) => r.metadata.name === "access")!;
    expect(allowedAzureIdentities([access], { azure_identities: [READER, WRITER] })).toEqual([READER, WRITER]);
    expect(checkAzureIdentity([access], { azure_identities: [READER] }, app, READER).allowed).toBe(true);
  });

  it("expands {{external.azure_identities}} from the same traits", () => {
    const roles = [fixture("azure-cli-access-external.yaml")];
    expect(allowedAzureIdentities(roles, { azure_identities: [READER] })).toEqual([READER]);
  });

  it("an empty or missing trait expands to nothing", () => {
    const roles = [fixture("azure-cli-access-internal.yaml")];
    expect(allowedAzureIdentities(roles, {})).toEqual([]);
    expect(allowedAzureIdentities(roles, { azure_identities: [] })).toEqual([]);
    expect(expandTemplate("{{internal.azure_identities}}", { azure_identities: [""] })).toEqual([]);
  });

  it("templates expand in deny rules too (Teleport's 'allow rule' quirk case)", () => {
    const roles = [
      role("allow", { allow: { app_labels: { "*": "*" }, azure_identities: [READER, WRITER] } }),
      role("deny", { deny: { azure_identities: ["{{external.blocked}}"] } }),
    ];
    expect(allowedAzureIdentities(roles, { blocked: [WRITER] })).toEqual([READER]);
  });

  it("keeps a prefix and suffix around the template", () => {
    expect(expandTemplate(`${SUB}/{{internal.ids}}`, { ids: ["a", "b"] })).toEqual([`${SUB}/a`, `${SUB}/b`]);
  });
});

describe("app labels", () => {
  const cases: [string, Record<string, string | string[]>, boolean][] = [
    ["'*': '*' matches any app", { "*": "*" }, true],
    ["exact value", { env: "prod" }, true],
    ["wrong value", { env: "dev" }, false],
    ["missing key", { region: "eu" }, false],
    ["value *", { env: "*" }, true],
    ["glob", { team: "plat*" }, true],
    ["glob that does not match", { team: "*ops" }, false],
    ["regex", { env: "^(prod|staging)$" }, true],
    ["regex that does not match", { env: "^dev.*$" }, false],
    ["list of values", { env: ["dev", "prod"] }, true],
    ["every key must match", { env: "prod", team: "security" }, false],
  ];
  it.each(cases)("%s", (_name, selector, expected) => {
    expect(matchLabels(selector, app.labels, {}, "allow")).toBe(expected);
  });

  it("an empty selector matches nothing", () => {
    expect(matchLabels({}, app.labels, {}, "allow")).toBe(false);
    expect(matchLabels(undefined, app.labels, {}, "allow")).toBe(false);
  });

  it("label values may be templates", () => {
    expect(matchLabels({ env: "{{internal.envs}}" }, app.labels, { envs: ["prod"] }, "allow")).toBe(true);
    expect(matchLabels({ env: "{{internal.envs}}" }, app.labels, {}, "allow")).toBe(false);
  });

  it("deny app_labels wins over allow", () => {
    const roles = [role("all", { allow: { app_labels: { "*": "*" } } }), role("no-prod", { deny: { app_labels: { env: "prod" } } })];
    const d = checkAppAccess(roles, {}, app);
    expect(d).toEqual({ allowed: false, reason: 'role "no-prod" denies app "azure-cli"' });
  });
});

describe("admin rules", () => {
  const editor = PRESET_ROLES.find((r) => r.metadata.name === "editor")!;
  const access = PRESET_ROLES.find((r) => r.metadata.name === "access")!;
  it("editor may manage roles, users and tokens", () => {
    for (const res of ["role", "user", "token"]) for (const verb of ["list", "read", "create", "update", "delete"]) expect(checkRule([editor], res, verb).allowed).toBe(true);
  });
  it("access may not administer anything", () => {
    expect(checkRule([access], "role", "create").allowed).toBe(false);
    expect(checkRule([access], "user", "list").reason).toContain('"list" on "user"');
  });
  it("every resource the proxy authorises on can be named in a role file, and the built-in roles load as one (lock, bot, cert_authority, rotate)", () => {
    const text = `kind: role\nversion: v7\nmetadata: {name: ops}\nspec: {allow: {rules: [{resources: [lock, bot, cert_authority], verbs: [list, read, create, delete, rotate]}]}}\n`;
    const [ops] = parseResources(text, "test").resources as Role[];
    expect(checkRule([ops], "cert_authority", "rotate").allowed).toBe(true);
    expect(checkRule([ops], "lock", "create").allowed).toBe(true);
    expect(checkRule([ops], "bot", "delete").allowed).toBe(true);
    expect(checkRule([ops], "user", "list").allowed).toBe(false);
    // A preset written out as a file loads: the editor's rules name locks.
    for (const preset of PRESET_ROLES) expect(() => parseResources(JSON.stringify(preset), preset.metadata.name)).not.toThrow();
  });
  it("a deny rule wins over an allow rule", () => {
    const noDelete = role("no-delete", { deny: { rules: [{ resources: ["role"], verbs: ["delete"] }] } });
    expect(checkRule([editor, noDelete], "role", "delete").allowed).toBe(false);
    expect(checkRule([editor, noDelete], "role", "create").allowed).toBe(true);
  });
  it("wildcards in resources and verbs", () => {
    const all = role("all", { allow: { rules: [{ resources: ["*"], verbs: ["*"] }] } });
    expect(checkRule([all], "event", "read").allowed).toBe(true);
  });
});

describe("session TTL", () => {
  it("is the smallest max_session_ttl of the roles, 12h by default", () => {
    expect(sessionTtlMs([])).toBe(12 * 3600_000);
    expect(sessionTtlMs([role("a", {}), role("b", { options: { max_session_ttl: "1h30m" } })])).toBe(90 * 60_000);
  });
});
