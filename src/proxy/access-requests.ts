/**
 * Access requests on the proxy: create, list, show, review, cancel, revoke.
 * The rules are rbac/requests.ts's; this file keeps the state (in the
 * backend, so every replica sees it) and audits each step. Approval writes a
 * grant, which the per-request check reads (authorize-request.ts): no new
 * certificate, no re-login; a revoke or the window's end acts on the next
 * request.
 */
import { botFields } from "../pki/identity.ts";
import { audit } from "../audit/events.ts";
import { AzgateError, MfaRequired } from "../errors/index.ts";
import type { RelyingParty } from "../auth/webauthn.ts";
import { checkAssertion } from "./webauthn.ts";
import { takeSessionCheck } from "./session-check.ts";
import { countAttempt, failed, lockedReason, succeeded } from "./lockout.ts";
import { grantPermits, identitiesNamed, mayReview, requestTerms, resolveRequestedName, rolesNamedInRequests, ruleVars, thresholdsCounting, type RoleLookup, type Threshold } from "../rbac/requests.ts";
import { decidingRule, type AccessRule } from "../resources/access-rule.ts";
import { checkRule } from "../rbac/engine.ts";
import type { Role } from "../rbac/types.ts";
import { effectiveState, endedGrantNote, isRequestOf, lastEndedGrant, requestCommand, type AccessRequest } from "../resources/access-request.ts";
import { allowedActions, applyTransition, openRequest, type Action, type Allowed, type Rights, type Step, type Transition } from "../resources/access-request-lifecycle.ts";
import type { App } from "../rbac/types.ts";
import { userStamp } from "./users.ts";
import { parseDuration } from "../util/duration.ts";
import { distinctIdentities, identityName, refusedIdentityForAudit, sameIdentity } from "../azure/resource-id.ts";
import { expandAllow } from "../rbac/template.ts";
import type { KnownIdentitiesOf } from "./known-identities.ts";
import { accessSnapshot } from "./access-cache.ts";
import type { Caller } from "./caller.ts";
import type { ProxyContext } from "./context.ts";
import { KEYS } from "./keys.ts";
import { USER_NAME } from "../resources/user.ts";
import { compilePattern } from "../util/regex.ts";
import { freshTotpStep } from "../auth/totp.ts";
import type { UserAuth } from "./users.ts";
import { enqueueNotifications } from "./notify/outbox.ts";
import { checkRequestedApp } from "./requested-app.ts";
import type { AppRegistry } from "./registry.ts";

/** How often the proxy records the ends that come with time (recordEndings). */
export const ENDINGS_MS = 10_000;
/** How long a request waits for reviews, unless its requester asks for less or more (request_ttl, within the bounds). */
export const REVIEW_WINDOW_MS = 3_600_000;
const MIN_REVIEW_WINDOW_MS = 5_000;
const MAX_REVIEW_WINDOW_MS = 7 * 86_400_000;
const MAX_TEXT = 1024;
/** Pending requests one user may have at once: each one notifies reviewers, so this bounds what one account can make them read. */
export const MAX_PENDING_PER_USER = 10;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface CreateRequestInput {
  app?: string;
  azure_identity?: string;
  duration?: string;
  reason?: string;
  ticket?: string;
  start?: string;
  /** How long it may wait for reviews (Teleport's --request-ttl). */
  request_ttl?: string;
  /** Users the requester asks to review, besides the roles' suggested_reviewers (Teleport's --reviewers). */
  reviewers?: string[];
}

function text(value: unknown, what: string, required: boolean): string {
  const v = value === undefined || value === null ? "" : String(value);
  if (required && v.trim() === "") throw new AzgateError("bad_parameter", `${what} is required`);
  if (v.length > MAX_TEXT || /[\x00-\x08\x0b-\x1f\x7f]/.test(v)) throw new AzgateError("bad_parameter", `${what} must be printable text of at most ${MAX_TEXT} characters`);
  return v;
}

