/**
 * Requests: ask for an identity, follow one's own requests, and, for
 * reviewers, an inbox to approve or deny (with a reason) and revoke. Every
 * action goes through the same service as the CLI (proxy/access-requests.ts),
 * so the same rules decide and the same events are audited.
 */
import { html } from "hono/html";
import { identityName, parseIdentityId, sameIdentity } from "../../../azure/resource-id.ts";
import { formatDuration } from "../../../util/duration.ts";
import type { AccessRequest } from "../../../resources/access-request.ts";
import { listRequests, requestableIdentities } from "../../access-requests.ts";
import type { Caller } from "../../caller.ts";
import type { ProxyContext } from "../../context.ts";
import type { KnownIdentitiesOf } from "../../known-identities.ts";
import { cell, csrfField, timeCell, type Html } from "../layout.ts";
import { relativeTime } from "../../../util/relative-time.ts";

const state = (r: AccessRequest) => html`<span class="state-${r.spec.state}">${r.spec.state}</span>`;

/** Requests, one row each, one line a cell (cut, the whole value on hover); times with how long ago or ahead. */
function table(rows: AccessRequest[], showUser: boolean, now: number): Html {
  if (rows.length === 0) return html`<p class="muted">None.</p>`;
  return html`<table class="grid requests">
    <thead><tr><th class="id">Request</th>${showUser ? html`<th class="user">User</th>` : ""}<th>Identity</th><th class="state">State</th><th class="wide duration">For</th><th class="time wide">Created</th><th class="wide">Reason</th></tr></thead>
    <tbody>
      ${rows.map(
        (r) => html`<tr>
          <td class="id" title="${r.metadata.name}"><a href="/web/requests/${r.metadata.name}">${r.metadata.name.slice(0, 8)}</a></td>
          ${showUser ? cell(r.spec.user) : ""}
          <td title="${r.spec.azure_identity} on ${r.spec.app}">${identityName(r.spec.azure_identity)} <span class="muted">on ${r.spec.app}</span></td>
          <td title="${stateTitle(r, now)}">${state(r)}${r.spec.state === "APPROVED" && r.spec.grant ? html` <span data-until="${r.spec.grant.not_after}">${relativeTime(Date.parse(r.spec.grant.not_after), now)}</span>` : r.spec.state === "PENDING" ? html` <span class="rel">${relativeTime(Date.parse(r.spec.review_deadline), now)}</span>` : ""}</td>
          ${cell(formatDuration(r.spec.duration_ms), "wide")}
          ${timeCell(r.spec.created, now, "wide")}
          ${cell(r.spec.reason, "wide")}
        </tr>`,
      )}
    </tbody>
  </table>`;
}

/** What the state cell means in full: until when a grant lasts, or when a pending request's review ends. */
function stateTitle(r: AccessRequest, now: number): string {
  if (r.spec.state === "APPROVED" && r.spec.grant) return `access until ${r.spec.grant.not_after} (${relativeTime(Date.parse(r.spec.grant.not_after), now)})`;
  if (r.spec.state === "PENDING") return `waits for reviews until ${r.spec.review_deadline} (${relativeTime(Date.parse(r.spec.review_deadline), now)})`;
  return r.spec.resolution ? `${r.spec.state} by ${r.spec.resolution.by} at ${r.spec.resolution.at}` : r.spec.state;
}

export async function requestsPage(ctx: ProxyContext, caller: Caller, known: KnownIdentitiesOf): Promise<Html> {
  const reviewable = (await listRequests(ctx, caller, "reviewable")).filter((r) => r.spec.state === "PENDING");
  const mine = await listRequests(ctx, caller, "mine");
  const canRequest = (await requestableIdentities(ctx, caller, known)).length > 0 || caller.roles.some((r) => (r.spec.allow?.request?.azure_identities ?? []).length > 0);
  const now = ctx.clock.now();
  return html`<h1>Requests</h1>
    ${canRequest ? html`<p><a class="button" href="/web/requests/new">New request</a></p>` : ""}
    <h2>Awaiting your review</h2>
    ${table(reviewable, true, now)}
    <h2>My requests</h2>
    ${table(mine, false, now)}`;
}

export async function newRequestPage(ctx: ProxyContext, caller: Caller, csrf: string, preset: { app?: string; azure_identity?: string }, known: KnownIdentitiesOf): Promise<Html> {
  const options = await requestableIdentities(ctx, caller, known);
  const patterns = caller.roles.flatMap((r) => r.spec.allow?.request?.azure_identities ?? []);
  if (options.length === 0 && patterns.length === 0) return html`<h1>New request</h1><p>No role of yours lets you request an Azure identity.</p>`;
  const prompt = options.find((o) => o.prompt)?.prompt;
  // A pattern whose identities azgate cannot list (no agent lists them): the user names one by its full ID, and the rules decide.
  const choice = options.length
    ? html`<select name="azure_identity" required>
          ${options.map((o) => html`<option value="${o.azure_identity}" ${sameIdentity(preset.azure_identity ?? "", o.azure_identity) ? "selected" : ""}>${optionLabel(o.azure_identity)} (up to ${formatDuration(o.max_duration_ms)})</option>`)}
        </select>`
    : html`<input name="azure_identity" value="${preset.azure_identity ?? ""}" required placeholder="/subscriptions/.../userAssignedIdentities/NAME">
        <span class="muted">Your roles let you request identities matching ${patterns.join(", ")}; azgate knows of none by name, so give the full resource ID.</span>`;
  return html`<h1>New request</h1>
    <form method="post" action="/web/requests">
      ${csrfField(csrf)}
      <label>App <input name="app" value="${preset.app ?? "azure-cli"}" required></label>
      <label>Azure identity
        ${choice}
      </label>
      <label>For how long <input name="duration" placeholder="1h" pattern="[0-9hms]+"></label>
      <label>Reason${prompt ? html` <span class="muted">(${prompt})</span>` : ""} <textarea name="reason" rows="2" maxlength="1024"></textarea></label>
      <label>Ticket <input name="ticket" maxlength="256"></label>
      <button type="submit">Request</button>
    </form>`;
}

