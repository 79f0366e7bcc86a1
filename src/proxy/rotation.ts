/**
 * The proxy's side of a CA rotation: load the authority's record, apply the
 * phase machine (pki/rotation.ts: the one place that decides which phase may
 * follow which and what each phase does with the keys), compare-and-swap the
 * record, audit. Every replica follows the record (cluster.ts
 * followAuthorities); a semi-automatic rotation's next phase is written by
 * whichever replica's clock reaches it first (the others lose the
 * compare-and-swap and hear of it).
 */
import { audit } from "../audit/events.ts";
import { AzgateError } from "../errors/index.ts";
import { createAuthority, storeAuthority, type AuthorityType, type StoredAuthority } from "../pki/authority.ts";
import { advanceAuto, DEFAULT_GRACE_PERIOD_MS, duePhase, keyChange, nextDue, nextRotation, PHASES, STANDBY, type Phase, type RotateCommand, type RotationState } from "../pki/rotation.ts";
import { parseDuration } from "../util/duration.ts";
import type { AgentRecord } from "./join.ts";
import type { Timer } from "../util/clock.ts";
import { authorize, type Caller } from "./caller.ts";
import { onAuthorityChange } from "./cluster.ts";
import type { ProxyContext } from "./context.ts";
import { KEYS } from "./keys.ts";

/** Retired CAs kept (their certificates only), to tell holders of their certificates what happened. */
const RETIRED_KEPT = 8;

/** One authority's rotation, as `admin status` and `admin auth rotate` show it. */
export interface RotationStatus {
  type: AuthorityType;
  phase: Phase;
  mode: "manual" | "auto";
  started?: string;
  changed?: string;
  /** auto: when each later phase is due. */
  schedule?: RotationState["schedule"];
  /** The pins trusted now, the signing CA first. */
  pins: string[];
  /** The pin of the CA that signs now. */
  signing: string;
  /** Pins retired by earlier rotations, newest first, and when. */
  retired: { pin: string; retired: string }[];
}

export function rotationStatus(ctx: ProxyContext, type: AuthorityType): RotationStatus {
  const v = ctx.cluster.views[type];
  return {
    type,
    phase: v.rotation.phase,
    mode: v.rotation.mode,
    ...(v.rotation.started && v.rotation.phase !== "standby" ? { started: v.rotation.started } : {}),
    ...(v.rotation.changed ? { changed: v.rotation.changed } : {}),
    ...(v.rotation.schedule && v.rotation.phase !== "standby" ? { schedule: v.rotation.schedule } : {}),
    pins: v.pins,
    signing: v.pins[0],
    retired: v.retired.map((r) => ({ pin: r.pin, retired: r.retired })),
  };
}

/** `azgate admin auth rotate`: one step (manual), or a whole rotation on a schedule (auto). Needs `rotate` on `cert_authority`. */
export async function rotateAuthority(ctx: ProxyContext, caller: Caller, type: AuthorityType, cmd: RotateCommand): Promise<RotationStatus> {
  authorize(caller, "cert_authority", "rotate");
  const item = await ctx.backend.get<StoredAuthority>(KEYS.authority(type));
  if (!item) throw new AzgateError("internal", `the ${type} CA is missing from the backend`);
  await step(ctx, type, item, (current) => nextRotation(current, cmd, ctx.clock.date()), caller.name);
  return rotationStatus(ctx, type);
}

/**
 * Writes the record's next phase (with its keys: a new CA at init, the
 * old or new one retired at the final standby), audits it, and reloads this
 * replica at once. A record changed meanwhile loses: compare_failed.
 */
async function step(ctx: ProxyContext, type: AuthorityType, item: { revision: string; value: StoredAuthority }, next: (r: RotationState) => RotationState, who: string): Promise<void> {
  const stored = item.value;
  const from = stored.rotation ?? STANDBY;
  const rotation = next(from);
  const now = ctx.clock.date();
  let value: StoredAuthority = { ...stored, rotation };
  const change = keyChange(from.phase, rotation.phase);
  if (change === "create") {
    const made = await storeAuthority(await createAuthority(type, ctx.cluster.name, now, from.generation + 1));
    value = { ...value, next: { cert_pem: made.cert_pem, key_pem: made.key_pem } };
  } else if (change === "promote_new" && stored.next) {
    value = { ...value, cert_pem: stored.next.cert_pem, key_pem: stored.next.key_pem, next: undefined, retired: [{ cert_pem: stored.cert_pem, retired: now.toISOString() }, ...(stored.retired ?? [])].slice(0, RETIRED_KEPT) };
  } else if (change === "drop_new" && stored.next) {
    value = { ...value, next: undefined, retired: [{ cert_pem: stored.next.cert_pem, retired: now.toISOString() }, ...(stored.retired ?? [])].slice(0, RETIRED_KEPT) };
  }
  if (value.next === undefined) delete value.next;
  await ctx.backend.compareAndSwap<StoredAuthority>(KEYS.authority(type), item.revision, value);
  await ctx.reloadAuthorities();
  const view = ctx.cluster.views[type];
  const event = audit("CA_ROTATED", {
    user: who,
    ca_type: type,
    phase: rotation.phase,
    from_phase: from.phase,
    mode: rotation.mode,
    ca_pins: view.pins,
    ...(change === "promote_new" || change === "drop_new" ? { retired_pin: view.retired[0]?.pin } : {}),
    ...(rotation.schedule && rotation.phase !== "standby" ? { schedule: rotation.schedule } : {}),
  });
  // The phase has moved (replicas follow the record): a sink that cannot write is not allowed to hide it.
  await ctx.audit.emit(event).catch((e) => {
    console.error(`[proxy] the ${type} CA moved to phase ${rotation.phase}, but the audit log could not record it: ${JSON.stringify(event)}`);
    throw new AzgateError("internal", `the ${type} CA moved to phase ${rotation.phase}, but the audit log could not record it (${(e as Error).message}); the event is in the proxy's log; fix the audit sink`);
  });
}

