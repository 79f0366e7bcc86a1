import type { Argv } from "yargs";
import { systemClock } from "../../util/clock.ts";
import { DESCRIBE } from "../catalog.ts";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseResources } from "../../resources/parse.ts";
import { AzgateError } from "../../errors/index.ts";
import type { Role } from "../../rbac/types.ts";
import { botLockUser, isBot, type User } from "../../resources/user.ts";
import type { JoinToken } from "../../resources/join-token.ts";
import type { TokenInfo } from "../../proxy/admin.ts";
import { describeTarget, type Lock } from "../../resources/lock.ts";
import { connectorRoles, type Connector } from "../../resources/connector.ts";
import type { NotificationTarget } from "../../resources/notification-target.ts";
import { inviteMessage } from "../../proxy/users.ts";
import { formatDuration } from "../../util/duration.ts";
import { withAdmin, type AdminArgs, type AdminConnection } from "../connect.ts";
import { fields, formatOption, print, printErr, structured, table, type Format } from "../output.ts";
import { csv, run, subcommandNeeded } from "../run.ts";
import { explain, explainOptions, type ExplainArgs } from "./roles.ts";
import { roleSummary } from "./role-summary.ts";
import { adminRequestCommands } from "./requests.ts";
import { auditCommands } from "./audit.ts";
import { backupCommands } from "./backup.ts";
import { authCommands, rotationStatusText } from "./rotate.ts";
import type { ApiClient } from "../../api/client.ts";


/** "roles", "role/NAME" or ("roles", "NAME"). */
function kindAndName(ref: string, name?: string): { kind: string; name?: string } {
  const [kind, ...rest] = ref.split("/");
  return { kind, name: rest.length ? rest.join("/") : name };
}

