/**
 * Admin, read-mostly: users and their roles, roles (as YAML, ready for
 * `azgate admin create -f`), agents and the apps they serve with their
 * labels and last heartbeat (this replica's view), and locks, with forms to
 * lock a user or a session and to lift a lock. Each section needs the same
 * rule as its CLI command; one the caller lacks is not shown. Nothing secret
 * is rendered: users and roles hold none, connectors and join tokens are
 * not listed here.
 */
import { html } from "hono/html";
import { stringify } from "yaml";
import { isAzgateError } from "../../../errors/index.ts";
import { checkRule } from "../../../rbac/engine.ts";
import type { Role } from "../../../rbac/types.ts";
import type { Lock } from "../../../resources/lock.ts";
import { isBot, type User } from "../../../resources/user.ts";
import { formatDuration } from "../../../util/duration.ts";
import { getResources } from "../../admin.ts";
import type { Caller } from "../../caller.ts";
import type { ProxyContext } from "../../context.ts";
import type { AppRegistry } from "../../registry.ts";
import { cell, csrfField, timeCell, type Html } from "../layout.ts";
import { relativeTime } from "../../../util/relative-time.ts";
import { identityName } from "../../../azure/resource-id.ts";

async function ifAllowed<T>(load: () => Promise<T>): Promise<T | null> {
  try {
    return await load();
  } catch (e) {
    if (isAzgateError(e) && e.code === "access_denied") return null;
    throw e;
  }
}

const describeTarget = (t: Lock["spec"]["target"]) => Object.entries(t).map(([k, v]) => `${k}=${v}`).join(", ");

export async function adminPage(ctx: ProxyContext, registry: AppRegistry, caller: Caller, csrf: string): Promise<Html> {
  const users = (await ifAllowed(() => getResources(ctx, caller, "user"))) as User[] | null;
  const roles = (await ifAllowed(() => getResources(ctx, caller, "role"))) as Role[] | null;
  const locks = (await ifAllowed(() => getResources(ctx, caller, "lock"))) as Lock[] | null;
  const mayLock = checkRule(caller.roles, "lock", "create").allowed;
  const mayUnlock = checkRule(caller.roles, "lock", "delete").allowed;
  const servers = checkRule(caller.roles, "app", "list").allowed ? registry.all() : null;
  const now = ctx.clock.now();
  return html`<h1>Admin</h1>
    ${users
      ? html`<h2>Users</h2>
        <table class="grid users"><thead><tr><th>User</th><th>Roles</th><th class="kind">Type</th><th class="wide">Azure identities</th></tr></thead>
        <tbody>${users.map((u) => html`<tr>${cell(u.metadata.name)}${cell(u.spec.roles.join(", "))}${cell(isBot(u) ? "bot" : u.spec.created_by?.connector ? `SSO (${u.spec.created_by.connector.type} ${u.spec.created_by.connector.id})` : "local")}<td class="wide" title="${(u.spec.traits.azure_identities ?? []).join(", ")}">${(u.spec.traits.azure_identities ?? []).map(identityName).join(", ") || "-"}</td></tr>`)}</tbody></table>`
      : ""}
    ${roles
      ? html`<h2>Roles</h2>
        ${roles.map((r) => html`<details class="role"><summary><b>${r.metadata.name}</b> <span class="muted">${r.metadata.description ?? ""}</span></summary><pre>${stringify(r)}</pre></details>`)}`
      : ""}
    ${servers
      ? html`<h2>Agents and apps <span class="muted">(as this proxy replica sees them)</span></h2>
        ${servers.length === 0 ? html`<p class="muted">No agent is connected.</p>` : ""}
        <table class="grid agents"><thead><tr><th>App</th><th>Labels</th><th class="wide">Agent</th><th class="time wide">Connected</th><th class="heartbeat">Last heartbeat</th></tr></thead>
        <tbody>${servers.map((s) => html`<tr>${cell(s.app.name)}${cell(Object.entries(s.app.labels).map(([k, v]) => `${k}=${v}`).join(", "))}<td class="wide" title="${s.tunnel.hostName} (${s.tunnel.hostId})">${s.tunnel.hostName} <span class="muted">${s.tunnel.hostId.slice(0, 8)}</span></td>${timeCell(new Date(s.tunnel.connectedAt).toISOString(), now, "wide")}${cell(relativeTime(s.lastSeen, now))}</tr>`)}</tbody></table>`
      : ""}
    ${locks
      ? html`<h2>Locks</h2>
        ${locks.length === 0 ? html`<p class="muted">No lock is in force.</p>` : ""}
        <table class="grid locks"><thead><tr><th>Target</th><th class="wide">Message</th><th class="wide user">By</th><th class="time">Expires</th><th class="action"><span class="sr">Lift</span></th></tr></thead>
        <tbody>${locks.map(
          (l) => html`<tr>${cell(describeTarget(l.spec.target))}${cell(l.spec.message ?? "", "wide")}${cell(l.spec.created_by, "wide")}${l.metadata.expires ? timeCell(l.metadata.expires, now) : cell("never", "time")}
            <td class="action">${mayUnlock ? html`<form method="post" action="/web/admin/locks/${l.metadata.name}/delete">${csrfField(csrf)}<button type="submit" class="secondary">Lift</button></form>` : ""}</td></tr>`,
        )}</tbody></table>`
      : ""}
    ${mayLock
      ? html`<h2>Lock</h2>
        <form method="post" action="/web/admin/locks" class="card">
          ${csrfField(csrf)}
          <p class="muted">A lock refuses the next request of what it names, on every replica, and ends matching browser sessions.</p>
          <div class="row">
            <label>What <select name="kind"><option value="user">user</option><option value="session_id">session ID</option><option value="role">role</option><option value="azure_identity">Azure identity</option></select></label>
            <label>Name or ID <input name="value" required></label>
            <label>Message <input name="message"></label>
            <label>For <input name="ttl" placeholder="1h (empty: until lifted)"></label>
          </div>
          <button type="submit" class="danger">Lock</button>
        </form>`
      : ""}
    ${!users && !roles && !locks && !servers && !mayLock ? html`<p>Your roles give you nothing to administer.</p>` : ""}`;
}