async function lookupFor(ctx: ProxyContext, roles: Role[]): Promise<{ lookup: RoleLookup; load: (names: string[]) => Promise<void> }> {
  const now = await accessSnapshot(ctx.backend, ctx.clock);
  const known = new Map<string, Role | undefined>(roles.map((r) => [r.metadata.name, r]));
  return {
    lookup: (n) => known.get(n),
    load: async (names) => {
      for (const n of names) if (!known.has(n)) known.set(n, (await now.role(n)) ?? undefined);
    },
  };
}

/** The roles named in `request` / `review_requests` blocks, loaded so the pure rules can read them. */
const namedRoles = rolesNamedInRequests;

/**
 * `served` names the app specs (their labels) of the servers of an app this
 * proxy knows now: a request is for an app some agent serves, on labels the
 * roles that make it requestable cover (the grant would open nothing else).
 */
export async function createRequest(ctx: ProxyContext, caller: Caller, input: CreateRequestInput, served: (app: string) => App[], known: KnownIdentitiesOf = NONE_KNOWN): Promise<AccessRequest> {
  if (caller.identity.kind !== "user" || !caller.user) throw new AzgateError("access_denied", "access requests are made by users");
  const app = text(input.app, "app", true);
  const { lookup, load } = await lookupFor(ctx, caller.roles);
  await load(namedRoles(caller.roles));
  await checkRequestedApp(ctx, caller, app);
  const given = text(input.azure_identity, "azure_identity", true);
  let identity: string;
  try {
    identity = await resolveRequested(caller, given, lookup, known);
  } catch (e) {
    await ctx.audit.emit(audit("ACCESS_REQUEST_REFUSED", { user: caller.name, ...botFields(caller.identity), app, azure_identity: refusedIdentityForAudit(given), success: false, error_code: (e as AzgateError).code, reason: (e as Error).message }));
    throw e;
  }
  const terms = requestTerms(caller.roles, caller.traits, identity, lookup);
  const refuse = async (reason: string, code: "access_denied" | "not_found" = "access_denied") => {
    await ctx.audit.emit(audit("ACCESS_REQUEST_REFUSED", { user: caller.name, ...botFields(caller.identity), app, azure_identity: identity, success: false, error_code: code, reason }));
    return new AzgateError(code, reason);
  };
  if (!terms.allowed) throw await refuse(terms.reason);
  // The app as served now, on labels the grant could be used on: what the request's roles would open there.
  const servers = served(app);
  if (servers.length === 0) throw await refuse(`no agent serves app "${app}" right now; azgate apps ls shows the apps that are up`, "not_found");
  await load(terms.grantRoles);
  const grantRoles = terms.grantRoles.map(lookup).filter((r): r is Role => !!r);
  const coverage = servers.map((s) => grantPermits(caller.roles, caller.traits, { roles: terms.grantRoles, azure_identity: identity }, grantRoles, lookup, s));
  if (!coverage.some((d) => d.allowed)) throw await refuse(`a grant of "${identity}" would not cover app "${app}": ${coverage[0].reason}`);
  const durationMs = input.duration ? parseDuration(String(input.duration), "duration") : terms.maxDurationMs;
  if (durationMs <= 0 || durationMs > terms.maxDurationMs) throw new AzgateError("bad_parameter", `duration must be at most ${Math.round(terms.maxDurationMs / 60_000)}m for this identity`);
  const reason = text(input.reason, "a reason (--reason)", terms.reasonRequired);
  const ticket = text(input.ticket, "a ticket (--ticket)", terms.ticket.required);
  if (ticket && terms.ticket.pattern && !compilePattern(terms.ticket.pattern)?.test(ticket)) throw new AzgateError("bad_parameter", `ticket "${ticket}" does not match ${terms.ticket.pattern}`);
  const pending = (await ctx.backend.list<AccessRequest>(KEYS.accessRequests)).filter((i) => i.value.spec.user === caller.name && effectiveState(i.value, ctx.clock.now()) === "PENDING").length;
  if (pending >= MAX_PENDING_PER_USER) {
    const why = `you have ${pending} pending requests, the most one user may have; cancel one (azgate request cancel ID) or wait for reviews`;
    await ctx.audit.emit(audit("ACCESS_REQUEST_REFUSED", { user: caller.name, ...botFields(caller.identity), app, azure_identity: identity, success: false, error_code: "rate_limited", reason: why }));
    throw new AzgateError("rate_limited", why);
  }
  const asked = Array.isArray(input.reviewers) ? input.reviewers.map(String) : [];
  if (asked.length > 10 || asked.some((n) => !USER_NAME.test(n))) throw new AzgateError("bad_parameter", "reviewers must be at most 10 user names");
  if (asked.includes(caller.name)) throw new AzgateError("bad_parameter", "you cannot review your own request; name someone else in --reviewers");
  const reviewWindow = input.request_ttl ? parseDuration(String(input.request_ttl), "request_ttl") : REVIEW_WINDOW_MS;
  if (reviewWindow < MIN_REVIEW_WINDOW_MS || reviewWindow > MAX_REVIEW_WINDOW_MS) throw new AzgateError("bad_parameter", "request_ttl must be from 5s to 7 days (168h)");
  const now = ctx.clock.now();
  const start = input.start ? Date.parse(String(input.start)) : now;
  if (Number.isNaN(start) || start < now - 60_000 || start > now + 7 * 24 * 3_600_000) throw new AzgateError("bad_parameter", "start must be a time (2026-12-01T08:00:00Z) from now to a week ahead");
  // Born PENDING (the lifecycle, resources/access-request-lifecycle.ts); an auto-review rule decides now, or it waits for reviewers.
  const opened = openRequest(
    {
      id: crypto.randomUUID(),
      user: caller.name,
      user_id: userStamp(caller.user).id,
      app,
      azure_identity: identity,
      roles: terms.grantRoles,
      reason,
      ...(ticket ? { ticket } : {}),
      start,
      duration_ms: durationMs,
      thresholds: { approve: terms.approvals, deny: terms.denials },
      threshold_rules: terms.thresholds,
      suggested_reviewers: [...new Set([...terms.suggestedReviewers, ...asked])],
      review_deadline: input.request_ttl ? now + reviewWindow : Math.max(now, start) + REVIEW_WINDOW_MS,
    },
    now,
  );
  const rules = (await ctx.backend.list<AccessRule>(KEYS.accessRules)).map((i) => i.value);
  // A rule's schedule reads the whole grant window (resources/access-rule.ts), not only this moment.
  const windowFrom = Math.max(now, start);
  const rule = decidingRule(rules, ruleVars(opened.next.spec, caller), { now, window: { from: windowFrom, to: windowFrom + durationMs } });
  const decided = rule ? applyTransition(opened.next, { kind: "rule", rule: rule.metadata.name, verdict: rule.spec.decision, reason: rule.spec.reason ?? `auto-review rule "${rule.metadata.name}"` }, SYSTEM, now) : null;
  await ctx.backend.compareAndSwap(KEYS.accessRequest(opened.next.metadata.name), null, (decided ?? opened).next);
  // A bot's request carries its name and run, as every event of a bot does.
  await emitStep(ctx, { ...opened, audit: opened.audit.map((e) => ({ ...e, ...botFields(caller.identity) })) });
  if (decided) await emitStep(ctx, decided);
  return withState(ctx, (decided ?? opened).next);
}