/** Moves every semi-automatic rotation whose next phase is due; another replica's win is no failure. */
export async function advanceDueRotations(ctx: ProxyContext): Promise<void> {
  for (const type of ["user", "host"] as const) {
    const item = await ctx.backend.get<StoredAuthority>(KEYS.authority(type));
    if (!item?.value.rotation) continue;
    const phase = duePhase(item.value.rotation, ctx.clock.date());
    if (!phase) continue;
    try {
      await step(ctx, type, item, (r) => advanceAuto(r, phase, ctx.clock.date()), "azgate (scheduled)");
    } catch (e) {
      if ((e as AzgateError).code !== "compare_failed") throw e;
    }
  }
}

/**
 * Runs semi-automatic rotations on this replica: a timer on the context's
 * clock for the next phase due, set again whenever the authorities change.
 */
export function scheduleRotations(ctx: ProxyContext): { stop(): void } {
  let timer: Timer | undefined;
  let stopped = false;
  const arm = () => {
    timer?.cancel();
    if (stopped) return;
    const due = [ctx.cluster.views.user.rotation, ctx.cluster.views.host.rotation].map(nextDue).filter((t): t is number => t !== null);
    if (!due.length) return;
    timer = ctx.clock.after(Math.max(0, Math.min(...due) - ctx.clock.now()), () => {
      void advanceDueRotations(ctx)
        .catch((e) => console.error("[proxy] advancing a scheduled CA rotation failed:", (e as Error).message))
        .finally(() => {
          // Nothing changed (the write failed, or the schedule is not due yet by this clock): look again shortly.
          if (!stopped) timer = ctx.clock.after(1_000, arm).unref();
        });
    }).unref();
  };
  const unlisten = onAuthorityChange(ctx.cluster, arm);
  arm();
  return {
    stop() {
      stopped = true;
      timer?.cancel();
      unlisten();
    },
  };
}

/** `--type`: host or user, anything else refused naming both. */
export function caType(type: unknown): AuthorityType {
  if (type === "host" || type === "user") return type;
  throw new AzgateError("bad_parameter", `--type must be host (the proxy's and agents' CA) or user (users' and app sessions' CA), not ${JSON.stringify(String(type ?? "")).slice(0, 40)}`);
}

/** The command a request body says: --manual --phase P, or a schedule over --grace-period (48h when not given, as Teleport). */
export function rotateCommand(body: { manual?: boolean; phase?: string; grace_period?: string }): RotateCommand {
  if (body.manual) {
    if (!body.phase) throw new AzgateError("bad_parameter", `--manual needs --phase (${PHASES.filter((p) => p !== "standby").join(", ")} or standby)`);
    if (!(PHASES as readonly string[]).includes(body.phase)) throw new AzgateError("bad_parameter", `--phase must be one of ${PHASES.join(", ")}, not ${JSON.stringify(body.phase.slice(0, 40))}`);
    if (body.grace_period) throw new AzgateError("bad_parameter", "--grace-period is for a semi-automatic rotation; with --manual each phase waits for you");
    return { mode: "manual", phase: body.phase as Phase };
  }
  if (body.phase) throw new AzgateError("bad_parameter", "--phase needs --manual (without it the phases follow each other over --grace-period)");
  return { mode: "auto", gracePeriodMs: body.grace_period ? parseDuration(body.grace_period, "--grace-period") : DEFAULT_GRACE_PERIOD_MS };
}

/** An agent, or an app session on this replica, that has not moved to what the rotation's phase asks yet. */
export interface Laggard {
  who: string;
  why: string;
}

/** `admin status`: each CA's rotation, and who has not moved yet (agents from their records, app sessions open on this replica). */
export async function rotationReport(ctx: ProxyContext, caller: Caller, tunnels?: { clientIssuers(): { user: string; session_id: string; issuerPin: string }[] }): Promise<{ host: RotationStatus; user: RotationStatus; waiting: Laggard[] }> {
  authorize(caller, "cert_authority", "read");
  const host = rotationStatus(ctx, "host");
  const user = rotationStatus(ctx, "user");
  const waiting: Laggard[] = [];
  if (host.phase !== "standby") {
    for (const { value: a } of await ctx.backend.list<AgentRecord>(KEYS.agents)) {
      const name = `agent ${a.host_name} (${a.host_id})`;
      const missing = host.pins.filter((p) => !(a.trusted_pins ?? []).includes(p));
      if (missing.length) waiting.push({ who: name, why: `has not confirmed it trusts ${missing.join(", ")}` });
      if (host.phase !== "init" && a.ca_pin !== host.signing) waiting.push({ who: name, why: `its certificate is not from the CA that signs now (${host.signing}) yet` });
    }
  }
  if (user.phase !== "standby" && user.phase !== "init") {
    for (const c of tunnels?.clientIssuers() ?? []) {
      if (c.issuerPin !== user.signing) waiting.push({ who: `app session of ${c.user} (${c.session_id}) on this replica`, why: `its certificate is not from the CA that signs now (${user.signing}) yet` });
    }
  }
  return { host, user, waiting };
}
