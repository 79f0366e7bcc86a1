/**
 * Auto-review rules (Teleport Enterprise's access monitoring rules, free
 * here): a condition over a new request and its requester, an optional
 * schedule, and a decision. When a request is created, a matching DENIED
 * rule denies it and, failing that, a matching APPROVED rule approves it,
 * with no reviewer; the audit log names the rule. Pure: schema and matching.
 *
 * A schedule is read over the time the decision covers, not only the moment
 * it is made: an APPROVED rule's schedule must hold for the whole grant
 * window (a request made in office hours for a window that starts after them
 * waits for a human), a DENIED rule's applies if it holds at any minute from
 * the request's creation to the window's end (deny wins).
 *
 *   kind: access_rule
 *   version: v1
 *   metadata: { name: reader-office-hours }
 *   spec:
 *     condition: 'request.azure_identity == "/subscriptions/.../teleport-reader" && contains(user.roles, "sre")'
 *     schedule: { timezone: Europe/Berlin, days: [Mon, Tue, Wed, Thu, Fri], hours: "08:00-18:00" }
 *     decision: APPROVED
 *     reason: reader access in office hours needs no reviewer
 */
import { z } from "zod";
import { compilePredicate, PredicateError, type Vars } from "../rbac/predicate.ts";

export const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] as const;
/** What a rule's condition may read: the request and its requester, never a reviewer (there is none). */
export const RULE_ROOTS = ["request", "user"];

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "name must be 1-64 letters, digits, '.', '_' or '-'");
const hhmm = "([01][0-9]|2[0-3]):[0-5][0-9]";

const schedule = z.strictObject({
  timezone: z.string().refine(validTimezone, { message: "timezone must be an IANA name such as Europe/Berlin or UTC" }),
  days: z.array(z.enum(DAYS, { message: `days: each must be one of ${DAYS.join(", ")}` })).min(1).optional(),
  /** HH:MM-HH:MM, end excluded; an end before the start runs past midnight. */
  hours: z.string().regex(new RegExp(`^${hhmm}-${hhmm}$`), 'hours must be "HH:MM-HH:MM", e.g. "08:00-18:00"').optional(),
});

export const accessRuleSchema = z.strictObject({
  kind: z.literal("access_rule"),
  version: z.literal("v1", { message: "version must be v1" }),
  metadata: z.strictObject({ name, description: z.string().optional(), labels: z.record(z.string(), z.string()).optional(), revision: z.string().optional() }),
  spec: z.strictObject({
    condition: z.string().superRefine((v, ctx) => {
      try {
        compilePredicate(v, RULE_ROOTS);
      } catch (e) {
        if (!(e instanceof PredicateError)) throw e;
        ctx.addIssue({ code: "custom", message: e.message });
      }
    }),
    schedule: schedule.optional(),
    decision: z.enum(["APPROVED", "DENIED"], { message: "decision must be APPROVED or DENIED" }),
    reason: z.string().max(1024).optional(),
  }),
});

export type AccessRule = z.infer<typeof accessRuleSchema>;

function validTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-GB", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Is `at` inside the schedule (its weekday and hours, in its timezone)? No schedule: always. */
export function inSchedule(s: AccessRule["spec"]["schedule"], at: Date): boolean {
  if (!s) return true;
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-GB", { timeZone: s.timezone, weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).formatToParts(at).map((p) => [p.type, p.value]));
  const minute = Number(parts.hour) * 60 + Number(parts.minute);
  const day = parts.weekday as (typeof DAYS)[number];
  if (!s.hours) return !s.days || s.days.includes(day);
  const [from, to] = s.hours.split("-").map((t) => Number(t.slice(0, 2)) * 60 + Number(t.slice(3)));
  if (from <= to) return (!s.days || s.days.includes(day)) && minute >= from && minute < to;
  // Past midnight: the part after midnight belongs to the day the shift started.
  const previous = DAYS[(DAYS.indexOf(day) + 6) % 7];
  return (minute >= from && (!s.days || s.days.includes(day))) || (minute < to && (!s.days || s.days.includes(previous)));
}

/** The minutes of [from, to): `from` itself, then every UTC minute boundary after it (schedules change only there). */
function* minutes(from: number, to: number): Generator<Date> {
  yield new Date(from);
  for (let t = Math.floor(from / 60_000) * 60_000 + 60_000; t < to; t += 60_000) yield new Date(t);
}

/** Does the schedule hold at every minute of [from, to)? No schedule: yes. */
export function scheduleCovers(s: AccessRule["spec"]["schedule"], from: number, to: number): boolean {
  if (!s) return true;
  for (const at of minutes(from, to)) if (!inSchedule(s, at)) return false;
  return true;
}

/** Does the schedule hold at some minute of [from, to)? No schedule: yes. */
export function scheduleTouches(s: AccessRule["spec"]["schedule"], from: number, to: number): boolean {
  if (!s) return true;
  for (const at of minutes(from, to)) if (inSchedule(s, at)) return true;
  return false;
}

/** What a rule's schedule is read over: when the request is made, and the grant window it asks for. */
export interface RuleTimes {
  now: number;
  window: { from: number; to: number };
}

/**
 * The rule that decides this request, if any: deny wins over approve; among
 * equals, the first by name. An APPROVED rule's schedule must cover the whole
 * window; a DENIED rule's need only touch [now, window's end).
 */
export function decidingRule(rules: AccessRule[], vars: Vars, times: RuleTimes): AccessRule | undefined {
  const inTime = (r: AccessRule) =>
    r.spec.decision === "DENIED" ? scheduleTouches(r.spec.schedule, Math.min(times.now, times.window.from), times.window.to) : scheduleCovers(r.spec.schedule, times.window.from, times.window.to);
  const matching = rules.filter((r) => inTime(r) && compilePredicate(r.spec.condition, RULE_ROOTS).test(vars)).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  return matching.find((r) => r.spec.decision === "DENIED") ?? matching[0];
}