/** The rights of azgate itself (a rule deciding at creation, the sweeper): the transition's own checks are all that apply. */
const SYSTEM: Rights = { actor: "azgate", requester: false, review: { allowed: false, reason: "azgate does not review" }, admin: false };

/** Without agents or roles to ask (tests of the service alone): only what the caller's own roles name. */
export const NONE_KNOWN: KnownIdentitiesOf = async () => ({ identities: [], complete: true });

/**
 * The identities the caller's own roles name for requests, literally
 * (request.azure_identities without a pattern, with the caller's traits;
 * those the requestable roles allow).
 */
function namedForRequests(caller: Caller, lookup: RoleLookup): string[] {
  return distinctIdentities(
    caller.roles.flatMap((r) => {
      const req = r.spec.allow?.request;
      const viaRoles = [...(req?.roles ?? []), ...(req?.search_as_roles ?? [])].flatMap((n) => expandAllow(lookup(n)?.spec.allow?.azure_identities, caller.traits));
      return [...expandAllow(req?.azure_identities, caller.traits), ...viaRoles];
    }),
  );
}

/** Every identity the caller might mean: what their roles name, and what azgate knows of (roles, agents' lists). */
async function candidates(caller: Caller, lookup: RoleLookup, known: KnownIdentitiesOf): Promise<{ identities: string[]; complete: boolean }> {
  const more = await known();
  return { identities: distinctIdentities([...namedForRequests(caller, lookup), ...more.identities]), complete: more.complete };
}