export function adminCommands(y: Argv) {
  return y.command<AdminArgs>(
    "admin",
    DESCRIBE.admin,
    (a) =>
      backupCommands(a as Argv<AdminArgs>)
        .option("data-dir", { type: "string", describe: "On the proxy host: act on this data dir directly (bootstrap)" })
        .option("config", { type: "string", describe: "Proxy config file, with --data-dir" })
        .command(
          "status",
          "Cluster name, version and CA pin; each CA's rotation phase, both pins while it rotates, and who has not moved yet",
          (b) => b,
          withAdmin(async ({ client }) => {
            const s = await client.call<{ cluster_name: string; version: string; ca_pins: string[] }>("GET", "/v1/cluster/status");
            print(fields([["Cluster", s.cluster_name], ["Version", s.version], ...s.ca_pins.map((p): [string, string] => ["CA pin", p])]));
            print(await rotationStatusText(client));
          }),
        )
        .command("auth", "The cluster's CAs: rotate them in phases", (a) => authCommands(a))
        .command<AdminArgs & { file?: string; filename?: string; force?: boolean }>(
          "create [filename]",
          "Create resources from a YAML file (Teleport role files load unchanged): create [-f] FILE, as tctl create",
          (b) =>
            b
              .positional("filename", { type: "string", describe: "Resource file ('-' for stdin)" })
              // As in tctl, -f is --force and the file is the argument; --file stays for scripts written before.
              .option("force", { alias: "f", type: "boolean", describe: "Overwrite resources that exist (-f, as in tctl create -f FILE)" })
              .option("file", { type: "string", describe: "Resource file, as an option (the argument is the usual way)" }),
          withAdmin(async ({ client }, argv) => {
            // yargs reads a lone '-' (stdin) as an empty string.
            const file = argv.file ?? (argv.filename === "" ? "-" : argv.filename);
            if (!file) throw new AzgateError("bad_parameter", "give a file: azgate admin create role.yaml (-f to overwrite what exists)");
            let text: string;
            try {
              text = readFileSync(file === "-" ? 0 : file, "utf8");
            } catch (e) {
              throw new AzgateError("bad_parameter", `cannot read ${file}: ${(e as Error).message}`);
            }
            const res = await client.call<{ messages: string[]; warnings: string[] }>("POST", "/v1/admin/resources", { text, source: file, force: argv.force === true });
            for (const w of res.warnings) printErr(`WARNING: ${w}`);
            print(res.messages.join("\n"));
          }),
        )
        .command<AdminArgs & { ref: string; name?: string; format?: Format; "with-secrets"?: boolean }>(
          "get <ref> [name]",
          "Show roles, users, tokens, locks, connectors (github, oidc, saml) or notification targets: get roles (a table), get role/NAME (YAML, ready for create -f)",
          (b) =>
            b
              .positional("ref", { type: "string", demandOption: true })
              .positional("name", { type: "string" })
              .option("format", { choices: ["text", "json", "yaml"] as const, describe: "Output format (default: YAML for one resource, as tctl get; a table for a list)" })
              .option("with-secrets", { type: "boolean", describe: "Include secrets of connectors and notification targets (needs read, not only readnosecrets)" }),
          withAdmin(async ({ client }, argv) => {
            const { kind, name } = kindAndName(argv.ref, argv.name);
            const path = `/v1/admin/resources/${encodeURIComponent(kind)}${name ? `/${encodeURIComponent(name)}` : ""}${argv["with-secrets"] ? "?with_secrets=true" : ""}`;
            const { items } = await client.call<{ items: unknown[] }>("GET", path);
            const format = argv.format ?? (name ? "yaml" : "text");
            print(format === "text" ? resourceTable(kind, items) : await structured(name ? withoutStatus(items[0]) : items, format));
          }),
        )
        .command<AdminArgs & { ref: string }>(
          "edit <ref>",
          "Edit a resource in $EDITOR and apply it: edit role/NAME, edit github/NAME",
          (b) => b.positional("ref", { type: "string", demandOption: true }),
          withAdmin(async ({ client }, argv) => {
            const { kind, name } = kindAndName(argv.ref);
            if (!name) throw new AzgateError("bad_parameter", `say what to edit as KIND/NAME, for example role/${argv.ref}`);
            const secrets = ["github", "oidc", "saml"].includes(kind) ? "?with_secrets=true" : "";
            const { items } = await client.call<{ items: unknown[] }>("GET", `/v1/admin/resources/${encodeURIComponent(kind)}/${encodeURIComponent(name)}${secrets}`);
            print(await editAndApply(client, kind, name, items[0]));
          }),
        )
        .command<AdminArgs & { ref: string }>(
          "rm <ref>",
          "Delete a resource: rm role/NAME, rm user/NAME, rm token/TOKEN",
          (b) => b.positional("ref", { type: "string", demandOption: true }),
          withAdmin(async ({ client }, argv) => {
            const { kind, name } = kindAndName(argv.ref);
            if (!name) throw new AzgateError("bad_parameter", `say what to delete as KIND/NAME, for example role/${argv.ref}`);
            const res = await client.call<{ message: string }>("DELETE", `/v1/admin/resources/${encodeURIComponent(kind)}/${encodeURIComponent(name)}`);
            print(res.message);
          }),
        )
        .command<AdminArgs & { user?: string; bot?: string; role?: string; "azure-identity"?: string; session?: string; ttl?: string; message?: string; format?: Format }>(
          "lock",
          "Lock a user, bot, role, Azure identity or session: matching requests are refused from the next one on, open tunnels close",
          (b) =>
            b
              .option("user", { type: "string", describe: "Lock this user" })
              .option("bot", { type: "string", describe: "Lock this bot (its user bot-NAME): its joins, renewals and requests" })
              .option("role", { type: "string", describe: "Lock every user with this role" })
              .option("azure-identity", { type: "string", describe: "Lock this Azure identity (resource ID or name) for everyone" })
              .option("session", { type: "string", describe: "Lock one login or app session (its ID, as audit events show it)" })
              .option("ttl", { type: "string", describe: "Lift the lock after this long (default: until removed)" })
              .option("message", { type: "string", describe: "Shown to whoever is refused" })
              .option("format", { choices: ["text", "json", "yaml"] as const, describe: "Output format" }),
          withAdmin(async ({ client }, argv) => {
            if (argv.user && argv.bot) throw new AzgateError("bad_parameter", "--user and --bot name the same field of a lock (a bot is user bot-NAME): give one");
            const target = { user: argv.bot !== undefined ? botLockUser(argv.bot) : argv.user, role: argv.role, azure_identity: argv["azure-identity"], session_id: argv.session };
            const { warnings, ...lock } = await client.call<Lock & { warnings?: string[] }>("POST", "/v1/admin/locks", { target, ttl: argv.ttl, message: argv.message });
            for (const w of warnings ?? []) printErr(`WARNING: ${w}`);
            if (argv.format === "json" || argv.format === "yaml") return print(await structured(lock, argv.format));
            print(`Created a lock with name "${lock.metadata.name}".`);
          }),
        )
        .command("users", "Add, update and reset users", (u) => userCommands(u).demandCommand(...subcommandNeeded("admin users")))
        .command("bots", "Bots: CI runs that join with their CI's own token (add, ls, rm)", (t) => botCommands(t).demandCommand(...subcommandNeeded("admin bots")))
        .command("tokens", "Join tokens for agents", (t) => tokenCommands(t).demandCommand(...subcommandNeeded("admin tokens")))
        .command("audit", "Read the audit log", (t) => auditCommands(t).demandCommand(...subcommandNeeded("admin audit")))
        .command("request", "Access requests, as tctl request: ls, approve, deny, revoke", (r) =>
          // The admin flags (--data-dir, --config) sit beside each subcommand's own arguments.
          adminRequestCommands(r, <A,>(fn: (client: ApiClient, argv: A) => Promise<void>) => withAdmin<AdminArgs & A>(async ({ client }, argv) => fn(client, argv)) as (argv: A) => Promise<void>).demandCommand(...subcommandNeeded("admin request")),
        )
        .command("roles", "Explain roles' decisions", (r) =>
          r
            .command<AdminArgs & ExplainArgs>(
              "explain",
              "Explain what the proxy decides for one Azure request by a user: the operation, every azure_api rule, the decision",
              (b) => explainOptions(b, true) as Argv<AdminArgs & ExplainArgs>,
              withAdmin(async ({ client }, argv) => explain(client, argv)),
            )
            .demandCommand(...subcommandNeeded("admin roles")),
        )
        .demandCommand(...subcommandNeeded("admin")),
  );
}

