/**
 * An agent's tenant ID cannot reach a user's shell (issue 29, defect 10):
 * tenant, client and principal IDs are GUIDs wherever they enter (the
 * agent's AZURE_TENANT_ID, its heartbeat, its identity_facts answer, the
 * apps login answer the workstation stores, and the session on disk), and
 * `proxy azure` quotes every value for each shell format
 * (src/cli/shell-exports.ts) so that hostile text reads back as itself and
 * runs nothing.
 *
 * sh (dash) and bash run here and evaluate the printed exports. PowerShell
 * and cmd do not: their lines are read by small readers written from
 * Microsoft's documentation (about_Quoting_Rules, with the typographic
 * quotes PowerShell's tokenizer also takes; the set command's special
 * characters and the command line's % and ! expansion), which refuse
 * anything that would run or expand. So is fish's single-quote rule
 * (fish's documentation: \' and \\ are the only escapes inside '...').
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { exportLines } from "../src/cli/shell-exports.ts";
import { escapeControl } from "../src/cli/output.ts";
import { exportsIn } from "../src/cli/commands/env.ts";
import { heartbeatRequest as heartbeatSchema } from "../src/api/control.ts";
import { agentTenant } from "../src/agent/server.ts";
import { askIdentityFacts } from "../src/proxy/identity-facts.ts";
import { AppRegistry } from "../src/proxy/registry.ts";
import { identityFactsProblem } from "../src/client/app-store.ts";
import { loginApp, type UserSession } from "../src/client/azure-session.ts";
import { memoryPair } from "../src/tunnel/memory.ts";
import { respondJsonMeta } from "../src/tunnel/index.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { tempDir } from "./helpers/azgate.ts";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const ID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader";

/** What a malicious or compromised agent would announce as its tenant: each shell's metacharacters and a way out of its quotes. */
const HOSTILE: Record<string, string> = {
  H_SINGLE: `x'; touch pwned-single; echo '`,
  H_DOUBLE: `x"; touch pwned-double; echo "`,
  H_BACKTICK: "x`touch pwned-backtick`",
  H_DOLLAR: "$(touch pwned-dollar)${HOME}$HOME",
  H_PERCENT: "%PATH%%",
  H_CARET: "a^b^",
  H_AMP: "a & touch pwned-amp && b",
  H_PIPE: "a | touch pwned-pipe",
  H_REDIRECT: "a < b > pwned-redirect",
  H_BANG: "!! !x !PATH!",
  H_NEWLINE: "line1\ntouch pwned-newline\n",
  H_BACKSLASH: "a\\'b\\\\'c\\",
  H_SMART: "‘a’ ‚b‛ “c” „d",
  H_PWSH_SMART_ESCAPE: "x” ; New-Item pwned-pwsh ; “",
  H_GLOB: "* ? [a] {a,b} ~ # ;",
  H_TAB: "a\tb",
  H_EMPTY: "",
};

/** Runs the printed exports (as the CLI prints them) in a shell, and reads the variables back. */
function evaluateIn(shell: string, env: Record<string, string>): { values: string[]; dir: string } {
  const dir = tempDir(`azgate-sh-${shell}-`);
  mkdirSync(dir, { recursive: true });
  const names = Object.keys(env);
  const script = `${escapeControl(exportLines(env, "unix"))}\nprintf '%s\\0' ${names.map((n) => `"$${n}"`).join(" ")}\n`;
  const run = spawnSync(shell, ["-c", script], { cwd: dir, env: { PATH: process.env.PATH, HOME: dir }, encoding: "utf8" });
  expect(run.stderr, `${shell}: ${script}`).toBe("");
  expect(run.status).toBe(0);
  return { values: run.stdout.split("\0").slice(0, -1), dir };
}

describe("unix exports, evaluated by the shells here", () => {
  for (const shell of ["sh", "dash", "bash"]) {
    it(`${shell} reads every hostile value back exactly and runs nothing`, () => {
      const { values, dir } = evaluateIn(shell, HOSTILE);
      expect(values).toEqual(Object.values(HOSTILE));
      for (const f of ["pwned-single", "pwned-double", "pwned-backtick", "pwned-dollar", "pwned-amp", "pwned-pipe", "pwned-redirect", "pwned-newline"]) expect(existsSync(path.join(dir, f)), f).toBe(false);
    });
  }

  it('eval "$(azgate env)" takes the exports whole: a value spanning lines is not cut', () => {
    const printout = ["Started Azure proxy on http://127.0.0.1:1.", "", "Use the following environment variables:", "unset AZURE_CLIENT_SECRET", exportLines(HOSTILE, "unix"), ""].join("\n");
    const dir = tempDir("azgate-env-eval-");
    const names = Object.keys(HOSTILE);
    const run = spawnSync("sh", ["-c", `${exportsIn(printout)}\nprintf '%s\\0' ${names.map((n) => `"$${n}"`).join(" ")}`], { cwd: dir, env: { PATH: process.env.PATH }, encoding: "utf8" });
    expect(run.stderr).toBe("");
    expect(run.stdout.split("\0").slice(0, -1)).toEqual(Object.values(HOSTILE));
    expect(existsSync(path.join(dir, "pwned-newline"))).toBe(false);
  });

  it("fish's rule (only \\' and \\\\ are escapes inside single quotes) reads the same words back", () => {
    const lines = exportLines(HOSTILE, "unix");
    for (const [name, value] of Object.entries(HOSTILE)) {
      const line = lines.slice(lines.indexOf(`export ${name}=`));
      expect(readFishWord(line.slice(`export ${name}=`.length)), name).toEqual({ value, rest: expect.stringMatching(/^(\n|$)/) });
    }
  });
});