/**
 * A full resource ID in the one grammar, in Azure's spelling; a short name
 * (teleport-reader) when exactly one identity azgate knows of has it
 * (resolveRequestedName in rbac/requests.ts: ambiguous names are refused).
 * The agents are asked only for a name.
 */
async function resolveRequested(caller: Caller, given: string, lookup: RoleLookup, known: KnownIdentitiesOf): Promise<string> {
  return resolveRequestedName(given, given.startsWith("/") ? { identities: [], complete: true } : await candidates(caller, lookup, known));
}

/**
 * The identities the caller may request, with each one's terms (the web UI's
 * "you may request", its New request page): those their roles name, and those
 * azgate knows of that a glob in request.azure_identities matches; requestTerms
 * decides each.
 */
export async function requestableIdentities(ctx: ProxyContext, caller: Caller, known: KnownIdentitiesOf = NONE_KNOWN): Promise<{ azure_identity: string; max_duration_ms: number; reason_required: boolean; ticket_required: boolean; prompt?: string }[]> {
  if (caller.identity.kind !== "user") return [];
  const { lookup, load } = await lookupFor(ctx, caller.roles);
  await load(namedRoles(caller.roles));
  const ids = (await candidates(caller, lookup, known)).identities.sort((a, b) => identityName(a).localeCompare(identityName(b)) || a.localeCompare(b));
  return ids.flatMap((id) => {
    const t = requestTerms(caller.roles, caller.traits, id, lookup);
    return t.allowed ? [{ azure_identity: id, max_duration_ms: t.maxDurationMs, reason_required: t.reasonRequired, ticket_required: t.ticket.required, ...(t.prompt ? { prompt: t.prompt } : {}) }] : [];
  });
}

/** What the caller could request for this identity (apps login's hint when no role allows it). */
export async function requestableTerms(ctx: ProxyContext, caller: Caller, given: string, known: KnownIdentitiesOf = NONE_KNOWN): Promise<{ requestable: boolean; azure_identity?: string; max_duration_ms?: number; reason_required?: boolean; ticket_required?: boolean; prompt?: string; ambiguous?: string }> {
  if (caller.identity.kind !== "user") return { requestable: false };
  const { lookup, load } = await lookupFor(ctx, caller.roles);
  await load(namedRoles(caller.roles));
  let identity: string;
  try {
    identity = await resolveRequested(caller, text(given, "azure_identity", true), lookup, known);
  } catch (e) {
    // A name several identities have: apps login says so, with them (the same refusal request create gives).
    const ambiguous = !given.startsWith("/") && identitiesNamed(given, (await candidates(caller, lookup, known)).identities).length > 1;
    return { requestable: false, ...(ambiguous && e instanceof AzgateError ? { ambiguous: e.message } : {}) };
  }
  const t = requestTerms(caller.roles, caller.traits, identity, lookup);
  return t.allowed ? { requestable: true, azure_identity: identity, max_duration_ms: t.maxDurationMs, reason_required: t.reasonRequired, ticket_required: t.ticket.required, ...(t.prompt ? { prompt: t.prompt } : {}) } : { requestable: false };
}

/**
 * For a denial of an identity the caller holds no role for: when a grant of
 * theirs for this app and identity ended (revoked, or its window over), the
 * sentence naming that request, how it ended and the command to ask again;
 * null when none did. Read only on a denial, never on an allowed request.
 */