function userCommands(u: Argv<AdminArgs>) {
  return u
    .command<AdminArgs & { name: string; roles?: string; "azure-identities"?: string; format: Format }>(
      "add <name>",
      "Add a user; prints a one-time invite",
      (b) =>
        formatOption(
          b
            .positional("name", { type: "string", demandOption: true })
            .option("roles", { type: "string", demandOption: true, describe: "Comma-separated roles" })
            .option("azure-identities", { type: "string", describe: "Comma-separated Azure identity resource IDs (trait azure_identities)" }),
        ),
      withAdmin(async ({ client }, argv) => {
        const ids = csv(argv["azure-identities"]);
        const res = await client.call<{ invite_token: string; invite_expires: string; public_url: string; ca_pin?: string }>("POST", "/v1/admin/users", {
          name: argv.name,
          roles: csv(argv.roles),
          traits: ids.length ? { azure_identities: ids } : {},
        });
        print(argv.format === "text" ? inviteMessage(argv.name, res.invite_token, new Date(res.invite_expires), res.public_url, systemClock.now(), res.ca_pin) : await structured({ user: argv.name, ...res }, argv.format));
      }),
    )
    .command<AdminArgs & { name: string; "set-roles"?: string; "set-azure-identities"?: string }>(
      "update <name>",
      "Change a user's roles or Azure identities",
      (b) =>
        b
          .positional("name", { type: "string", demandOption: true })
          .option("set-roles", { type: "string", describe: "Replace roles (comma-separated)" })
          .option("set-azure-identities", { type: "string", describe: "Replace the azure_identities trait (comma-separated; '' clears it)" }),
      withAdmin(async ({ client }, argv) => {
        const update: Record<string, unknown> = {};
        if (argv["set-roles"] !== undefined) update.roles = csv(argv["set-roles"]);
        if (argv["set-azure-identities"] !== undefined) update.azure_identities = csv(argv["set-azure-identities"]);
        if (Object.keys(update).length === 0) throw new AzgateError("bad_parameter", "nothing to update: pass --set-roles or --set-azure-identities");
        await client.call("PATCH", `/v1/admin/users/${encodeURIComponent(argv.name)}`, update);
        print(`User ${argv.name} has been updated.`);
      }),
    )
    .command<AdminArgs & { name: string }>(
      "reset <name>",
      "New invite for a user (new password and second factor; lifts a lockout)",
      (b) => b.positional("name", { type: "string", demandOption: true }),
      withAdmin(async ({ client }, argv) => {
        const res = await client.call<{ invite_token: string; invite_expires: string; public_url: string; ca_pin?: string }>("POST", `/v1/admin/users/${encodeURIComponent(argv.name)}/reset`);
        print(inviteMessage(argv.name, res.invite_token, new Date(res.invite_expires), res.public_url, systemClock.now(), res.ca_pin).replace("has been created but requires", "has been reset and requires"));
      }),
    )
    .command<AdminArgs & { format: Format }>(
      "ls",
      "List users",
      (b) => formatOption(b),
      withAdmin(async ({ client }, argv) => {
        const { items } = await client.call<{ items: unknown[] }>("GET", "/v1/admin/resources/user");
        print(argv.format === "text" ? resourceTable("user", items) : await structured(items, argv.format));
      }),
    );
}