describe("PowerShell exports, read by the documented quoting rules", () => {
  it("every hostile value is one verbatim string that reads back exactly, with nothing after it", () => {
    const read = readPowershell(exportLines(HOSTILE, "powershell"));
    expect(read).toEqual(Object.entries(HOSTILE));
  });
});

describe("command prompt exports, read by the documented rules", () => {
  const takes = Object.fromEntries(Object.entries(HOSTILE).filter(([, v]) => !/[%!"\r\n]/.test(v)));

  it("< > | & ^ ( ) are escaped: each value reads back exactly as one set command", () => {
    expect(Object.keys(takes)).toEqual(expect.arrayContaining(["H_AMP", "H_PIPE", "H_REDIRECT", "H_CARET", "H_SINGLE", "H_BACKTICK", "H_SMART"]));
    expect(readCmd(exportLines(takes, "command-prompt"))).toEqual(Object.entries(takes));
  });

  it("a value with %, !, a double quote or a line break is refused, naming the variable (cmd expands or cannot quote them)", () => {
    for (const name of ["H_PERCENT", "H_BANG", "H_DOUBLE", "H_NEWLINE", "H_DOLLAR"].filter((n) => !(n in takes))) {
      expect(() => exportLines({ [name]: HOSTILE[name] }, "command-prompt"), name).toThrow(expect.objectContaining({ code: "bad_parameter", message: expect.stringContaining(`${name} holds`) }));
    }
    expect(() => exportLines({ T: "a\rb" }, "command-prompt")).toThrow(/T holds a control character/);
  });
});

describe("tenant, client and principal IDs are GUIDs wherever they enter", () => {
  const hostileTenant = `x'; touch pwned; '`.padEnd(40, "x");

  it("the agent refuses to start with an AZURE_TENANT_ID that is no GUID, and announces none when there is none", () => {
    expect(agentTenant({ AZURE_TENANT_ID: TENANT })).toBe(TENANT);
    expect(agentTenant({})).toBeUndefined();
    expect(() => agentTenant({ AZURE_TENANT_ID: hostileTenant })).toThrow(expect.objectContaining({ code: "config_invalid", message: expect.stringContaining("AZURE_TENANT_ID must be the Entra tenant's ID, a GUID") }));
  });

  it("the proxy refuses a heartbeat whose tenant is no GUID (it took any 64 characters)", () => {
    const beat = { type: "heartbeat", host_name: "agent", version: "1", apps: [{ name: "azure-cli", cloud: "Azure", uri: "cloud://Azure", labels: {} }] };
    expect(heartbeatSchema.safeParse({ ...beat, tenant_id: TENANT }).success).toBe(true);
    const refused = heartbeatSchema.safeParse({ ...beat, tenant_id: hostileTenant });
    expect(refused.success).toBe(false);
    expect(refused.error?.issues[0]).toMatchObject({ path: ["tenant_id"], message: "must be a GUID (the Entra tenant's ID)" });
  });

  it("the proxy takes no identity_facts answer with an ID that is no GUID", async () => {
    const registry = new AppRegistry(new FakeClock());
    const pair = memoryPair({ onStream: (s) => respondJsonMeta(s, { ok: true, client_id: TENANT, principal_id: TENANT, tenant_id: hostileTenant }) });
    registry.heartbeat({ id: "t", hostId: "t", hostName: "agent", session: pair.acceptor, connectedAt: 0 }, [{ name: "azure-cli", cloud: "Azure", uri: "cloud://Azure", labels: {} }]);
    try {
      expect((await askIdentityFacts(registry, "azure-cli", () => true, ID)).facts).toBeNull();
    } finally {
      pair.dialer.close(0, "done");
    }
  });

  it("the workstation stores no apps login answer with an ID that is no GUID (the check it also applies to a session read from disk)", async () => {
    const answers: Record<string, unknown> = {
      "GET /v1/apps": { items: [{ name: "azure-cli", cloud: "Azure", uri: "cloud://Azure", labels: {}, servers: 1, azure_identities: [ID] }] },
      "POST /v1/apps/login": { cert_pem: "unused", expires: new Date(Date.now() + 3_600_000).toISOString(), tenant_id: hostileTenant, client_id: TENANT, principal_id: TENANT },
    };
    const session = { profile: { proxy: "p", user: "alice", cluster: "c" }, clock: new FakeClock(), client: { call: async (method: string, p: string) => answers[`${method} ${p}`] } } as unknown as UserSession;
    const home = tempDir("azgate-home-");
    const before = process.env.AZGATE_HOME;
    process.env.AZGATE_HOME = home;
    try {
      await expect(loginApp(session, "azure-cli", ID)).rejects.toMatchObject({ code: "bad_request", message: expect.stringContaining("the proxy's answer to apps login is not usable: the tenant ID is not a GUID") });
      expect(existsSync(path.join(home, "keys")), "nothing stored").toBe(false);
    } finally {
      if (before === undefined) delete process.env.AZGATE_HOME;
      else process.env.AZGATE_HOME = before;
    }
    expect(identityFactsProblem({ tenant: TENANT, client_id: TENANT })).toBeNull();
    expect(identityFactsProblem({ tenant: TENANT, client_id: "x; rm -rf ~" })).toMatch(/^the client ID is not a GUID/);
    expect(identityFactsProblem({ tenant: TENANT, principal_id: 42 })).toMatch(/^the principal ID is not a GUID/);
  });
});

// ---- Readers written from the shells' documented rules. Each returns what the shell would set, or throws where it would run or expand something.

/** One fish word made of unquoted runs, \' and \\ outside quotes, and '...' (inside: \' and \\ escape, any other backslash is literal). */
function readFishWord(text: string): { value: string; rest: string } {
  let value = "";
  let i = 0;
  while (i < text.length && text[i] !== "\n") {
    const c = text[i];
    if (c === "'") {
      i++;
      while (text[i] !== "'") {
        if (i >= text.length) throw new Error("unterminated quote");
        if (text[i] === "\\" && (text[i + 1] === "'" || text[i + 1] === "\\")) i++;
        value += text[i++];
      }
      i++;
    } else if (c === "\\") {
      value += text[i + 1];
      i += 2;
    } else if (/[A-Za-z0-9_@%+=:,./-]/.test(c)) {
      value += text[i++];
    } else {
      throw new Error(`fish would read ${JSON.stringify(c)} as syntax`);
    }
  }
  return { value, rest: text.slice(i) };
}

const PS_SINGLE = "'\u2018\u2019\u201a\u201b";
const PS_DOUBLE = '"\u201c\u201d\u201e';
/** One character of `set` (past the end is none). */
const isOneOf = (set: string, c: string | undefined) => c !== undefined && c.length === 1 && set.includes(c);

/** `$Env:NAME=<string>` statements, one per line (a string may span lines). */
function readPowershell(text: string): [string, string][] {
  const out: [string, string][] = [];
  let i = 0;
  while (i < text.length) {
    const head = /^\$Env:([A-Za-z_][A-Za-z0-9_]*)=/.exec(text.slice(i));
    if (!head) throw new Error(`not an assignment: ${JSON.stringify(text.slice(i, i + 40))}`);
    i += head[0].length;
    const open = text[i++];
    let value = "";
    if (PS_SINGLE.includes(open)) {
      // Verbatim: no substitution; a quote character followed by another is one quote; otherwise it ends the string.
      for (;;) {
        if (i >= text.length) throw new Error("unterminated string");
        const c = text[i++];
        if (PS_SINGLE.includes(c)) {
          if (!isOneOf(PS_SINGLE, text[i])) break;
          value += text[i++];
        } else value += c;
      }
    } else if (PS_DOUBLE.includes(open)) {
      // Expandable: $ and $( substitute, ` escapes, a doubled quote is one quote.
      for (;;) {
        if (i >= text.length) throw new Error("unterminated string");
        const c = text[i++];
        if (c === "`") value += text[i++];
        else if (c === "$" && /[A-Za-z_({:?^$]/.test(text[i] ?? "")) throw new Error("PowerShell would expand $ in an expandable string");
        else if (PS_DOUBLE.includes(c)) {
          if (!isOneOf(PS_DOUBLE, text[i])) break;
          value += text[i++];
        } else value += c;
      }
    } else throw new Error(`not a string: ${JSON.stringify(open)}`);
    // Nothing may follow on the line: anything would be another statement.
    if (i < text.length && text[i] !== "\n") throw new Error(`PowerShell would run what follows the string: ${JSON.stringify(text.slice(i, i + 40))}`);
    i++;
    out.push([head[1], value]);
  }
  return out;
}

/** `set NAME=VALUE` lines as cmd reads them typed at the prompt. */
function readCmd(text: string): [string, string][] {
  return text.split("\n").map((line) => {
    const head = /^set ([A-Za-z_][A-Za-z0-9_]*)=/.exec(line);
    if (!head) throw new Error(`not a set command: ${JSON.stringify(line)}`);
    const rest = line.slice(head[0].length);
    let value = "";
    for (let i = 0; i < rest.length; i++) {
      const c = rest[i];
      if (c === "%") throw new Error("cmd expands %...% on the command line");
      if (c === "!") throw new Error("cmd expands !...! with delayed expansion");
      if (c === '"') throw new Error("a double quote turns the escapes that follow off");
      if (c === "^") {
        if (i + 1 >= rest.length) throw new Error("a caret at the end continues the line");
        value += rest[++i];
      } else if ("&|<>".includes(c)) throw new Error(`cmd would read ${c} as a command separator, pipe or redirection`);
      else value += c;
    }
    return [head[1], value] as [string, string];
  });
}