export async function endedGrantHint(ctx: ProxyContext, caller: Caller, route: { app: string; azure_identity: string }, known: KnownIdentitiesOf = NONE_KNOWN): Promise<string | null> {
  if (caller.identity.kind !== "user" || !caller.user) return null;
  const requests = (await ctx.backend.list<AccessRequest>(KEYS.accessRequests)).map((i) => i.value);
  const ended = lastEndedGrant(requests, { user: caller.name, user_id: userStamp(caller.user).id, ...route }, ctx.clock.now());
  if (!ended) return null;
  const terms = await requestableTerms(ctx, caller, route.azure_identity);
  // The short name when it names this identity alone (as a user types it), else the full ID.
  const short = await requestableTerms(ctx, caller, identityName(route.azure_identity), known);
  const asked = short.requestable && short.azure_identity && sameIdentity(short.azure_identity, route.azure_identity) ? identityName(route.azure_identity) : route.azure_identity;
  return endedGrantNote(ended, terms.requestable ? requestCommand(route.app, asked, terms) : null);
}

const withState = (ctx: ProxyContext, r: AccessRequest): AccessRequest => ({ ...r, spec: { ...r.spec, state: effectiveState(r, ctx.clock.now()) } });

async function load(ctx: ProxyContext, id: string) {
  if (!UUID.test(id)) throw new AzgateError("bad_parameter", `"${id}" is not a request ID`);
  const item = await ctx.backend.get<AccessRequest>(KEYS.accessRequest(id));
  if (!item) throw new AzgateError("not_found", `access request "${id}" not found`);
  return item;
}

/** Decides, for this caller, who may review which request: the roles it names are loaded once, then each request is pure. */
async function reviewerFor(ctx: ProxyContext, caller: Caller): Promise<(r: AccessRequest) => { allowed: boolean; reason: string }> {
  const { lookup, load: loadRoles } = await lookupFor(ctx, caller.roles);
  await loadRoles(namedRoles(caller.roles));
  const admin = checkRule(caller.roles, "access_request", "update").allowed;
  return (r) => {
    const decision = mayReview(caller.name, caller.roles, caller.traits, r.spec, lookup);
    // An administrator (the rule to update access requests, as tctl request approve) reviews any request but their own.
    if (!decision.allowed && caller.name !== r.spec.user && admin) return { allowed: true, reason: "an administrator may review any request" };
    return decision;
  };
}

/** A caller's rights over requests (lifecycle Rights): the roles their review blocks name loaded once, then each request is pure. */
async function rightsOf(ctx: ProxyContext, caller: Caller): Promise<(r: AccessRequest) => Rights> {
  const review = await reviewerFor(ctx, caller);
  const admin = checkRule(caller.roles, "access_request", "update").allowed;
  const who = caller.user ? { user: caller.name, user_id: userStamp(caller.user).id } : null;
  // A bot may ask; a person approves: a bot reviews nothing, whatever its roles say.
  const bot = caller.identity.bot ? { allowed: false, reason: "a bot does not review access requests; a person does" } : null;
  return (r) => ({ actor: caller.name, requester: !!who && isRequestOf(r, who), review: bot ?? review(r), admin: admin && !bot });
}

/** What this caller may do with this request now: the lifecycle's one answer (the web UI shows only the actions that would succeed). */
export async function requestActions(ctx: ProxyContext, caller: Caller, r: AccessRequest): Promise<Record<Action, Allowed>> {
  return allowedActions(r, (await rightsOf(ctx, caller))(r), ctx.clock.now());
}

/** Who may see a request: its requester, whoever may review it, and readers of access requests (rules). */
const mayView = (caller: Caller, review: (r: AccessRequest) => { allowed: boolean }) => (r: AccessRequest) =>
  r.spec.user === caller.name || checkRule(caller.roles, "access_request", "read").allowed || review(r).allowed;

export async function getRequest(ctx: ProxyContext, caller: Caller, id: string): Promise<AccessRequest> {
  const { value } = await load(ctx, id);
  if (!mayView(caller, await reviewerFor(ctx, caller))(value)) throw new AzgateError("not_found", `access request "${id}" not found`);
  return withState(ctx, value);
}