function botCommands(t: Argv<AdminArgs>) {
  return t
    .command<AdminArgs & { name: string; roles: string; format: Format }>(
      "add <name>",
      "Add a bot: a user of kind bot (bot-NAME) with ordinary roles, which joins with a join token (kind: token) naming it",
      (b) => formatOption(b.positional("name", { type: "string", demandOption: true }).option("roles", { type: "string", demandOption: true, describe: "Comma-separated roles" })),
      withAdmin(async ({ client }, argv) => {
        const bot = await client.call<{ name: string; user: string; roles: string[] }>("POST", "/v1/admin/bots", { name: argv.name, roles: csv(argv.roles) });
        if (argv.format !== "text") return print(await structured(bot, argv.format));
        print([`Bot "${bot.name}" has been created (user ${bot.user}, roles ${bot.roles.join(", ")}).`, ``, `Now a join token naming it (bot_name: ${bot.name}) lets a CI run join: azgate admin create token.yaml (docs/bots.md).`].join("\n"));
      }),
    )
    .command<AdminArgs & { format: Format }>(
      "ls",
      "List bots",
      (b) => formatOption(b),
      withAdmin(async ({ client }, argv) => {
        const { items } = await client.call<{ items: { name: string; user: string; roles: string[]; created?: string }[] }>("GET", "/v1/admin/bots");
        print(argv.format === "text" ? table(["Bot", "User", "Roles", "Created"], items.map((b) => [b.name, b.user, b.roles.join(","), b.created ?? "-"])) : await structured(items, argv.format));
      }),
    )
    .command<AdminArgs & { name: string }>(
      "rm <name>",
      "Delete a bot: its certificates are refused on their next use",
      (b) => b.positional("name", { type: "string", demandOption: true }),
      withAdmin(async ({ client }, argv) => {
        print((await client.call<{ message: string }>("DELETE", `/v1/admin/bots/${encodeURIComponent(argv.name)}`)).message);
      }),
    );
}

function tokenCommands(t: Argv<AdminArgs>) {
  return t
    .command<AdminArgs & { type: string; ttl: string; uses?: number; format?: Format }>(
      "add",
      "Create a join token",
      (b) =>
        b
          .option("type", { type: "string", default: "app", describe: "Token type: app" })
          .option("ttl", { type: "string", default: "30m", describe: "Lifetime" })
          .option("uses", { type: "number", describe: "How many agents may join with it (default: any number until it expires)" })
          // No default: without --format the token comes with instructions; --format=text prints it alone for scripts.
          .option("format", { choices: ["text", "json", "yaml"] as const, describe: "Output format" }),
      withAdmin(async ({ client }, argv) => {
        const res = await client.call<TokenInfo & { token: string }>("POST", "/v1/admin/tokens", { type: argv.type, ttl: argv.ttl, uses: argv.uses });
        if (argv.format === "json" || argv.format === "yaml") return print(await structured(res, argv.format));
        if (argv.format === "text") return print(res.token);
        const status = await client.call<{ ca_pins: string[]; public_url: string }>("GET", "/v1/cluster/status");
        print(
          [
            `The invite token: ${res.token}`,
            `This token will expire in ${formatDuration(Date.parse(res.expires) - systemClock.now() + 500)}.`,
            ``,
            `Run this on the new agent:`,
            `> azgate start --mode agent --proxy ${new URL(status.public_url).host} --token ${res.token} --ca-pin ${status.ca_pins[0]} --app azure-cli --app-cloud Azure`,
          ].join("\n"),
        );
      }),
    )
    .command<AdminArgs & { format: Format }>(
      "ls",
      "List join tokens",
      (b) => formatOption(b),
      withAdmin(async ({ client }, argv) => {
        const { items } = await client.call<{ items: unknown[] }>("GET", "/v1/admin/resources/token");
        print(argv.format === "text" ? resourceTable("token", items) : await structured(items, argv.format));
      }),
    )
    .command<AdminArgs & { token: string }>(
      "rm <token>",
      "Delete a join token (the token or its ID)",
      (b) => b.positional("token", { type: "string", demandOption: true }),
      withAdmin(async ({ client }, argv) => {
        print((await client.call<{ message: string }>("DELETE", `/v1/admin/resources/token/${encodeURIComponent(argv.token)}`)).message);
      }),
    );
}

/** One resource as a file to edit and create again: the server's own bookkeeping (a user's id and generation) left out. */
function withoutStatus(item: unknown): unknown {
  if (item && typeof item === "object" && "status" in item) {
    const { status: _status, ...rest } = item as Record<string, unknown>;
    return rest;
  }
  return item;
}

