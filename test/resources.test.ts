import path from "node:path";
import { describe, expect, it } from "vitest";
import { readdirSync, readFileSync } from "node:fs";
import { parseResources } from "../src/resources/parse.ts";
import { connectorRoles, withoutSecrets, type Connector } from "../src/resources/connector.ts";

const SEED = path.resolve(import.meta.dirname, "fixtures/seed");

function problem(text: string): string {
  try {
    parseResources(text, "role.yaml");
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("expected the resource to be refused");
}

describe("role files", () => {
  it.each(readdirSync(SEED).filter((f) => f.endsWith(".yaml") && readFileSync(`${SEED}/${f}`, "utf8").includes("kind: role")))(
    "seed file %s loads as written",
    (file) => {
      const { resources } = parseResources(readFileSync(`${SEED}/${file}`, "utf8"), file);
      expect(resources).toHaveLength(1);
      expect(resources[0].kind).toBe("role");
    },
  );

  it("refuses * in allow.azure_identities with Teleport's message", () => {
    const msg = problem("kind: role\nversion: v5\nmetadata: {name: bad}\nspec:\n  allow:\n    azure_identities: ['*']\n");
    expect(msg).toBe('role.yaml (role "bad"): spec.allow.azure_identities[0]: wildcard matcher is not allowed in allow.azure_identities');
  });

  it("refuses partial globs in deny.azure_identities", () => {
    expect(problem("kind: role\nversion: v5\nmetadata: {name: bad}\nspec:\n  deny:\n    azure_identities: ['/subscriptions/*']\n")).toContain("only a whole '*'");
  });

  it("names an unknown field", () => {
    expect(problem("kind: role\nversion: v5\nmetadata: {name: r}\nspec:\n  allow:\n    azure_identitiez: [x]\n")).toContain("spec.allow.azure_identitiez: unknown field");
  });

  it("names an unknown kind", () => {
    expect(problem("kind: rolez\nversion: v5\nmetadata: {name: r}\nspec: {}\n")).toContain('unknown kind "rolez"');
  });

  it("reports malformed YAML with its position", () => {
    expect(problem("kind: role\nmetadata: {name: r\nspec: [\n")).toMatch(/role.yaml: malformed YAML \(line \d+, column \d+\)/);
  });

  it("refuses a bad version, a bad TTL, a bad regex and an unknown template", () => {
    expect(problem("kind: role\nversion: v4\nmetadata: {name: r}\nspec: {}\n")).toContain("version: version must be v5, v6 or v7");
    expect(problem("kind: role\nversion: v5\nmetadata: {name: r}\nspec: {options: {max_session_ttl: forever}}\n")).toContain("spec.options.max_session_ttl");
    expect(problem("kind: role\nversion: v5\nmetadata: {name: r}\nspec: {allow: {app_labels: {env: '^(prod$'}}}\n")).toContain("invalid regular expression");
    expect(problem("kind: role\nversion: v5\nmetadata: {name: r}\nspec: {allow: {azure_identities: ['{{email.local(external.email)}}']}}\n")).toContain("unsupported template");
  });

  it("validates every document before accepting any", () => {
    const msg = problem("kind: role\nversion: v5\nmetadata: {name: ok}\nspec: {}\n---\nkind: role\nversion: v5\nmetadata: {name: bad}\nspec: {allow: {azure_identities: ['*']}}\n");
    expect(msg).toContain("role.yaml: document 2");
  });

  it("accepts Teleport-only fields and reports them as ignored", () => {
    const { warnings } = parseResources("kind: role\nversion: v7\nmetadata: {name: r}\nspec:\n  allow:\n    logins: [root]\n    app_labels: {'*': '*'}\n  options: {forward_agent: true}\n", "r.yaml");
    expect(warnings).toEqual(['role "r": ignored fields not used by azgate: spec.allow.logins, spec.options.forward_agent']);
  });

  it("refuses rule conditions it cannot enforce", () => {
    expect(problem("kind: role\nversion: v7\nmetadata: {name: r}\nspec: {allow: {rules: [{resources: [role], verbs: [list], where: 'x'}]}}\n")).toContain("where: unknown field");
  });
});

describe("connector files", () => {
  const CONNECTORS = path.resolve(import.meta.dirname, "fixtures/connectors");
  const load = (f: string) => readFileSync(`${CONNECTORS}/${f}`, "utf8");

  it("loads the seed guide's github, oidc and saml connectors as written", () => {
    for (const f of ["github.yaml", "oidc.yaml", "saml.yaml"]) {
      const { resources, warnings } = parseResources(load(f), f);
      expect(resources).toHaveLength(1);
      expect(warnings).toEqual([]);
    }
    const [oidc] = parseResources(load("oidc.yaml"), "oidc.yaml").resources as Connector[];
    expect(connectorRoles(oidc)).toEqual(["access", "azure-cli-access"]);
  });

  it("names the field that is wrong", () => {
    const bad = (text: string) => () => parseResources(text, "c.yaml");
    expect(bad(load("oidc.yaml").replace("  issuer_url: https://idp.example.com\n", ""))).toThrow(/c\.yaml \(oidc "myoidc"\): spec\.issuer_url: /);
    expect(bad(load("oidc.yaml").replace("value: my-group", "value: ^my-(group$"))).toThrow(/spec\.claims_to_roles\[0\]\.value: invalid regular expression/);
    expect(bad(load("saml.yaml").replace(/  entity_descriptor_url: .*\n/, ""))).toThrow(/spec\.entity_descriptor: give entity_descriptor or entity_descriptor_url/);
    expect(bad(load("github.yaml").replace("  display: GitHub\n", "  display: GitHub\n  favourite_colour: blue\n"))).toThrow(/spec\.favourite_colour: unknown field/);
    expect(bad(load("github.yaml").replace("version: v3", "version: v9"))).toThrow(/version: version must be v3/);
    expect(bad(load("saml.yaml").replace("roles: [access, azure-cli-access]", "roles: []"))).toThrow(/spec\.attributes_to_roles\[0\]\.roles: roles: give at least one role/);
  });

  it("hides secrets without changing the stored resource", () => {
    const [github] = parseResources(load("github.yaml"), "g").resources as Connector[];
    const shown = withoutSecrets(github);
    expect(JSON.stringify(shown)).not.toContain("github-client-secret-value");
    expect((github.spec as { client_secret: string }).client_secret).toBe("github-client-secret-value");
    const saml = parseResources(load("saml.yaml").replace("  attributes_to_roles:", "  signing_key_pair: {private_key: PRIVATE, cert: CERT}\n  attributes_to_roles:"), "s").resources[0] as Connector;
    expect(JSON.stringify(withoutSecrets(saml))).not.toContain("PRIVATE");
    expect(JSON.stringify(withoutSecrets(saml))).toContain("CERT");
  });
});

describe("known field-name mistakes", () => {
  it("says which field was meant", () => {
    const oidc = (rule: string) => `kind: oidc\nversion: v3\nmetadata: {name: corp}\nspec:\n  issuer_url: https://idp.example.com\n  client_id: a\n  client_secret: b\n  redirect_url: https://p.example.com/v1/webapi/oidc/callback\n  claims_to_roles:\n    - ${rule}\n`;
    expect(() => parseResources(oidc("{name: groups, value: admins, roles: [access]}"), "oidc.yaml")).toThrow('spec.claims_to_roles[0].name: unknown field; did you mean "claim"?');
    const github = "kind: github\nversion: v3\nmetadata: {name: gh}\nspec:\n  client_id: a\n  client_secret: b\n  redirect_url: https://p.example.com/v1/webapi/github/callback\n  teams_to_roles:\n    - {org: octocats, team: admins, roles: [access]}\n";
    expect(() => parseResources(github, "gh.yaml")).toThrow('spec.teams_to_roles[0].org: unknown field; did you mean "organization"?');
    const role = "kind: role\nversion: v7\nmetadata: {name: r}\nspec: {allow: {azure_identity: [x]}}\n";
    expect(() => parseResources(role, "r.yaml")).toThrow('did you mean "azure_identities"?');
  });
});