export async function listRequests(ctx: ProxyContext, caller: Caller, filter: string | undefined): Promise<AccessRequest[]> {
  const all = (await ctx.backend.list<AccessRequest>(KEYS.accessRequests)).map((i) => i.value);
  const review = await reviewerFor(ctx, caller);
  const shown = filter === "mine" ? (r: AccessRequest) => r.spec.user === caller.name : filter === "reviewable" ? (r: AccessRequest) => review(r).allowed : mayView(caller, review);
  return all.filter(shown).map((r) => withState(ctx, r)).sort((a, b) => b.spec.created.localeCompare(a.spec.created));
}

/**
 * One transition of a stored request: load, apply (the lifecycle decides),
 * compare-and-swap (two reviewers at once cannot both count as the last;
 * the loser reloads and is judged again), then emit what it causes.
 */
async function step(ctx: ProxyContext, id: string, rights: (r: AccessRequest) => Rights, transition: (r: AccessRequest) => Transition): Promise<AccessRequest> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const item = await load(ctx, id);
    const done = applyTransition(item.value, transition(item.value), rights(item.value), ctx.clock.now());
    try {
      await ctx.backend.compareAndSwap(KEYS.accessRequest(id), item.revision, done.next);
    } catch (e) {
      if (e instanceof AzgateError && e.code === "compare_failed") continue;
      throw e;
    }
    await emitStep(ctx, done);
    return withState(ctx, done.next);
  }
  throw new AzgateError("compare_failed", `access request "${id}" is being changed by others; try again`);
}

/** What a stored step causes, in order: the grant (written or removed), the audit events, the notification. */
async function emitStep(ctx: Pick<ProxyContext, "backend" | "audit" | "clock">, done: Step): Promise<void> {
  const id = done.next.metadata.name;
  if (done.grant && "put" in done.grant) {
    // The grant reads as absent once its window ends (and is swept).
    await ctx.backend.put(KEYS.accessGrant(id), done.grant.put, { expires: new Date(done.grant.put.spec.not_after) });
  } else if (done.grant) await ctx.backend.delete(KEYS.accessGrant(id));
  for (const e of done.audit) await ctx.audit.emit(e);
  if (done.notice) await enqueueNotifications(ctx, { ...done.notice, request: done.next });
}

/** A refused step is audited as its event with success false, then thrown. */
async function refused(ctx: ProxyContext, id: "ACCESS_REQUEST_REVIEW_REFUSED" | "ACCESS_REQUEST_CANCEL_REFUSED" | "ACCESS_REQUEST_REVOKE_REFUSED", caller: Caller, r: AccessRequest, e: unknown, extra: Record<string, unknown> = {}): Promise<never> {
  if (e instanceof AzgateError) {
    await ctx.audit.emit(audit(id, { user: caller.name, ...botFields(caller.identity), access_request_id: r.metadata.name, requester: r.spec.user, ...extra, success: false, error_code: e.code, reason: e.message }));
  }
  throw e;
}

/**
 * A review's fresh check (review_mfa): an authenticator code (`otp`), a
 * passkey check the CLI had the browser do for this request (`mfa`,
 * browser-attempt.ts), or the web page's own passkey answer (`passkey`).
 */
export interface ReviewCheck {
  otp?: string;
  mfa?: unknown;
  passkey?: { rp: RelyingParty; answer: unknown };
}