/** Local, or the SSO connector that made the user and until when it lasts. */
function userType(u: User): string {
  if (isBot(u)) return "bot";
  const c = u.spec.created_by?.connector;
  if (!c) return "local";
  return `sso: ${c.type}/${c.id}${u.metadata.expires ? ` until ${u.metadata.expires}` : ""}`;
}

function resourceTable(kind: string, items: unknown[]): string {
  const k = kind.toLowerCase().replace(/s$/, "");
  if (k === "lock") {
    return table(
      ["ID", "Target", "Message", "Expires"],
      (items as Lock[]).map((l) => [l.metadata.name, describeTarget(l.spec.target), l.spec.message ?? "-", l.metadata.expires ?? "never"]),
    );
  }
  if (k === "role") {
    return table(
      ["Role", "Azure identities", "Denied identities", "App labels", "Max session TTL", "Other rules"],
      (items as Role[]).map((r) => [
        r.metadata.name,
        (r.spec.allow?.azure_identities ?? []).join(",") || "-",
        (r.spec.deny?.azure_identities ?? []).join(",") || "-",
        Object.entries(r.spec.allow?.app_labels ?? {}).map(([key, v]) => `${key}=${[v].flat().join("|")}`).join(",") || "-",
        r.spec.options?.max_session_ttl ?? "12h (default)",
        roleSummary(r),
      ]),
    );
  }
  if (k === "github" || k === "oidc" || k === "saml") {
    return table(
      ["Name", "Kind", "Display", "Maps to roles"],
      (items as Connector[]).map((c) => [c.metadata.name, c.kind, c.spec.display ?? "-", connectorRoles(c).join(",")]),
    );
  }
  if (k === "notification_target") {
    return table(
      ["Name", "Type", "Events", "Filter"],
      (items as NotificationTarget[]).map((t) => [t.metadata.name, t.spec.type, (t.spec.events ?? ["all"]).join(","), Object.entries(t.spec.filter ?? {}).map(([key, v]) => `${key}=${((v as string[] | undefined) ?? []).join("|")}`).join(",") || "-"]),
    );
  }
  if (k === "user") {
    return table(
      ["User", "Roles", "Azure identities", "Type"],
      (items as User[]).map((u) => [u.metadata.name, u.spec.roles.join(","), (u.spec.traits.azure_identities ?? []).join(",") || "-", userType(u)]),
    );
  }
  // Agents' secret tokens by ID, bots' join tokens by name.
  const expiry = (at: string | undefined) => (at ? `${at} (in ${formatDuration(Date.parse(at) - systemClock.now())})` : "never");
  return table(
    ["ID", "Type", "Uses", "Expires"],
    (items as (TokenInfo | JoinToken)[]).map((t) =>
      "spec" in t ? [t.metadata.name, `bot ${t.spec.bot_name} (${t.spec.join_method})`, "-", expiry(t.metadata.expires)] : [t.id, t.type, t.max_uses ? `${t.uses ?? 0}/${t.max_uses}` : `${t.uses ?? 0}`, expiry(t.expires)],
    ),
  );
}

/**
 * Writes the resource to a private temp file, opens $EDITOR (or $VISUAL, else
 * vi) on it, and applies the result if it changed. Kind and name must stay:
 * renaming in an editor would silently create a second resource.
 */
async function editAndApply(client: AdminConnection["client"], kind: string, name: string, resource: unknown): Promise<string> {
  const { stringify } = await import("yaml");
  const dir = mkdtempSync(path.join(os.tmpdir(), "azgate-edit-"));
  const file = path.join(dir, `${kind}-${name}.yaml`);
  try {
    const original = stringify(resource);
    writeFileSync(file, original, { mode: 0o600 });
    const editor = process.env.VISUAL || process.env.EDITOR || "vi";
    const res = spawnSync(`${editor} "${file}"`, { shell: true, stdio: "inherit" });
    if (res.status !== 0) throw new AzgateError("bad_parameter", `${editor} exited with ${res.status ?? res.signal}; nothing was changed`);
    const edited = readFileSync(file, "utf8");
    if (edited === original) return `${kind} "${name}" was not changed`;
    const parsed = parseResources(edited, file).resources;
    if (parsed.length !== 1 || parsed[0].kind !== kind || parsed[0].metadata.name !== name) {
      throw new AzgateError("bad_parameter", `the edited file must still hold ${kind} "${name}" alone; nothing was changed`);
    }
    const out = await client.call<{ messages: string[] }>("POST", "/v1/admin/resources", { text: edited, source: `edited ${kind}/${name}`, force: true });
    return out.messages.join("\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
