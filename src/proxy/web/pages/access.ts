/**
 * My access: the apps the caller can use and, per app, the Azure identities
 * they may assume now, those they may request, and their grants with the
 * time left; each with the exact commands to run. Teleport shows a disabled
 * "Launch" button here.
 */
import { html } from "hono/html";
import { identityName, sameIdentity } from "../../../azure/resource-id.ts";
import { formatDuration } from "../../../util/duration.ts";
import { listApps } from "../../apps.ts";
import { openRequestsOf, requestableIdentities } from "../../access-requests.ts";
import { policySummary } from "../policy-summary.ts";
import type { AppView } from "../../../api/types.ts";
import { clusterPins } from "../../cluster.ts";
import type { Caller } from "../../caller.ts";
import type { ProxyContext } from "../../context.ts";
import type { AppRegistry } from "../../registry.ts";
import type { KnownIdentitiesOf } from "../../known-identities.ts";
import { command, type Html } from "../layout.ts";

export async function accessPage(ctx: ProxyContext, registry: AppRegistry, caller: Caller, proxyHost: string, known: KnownIdentitiesOf): Promise<Html> {
  const apps = await listApps(ctx, registry, caller);
  const grants = await openRequestsOf(ctx, caller);
  const requestable = await requestableIdentities(ctx, caller, known);
  const now = ctx.clock.now();
  // The pin authenticates the cluster on a workstation that has never seen it (no prompt to confirm, so it works pasted).
  const [pin] = await clusterPins(ctx.cluster);
  const login = html`<p class="muted">On your workstation, sign in once: </p>${command(`azgate login --proxy ${proxyHost} --user ${caller.name} --ca-pin ${pin}`)}`;
  return html`<h1>My access</h1>
    ${apps.length === 0 ? html`<p>No app is available to you right now: either no agent serves one, or no role of yours allows its labels.</p>` : ""}
    ${apps.map((app) => {
      const granted = grants.filter((g) => g.spec.app === app.name);
      const standing = app.azure_identities.filter((id) => !granted.some((g) => sameIdentity(g.spec.azure_identity, id)));
      const mayRequest = requestable.filter((r) => !app.azure_identities.some((id) => sameIdentity(id, r.azure_identity)));
      return html`<section class="card" aria-label="${app.name}">
        <h2>${app.name} <span class="muted">${Object.entries(app.labels).map(([k, v]) => `${k}=${v}`).join(" ")}</span></h2>
        <h3>Azure identities you may use now</h3>
        ${standing.length === 0 && granted.length === 0 ? html`<p class="muted">None.</p>` : ""}
        <ul class="identities">
          ${standing.map((id) => identityItem(app, id, caller, now, null))}
          ${granted.map((g) => identityItem(app, g.spec.azure_identity, caller, now, g.spec.grant!.not_after, g.metadata.name))}
        </ul>
        ${mayRequest.length
          ? html`<h3>You may request</h3>
            <ul class="requestable">
              ${mayRequest.map(
                (r) => html`<li><b>${identityName(r.azure_identity)}</b> <span class="muted">${r.azure_identity}</span>, up to ${formatDuration(r.max_duration_ms)}${r.reason_required ? ", with a reason" : ""}${r.ticket_required ? ", with a ticket" : ""}
                  <form method="get" action="/web/requests/new" class="inline">
                    <input type="hidden" name="app" value="${app.name}"><input type="hidden" name="azure_identity" value="${r.azure_identity}">
                    <button type="submit" class="secondary">Request</button>
                  </form></li>`,
              )}
            </ul>`
          : ""}
      </section>`;
    })}
    ${login}
    <p class="muted">Your workstation's session lasts as your roles allow; this browser session ends with it, or sooner.</p>`;
}

/**
 * One identity the caller may use, with the commands for it. Every command
 * returns (test/e2e/web-commands.test.ts runs each as pasted): `azgate env`
 * starts the local proxy in the background and prints the exports, where
 * `proxy azure` would hold the shell until Ctrl-C.
 */
function identityItem(app: AppView, id: string, caller: Caller, now: number, until: string | null, requestId?: string): Html {
  const name = identityName(id);
  // apps login takes the name when it is the only one of the app's identities with it; else the full ID.
  const asGiven = app.azure_identities.filter((other) => identityName(other).toLowerCase() === name.toLowerCase()).length > 1 ? id : name;
  return html`<li>
    <b>${name}</b> <span class="muted">${id}</span>
    ${until ? html` · granted by request <a href="/web/requests/${requestId}">${requestId?.slice(0, 8)}</a>, <span data-until="${until}">${formatDuration(Date.parse(until) - now)} left</span>` : ""}
    <p class="muted">API policy: ${policySummary(caller, app, id)}</p>
    ${command(`azgate apps login ${app.name} --azure-identity ${asGiven}`)}
    ${command(`eval "$(azgate env --app ${app.name})"   # then az, or any Azure SDK, in this shell; eval "$(azgate env --unset)" ends it`)}
    ${command(`azgate exec --app ${app.name} -- az group list`)}
  </li>`;
}