export async function reviewRequest(ctx: ProxyContext, caller: Caller, id: string, input: { state?: string; reason?: string } & ReviewCheck): Promise<AccessRequest> {
  const verdict = input.state === "APPROVED" || input.state === "DENIED" ? input.state : null;
  if (!verdict) throw new AzgateError("bad_parameter", 'state must be "APPROVED" or "DENIED"');
  const reason = text(input.reason, "a reason (--reason)", false);
  const { value } = await load(ctx, id);
  const rights = await rightsOf(ctx, caller);
  const audited = (e: unknown) => refused(ctx, "ACCESS_REQUEST_REVIEW_REFUSED", caller, value, e, { state: verdict });
  // Who may, in which state: the lifecycle's answer, asked first so a refusal costs no authenticator code.
  const may = allowedActions(value, rights(value), ctx.clock.now()).review;
  if (!may.allowed) await audited(new AzgateError(may.code ?? "access_denied", may.reason));
  const mfaRole = caller.roles.find((r) => r.spec.options?.review_mfa);
  if (mfaRole) await checkReviewer(ctx, caller, id, input, `role "${mfaRole.metadata.name}" (review_mfa)`).catch(audited);
  // Which thresholds this review counts toward (their filters, over the reviewer and the request as they are now).
  const thresholds: Threshold[] = value.spec.threshold_rules ?? [value.spec.thresholds];
  const countsFor = thresholdsCounting(thresholds, { name: caller.name, roles: caller.roles, traits: caller.traits }, value.spec, reason);
  if (countsFor.length === 0) await audited(new AzgateError("access_denied", `your review would not count: no threshold of this request counts reviews like yours (${thresholds.map((t) => t.filter).filter(Boolean).join("; ")})`));
  return step(ctx, id, rights, () => ({ kind: "review", verdict, reason, countsFor })).catch(audited);
}

/** review_mfa: a passkey check for this request (the CLI's, or the web page's), else an authenticator code. */
async function checkReviewer(ctx: ProxyContext, caller: Caller, id: string, input: ReviewCheck, rule: string): Promise<void> {
  if (input.mfa) {
    await takeSessionCheck(ctx, caller, input.mfa, { request: id }, rule);
    return;
  }
  if (input.passkey) {
    if (!caller.user) throw new MfaRequired(`${rule} asks for a passkey check, which this session cannot give`);
    try {
      await checkAssertion(ctx, input.passkey.rp, input.passkey.answer, "review", caller.name, userStamp(caller.user).id, id);
    } catch (e) {
      await ctx.audit.emit(audit("MFA_CHECK_FAILED", { user: caller.name, purpose: "review", reason: (e as Error).message, success: false }));
      throw new MfaRequired(`the passkey check failed: ${(e as Error).message}`);
    }
    return;
  }
  const item = await ctx.backend.get<UserAuth>(KEYS.userAuth(caller.name));
  // No code given, and the reviewer has a passkey: the CLI (or the page) asks for the passkey instead.
  if (!input.otp && item?.value.webauthn?.length) throw new MfaRequired(`${rule} asks for a fresh check with each review: your passkey or security key (the azgate CLI opens the browser for it), or an authenticator code (--otp)`);
  const why = await checkReviewCode(ctx, caller.name, String(input.otp ?? ""));
  if (why) throw new AzgateError(input.otp ? "login_failed" : "access_denied", `${rule.replace(/ \(review_mfa\)$/, "")} requires an authenticator code with each review: ${why}`);
}

/**
 * A reviewer's authenticator code, checked as at login: a code is good
 * once (the step must be later than the last one used). Null when it holds;
 * else why not.
 */
async function checkReviewCode(ctx: ProxyContext, user: string, otp: string): Promise<string | null> {
  const item = await ctx.backend.get<UserAuth>(KEYS.userAuth(user));
  if (!item?.value.totp_secret) return `you have no authenticator registered with azgate; add a passkey on the web UI's Passkeys page and review with it (SSO users and clusters without OTP cannot give a code)`;
  if (!otp) return "give the code (--otp CODE)";
  // A stolen session guessing codes meets a lockout (lockout.ts): counted before judged, a count of its own.
  const counted = await countAttempt(ctx, user, "review");
  if (counted.locked) return lockedReason(counted.locked);
  const step = freshTotpStep(item.value.totp_secret, otp, item.value.totp_last_step, ctx.clock.now());
  const taken =
    step !== null &&
    (await ctx.backend.compareAndSwap<UserAuth>(item.key, item.revision, { ...item.value, totp_last_step: step }).then(
      () => true,
      () => false,
    ));
  if (!taken) {
    await failed(ctx, user, counted);
    return "the code is wrong or already used";
  }
  await succeeded(ctx, user, "review");
  return null;
}