/** An identity by its name and resource group: two groups may hold one name, and the name alone must not decide which. */
function optionLabel(id: string): string {
  const p = parseIdentityId(id);
  return p ? `${p.name} in ${p.resourceGroup}` : id;
}

export function requestDetail(r: AccessRequest, csrf: string, may: { review: boolean; revoke: boolean; cancel: boolean; reviewNeedsCode?: boolean; reviewWithPasskey?: boolean }, now: number): Html {
  const s = r.spec;
  const when = (iso: string) => html`${iso} <span class="rel">(${relativeTime(Date.parse(iso), now)})</span>`;
  return html`<h1>Request ${r.metadata.name}</h1>
    <table>
      <tbody>
        <tr><th>State</th><td>${state(r)}${s.state === "APPROVED" && s.grant ? html` · from ${s.grant.not_before} until ${s.grant.not_after} (<span data-until="${s.grant.not_after}">${relativeTime(Date.parse(s.grant.not_after), now)}</span>)` : ""}</td></tr>
        <tr><th>User</th><td>${s.user}</td></tr>
        <tr><th>App</th><td>${s.app}</td></tr>
        <tr><th>Azure identity</th><td><b>${identityName(s.azure_identity)}</b> <span class="muted">${s.azure_identity}</span></td></tr>
        <tr><th>Duration</th><td>${formatDuration(s.duration_ms)}</td></tr>
        <tr><th>Reason</th><td>${s.reason || html`<span class="muted">none given</span>`}</td></tr>
        ${s.ticket ? html`<tr><th>Ticket</th><td>${s.ticket}</td></tr>` : ""}
        <tr><th>Approvals needed</th><td>${s.thresholds.approve}${(s.threshold_rules ?? []).some((t) => t.filter) ? html` <span class="muted">(${(s.threshold_rules ?? []).map((t) => t.filter).filter(Boolean).join("; ")})</span>` : ""}</td></tr>
        <tr><th>Created</th><td>${when(s.created)}</td></tr>
        <tr><th>Review deadline</th><td>${when(s.review_deadline)}</td></tr>
        ${s.suggested_reviewers.length ? html`<tr><th>Suggested reviewers</th><td>${s.suggested_reviewers.join(", ")}</td></tr>` : ""}
        ${s.resolution ? html`<tr><th>Resolved</th><td>by ${s.resolution.by} at ${when(s.resolution.at)}${s.resolution.reason ? html`: ${s.resolution.reason}` : ""}</td></tr>` : ""}
      </tbody>
    </table>
    <h2>Reviews</h2>
    ${s.reviews.length === 0
      ? html`<p class="muted">None yet.</p>`
      : html`<ul>${s.reviews.map((v) => html`<li><b>${v.author}</b> <span class="state-${v.state}">${v.state}</span> at ${v.created}${v.reason ? html`: ${v.reason}` : ""}</li>`)}</ul>`}
    ${may.review
      ? html`<h2>Your review</h2>
        ${may.reviewNeedsCode && may.reviewWithPasskey
          ? html`<form method="post" action="/web/requests/${r.metadata.name}/review/passkey" data-passkey-get data-begin="/web/requests/${r.metadata.name}/review/begin" data-finish="/web/requests/${r.metadata.name}/review/passkey">`
          : html`<form method="post" action="/web/requests/${r.metadata.name}/review">`}
          ${csrfField(csrf)}
          <label>Reason, optional (the requester sees it) <textarea name="reason" rows="2" maxlength="1024"></textarea></label>
          ${may.reviewNeedsCode && may.reviewWithPasskey ? html`<p class="muted">Your role asks for a fresh check with each review: your passkey or security key confirms it.</p>` : ""}
          ${may.reviewNeedsCode && !may.reviewWithPasskey ? html`<label>Authenticator code (your role asks for one with each review) <input name="otp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required></label>` : ""}
          <button type="submit" name="state" value="APPROVED">Approve</button>
          <button type="submit" name="state" value="DENIED" class="danger">Deny</button>
        </form>`
      : ""}
    ${may.revoke
      ? html`<form method="post" action="/web/requests/${r.metadata.name}/revoke">
          ${csrfField(csrf)}
          <label>Why revoke it <input name="reason" maxlength="1024"></label>
          <button type="submit" class="danger">Revoke access now</button>
        </form>`
      : ""}
    ${may.cancel
      ? html`<form method="post" action="/web/requests/${r.metadata.name}/cancel">${csrfField(csrf)}<button type="submit" class="secondary">Cancel this request</button></form>`
      : ""}
    <p class="muted">From a terminal: <code>azgate request show ${r.metadata.name}</code></p>`;
}
