/**
 * Rotating a cluster key in phases, as Teleport's `tctl auth rotate` names
 * them, in one place: which phase may follow which, when a semi-automatic
 * rotation's next phase is due, and, for each phase, which CA signs, which
 * CAs are trusted and which one the proxy's own TLS certificate comes from.
 * Pure: the time is an argument, and making a new key is the caller's.
 *
 *   standby ──init──▶ init ──▶ update_clients ──▶ update_servers ──▶ standby
 *                       └──────────┴──────────────────┴──▶ rollback ──▶ standby
 *
 * | phase          | signs | trusted   | proxy TLS (host) |
 * |----------------|-------|-----------|------------------|
 * | standby        | it    | it        | it               |
 * | init           | old   | old, new  | old              |
 * | update_clients | new   | new, old  | old              |
 * | update_servers | new   | new, old  | new              |
 * | rollback       | old   | old, new  | old              |
 *
 * The standby that ends a rotation retires the old CA (after rollback: the
 * new one); its certificate is kept in `retired`, so a certificate it signed
 * is refused as `ca_retired`, naming what to do, not as a foreign one.
 */
import { AzgateError } from "../errors/index.ts";
import { formatDuration } from "../util/duration.ts";

export type CaType = "host" | "user";
export const CA_TYPES: readonly CaType[] = ["host", "user"];

export const PHASES = ["standby", "init", "update_clients", "update_servers", "rollback"] as const;
export type Phase = (typeof PHASES)[number];

/** The phase each phase goes on to (rollback aside, which init, update_clients and update_servers may take). */
const FORWARD: Record<Phase, Phase | null> = { standby: "init", init: "update_clients", update_clients: "update_servers", update_servers: "standby", rollback: "standby" };
const MAY_ROLL_BACK: readonly Phase[] = ["init", "update_clients", "update_servers"];

export interface RotationState {
  phase: Phase;
  /** manual: the operator moves each phase; auto: each phase follows when its time in `schedule` comes. */
  mode: "manual" | "auto";
  /** When the rotation started (init). */
  started?: string;
  /** auto: when each phase after init is due (Teleport splits the grace period evenly). */
  schedule?: { update_clients: string; update_servers: string; standby: string };
  grace_period_ms?: number;
  /** When the phase last changed. */
  changed?: string;
  /** Rotations finished (a standby after update_servers); names each new CA apart from the earlier ones. */
  generation: number;
}

export const STANDBY: RotationState = { phase: "standby", mode: "manual", generation: 0 };

export type RotateCommand = { mode: "manual"; phase: Phase } | { mode: "auto"; gracePeriodMs: number };

/** The shortest and longest grace period a semi-automatic rotation takes. */
export const GRACE_PERIOD_BOUNDS_MS = { min: 3_000, max: 365 * 86_400_000 };
/** Teleport's default grace period. */
export const DEFAULT_GRACE_PERIOD_MS = 48 * 3_600_000;

/**
 * The rotation after `cmd`, or a bad_parameter error that says what may come
 * next. A manual phase given during a semi-automatic rotation takes it over
 * (the schedule is dropped), as in Teleport.
 */
export function nextRotation(current: RotationState, cmd: RotateCommand, now: Date): RotationState {
  const at = now.toISOString();
  if (cmd.mode === "auto") {
    if (current.phase !== "standby") throw new AzgateError("bad_parameter", `a rotation is under way (phase ${current.phase}); move it on with --manual --phase ${FORWARD[current.phase]}, or roll it back with --manual --phase rollback`);
    const g = cmd.gracePeriodMs;
    if (!(g >= GRACE_PERIOD_BOUNDS_MS.min && g <= GRACE_PERIOD_BOUNDS_MS.max)) {
      throw new AzgateError("bad_parameter", `--grace-period must be between ${formatDuration(GRACE_PERIOD_BOUNDS_MS.min)} and 365 days, not ${formatDuration(g)}`);
    }
    const third = (n: number) => new Date(now.getTime() + Math.round((g * n) / 3)).toISOString();
    return { phase: "init", mode: "auto", started: at, changed: at, grace_period_ms: g, schedule: { update_clients: third(1), update_servers: third(2), standby: third(3) }, generation: current.generation };
  }
  const want = cmd.phase;
  const allowed = [FORWARD[current.phase], ...(MAY_ROLL_BACK.includes(current.phase) ? ["rollback" as const] : [])];
  if (!allowed.includes(want)) {
    const why =
      current.phase === "standby" && want === "rollback" && current.generation > 0 ?
        `rollback is possible only before the final standby; the last rotation ended${current.changed ? ` at ${current.changed}` : ""} and retired the old CA, which cannot come back: to replace the CA in force, start a new rotation with --phase init` :
      current.phase === "standby" ? `no rotation is under way: start one with --phase init` :
      want === "rollback" ? `rollback is possible only before the final standby (the phase is ${current.phase})` :
      `the phase is ${current.phase}; the next one is ${allowed.join(" or ")}`;
    throw new AzgateError("bad_parameter", `cannot go to phase ${want}: ${why}`);
  }
  if (want === "init") return { phase: "init", mode: "manual", started: at, changed: at, generation: current.generation };
  if (want === "standby") return { phase: "standby", mode: "manual", changed: at, generation: current.generation + (current.phase === "update_servers" ? 1 : 0) };
  return { phase: want, mode: "manual", started: current.started, changed: at, generation: current.generation };
}

/** A semi-automatic rotation's next phase when its time has come at `now`, else null. */
export function duePhase(current: RotationState, now: Date): Phase | null {
  if (current.mode !== "auto" || !current.schedule) return null;
  const next = current.phase === "init" ? "update_clients" : current.phase === "update_clients" ? "update_servers" : current.phase === "update_servers" ? "standby" : null;
  return next && Date.parse(current.schedule[next]) <= now.getTime() ? next : null;
}

/** The time the next phase of a semi-automatic rotation is due (ms), or null. */
export function nextDue(current: RotationState): number | null {
  if (current.mode !== "auto" || !current.schedule) return null;
  const next = current.phase === "init" ? "update_clients" : current.phase === "update_clients" ? "update_servers" : current.phase === "update_servers" ? "standby" : null;
  return next ? Date.parse(current.schedule[next]) : null;
}

/** The phase after an automatic step: the same as a manual one, keeping the schedule. */
export function advanceAuto(current: RotationState, phase: Phase, now: Date): RotationState {
  const next = nextRotation(current, { mode: "manual", phase }, now);
  return phase === "standby" ? next : { ...next, mode: "auto", schedule: current.schedule, grace_period_ms: current.grace_period_ms };
}

/** What each phase makes of a CA pair: who signs, who is trusted (the signing CA first), whose certificate the proxy serves. */
export interface CaRoles<T> {
  signing: T;
  trusted: T[];
  tls: T;
}

export function caRoles<T>(phase: Phase, old: T, next: T | undefined): CaRoles<T> {
  if (phase === "standby" || next === undefined) return { signing: old, trusted: [old], tls: old };
  const newSigns = phase === "update_clients" || phase === "update_servers";
  return { signing: newSigns ? next : old, trusted: newSigns ? [next, old] : [old, next], tls: phase === "update_servers" ? next : old };
}

/** The phase moves that make or drop a key: init makes the new CA; the final standby keeps one and retires the other. */
export function keyChange(from: Phase, to: Phase): "create" | "promote_new" | "drop_new" | null {
  if (to === "init") return "create";
  if (to === "standby" && from === "update_servers") return "promote_new";
  if (to === "standby" && from === "rollback") return "drop_new";
  return null;
}