export async function cancelRequest(ctx: ProxyContext, caller: Caller, id: string): Promise<AccessRequest> {
  const { value } = await load(ctx, id);
  return step(ctx, id, await rightsOf(ctx, caller), () => ({ kind: "cancel" })).catch((e) => refused(ctx, "ACCESS_REQUEST_CANCEL_REFUSED", caller, value, e));
}

/** Ends an approved request's grant now: its requester, a reviewer, or whoever may update access requests. */
export async function revokeRequest(ctx: ProxyContext, caller: Caller, id: string, input: { reason?: string }): Promise<AccessRequest> {
  const reason = text(input.reason, "a reason (--reason)", false);
  const { value } = await load(ctx, id);
  return step(ctx, id, await rightsOf(ctx, caller), () => ({ kind: "revoke", reason })).catch((e) => refused(ctx, "ACCESS_REQUEST_REVOKE_REFUSED", caller, value, e));
}

/**
 * This user record's APPROVED requests whose window has not ended: apps ls
 * lists their identities and apps login takes them. (A pending one is not
 * enough: apps login runs az login, which needs ARM to answer.) Once a
 * session is up, it lasts as long as the login; later grants for the same
 * identity reach it without a new apps login.
 */
export async function openRequestsOf(ctx: ProxyContext, caller: Caller): Promise<AccessRequest[]> {
  if (!caller.user) return [];
  const now = ctx.clock.now();
  const who = { user: caller.name, user_id: userStamp(caller.user).id };
  return (await ctx.backend.list<AccessRequest>(KEYS.accessRequests)).map((i) => i.value).filter((r) => isRequestOf(r, who) && effectiveState(r, now) === "APPROVED");
}

export async function openRequestFor(ctx: ProxyContext, caller: Caller, app: string, identity: string): Promise<AccessRequest | undefined> {
  return (await openRequestsOf(ctx, caller)).find((r) => r.spec.app === app && sameIdentity(r.spec.azure_identity, identity));
}

/**
 * A user deleted: their pending requests are cancelled and their approved
 * ones revoked, grants removed, each audited. (A re-created user of the same
 * name is another record and could not use them anyway: ids differ.)
 */
export async function endRequestsOfUser(ctx: ProxyContext, by: Caller, name: string): Promise<number> {
  let ended = 0;
  const rights: Rights = { ...SYSTEM, actor: by.name };
  for (const item of await ctx.backend.list<AccessRequest>(KEYS.accessRequests)) {
    const state = effectiveState(item.value, ctx.clock.now());
    if (item.value.spec.user !== name || (state !== "PENDING" && state !== "APPROVED")) continue;
    const done = applyTransition(item.value, { kind: "user_deleted" }, rights, ctx.clock.now());
    try {
      await ctx.backend.compareAndSwap(item.key, item.revision, done.next);
    } catch (e) {
      if (e instanceof AzgateError && e.code === "compare_failed") continue; // changed meanwhile: its own step audits it
      throw e;
    }
    ended++;
    await emitStep(ctx, done);
  }
  return ended;
}

/**
 * Records the ends that come with time, once each (compare-and-swap: of
 * several replicas sweeping, one writes the event): a pending request past
 * its review deadline (`access_request.expire`) and a grant whose window ran
 * out (`access_grant.end`). Access itself never waits for this: the grant's
 * window is checked on every request.
 */
export async function recordEndings(deps: Pick<ProxyContext, "backend" | "audit" | "clock">): Promise<number> {
  const now = deps.clock.now();
  let recorded = 0;
  for (const item of await deps.backend.list<AccessRequest>(KEYS.accessRequests)) {
    if (effectiveState(item.value, now) !== "EXPIRED" || item.value.spec.state === "EXPIRED") continue;
    const done = applyTransition(item.value, { kind: "expire" }, SYSTEM, now);
    try {
      await deps.backend.compareAndSwap(item.key, item.revision, done.next);
    } catch (e) {
      if (e instanceof AzgateError && e.code === "compare_failed") continue; // another replica recorded it, or it changed
      throw e;
    }
    recorded++;
    await emitStep(deps, done);
  }
  return recorded;
}
