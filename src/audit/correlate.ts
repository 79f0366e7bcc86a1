/**
 * Azure's Activity Log joined to azgate's audit (pure): for each entry of an
 * exported Activity Log (`az monitor activity-log list -o json`, or the
 * portal's export), the azgate user and command that made it, or that none
 * did. Azure records the identity (every user of one managed identity looks
 * the same there); azgate records who used it.
 *
 * The join is ARM's correlation ID, which azgate sets itself on every
 * request it forwards (its own request ID, replacing any the client chose:
 * proxy/app-request.ts), so no client can make a write around azgate carry
 * an ID azgate will vouch for by choosing it first. An ID can still be
 * copied from the Activity Log onto a later write, so an entry is explained
 * by an azgate request only when, besides the ID, Azure's caller is the
 * principal whose token the agent sent (when the agent said), and the entry
 * came while that request ran (from CLOCK_SKEW_MS before it to FINISH_MS
 * after it: a long-running operation's last entry comes when it ends). An
 * entry with the ID and the caller but another operation or resource is
 * explained as part of that request (a template deployment's resources
 * share its correlation ID), and says so. One azgate request is one ARM
 * operation of its own: when entries of two operations (two `operationId`s)
 * carry its ID, its action and its resource, one of them was made around
 * azgate with the ID copied, and neither is vouched for. What nothing
 * explains was made around the gateway.
 */
import { z } from "zod";
import type { AzureCall, CommandRow } from "./commands.ts";

/** The fields of an Activity Log entry the join reads (EventData, as ARM and `az monitor activity-log list` give it). */
export const activityEntrySchema = z
  .object({
    eventTimestamp: z.string().max(64),
    correlationId: z.string().max(128).optional().nullable(),
    operationId: z.string().max(128).optional().nullable(),
    caller: z.string().max(512).optional().nullable(),
    resourceId: z.string().max(2048).optional().nullable(),
    operationName: z.object({ value: z.string().max(512).optional().nullable() }).passthrough().optional().nullable(),
    status: z.object({ value: z.string().max(128).optional().nullable() }).passthrough().optional().nullable(),
  })
  .passthrough();
export type ActivityEntry = z.infer<typeof activityEntrySchema>;

/** Azure's clock and the proxy's may differ this much. */
export const CLOCK_SKEW_MS = 5 * 60_000;
/** A long-running operation's last entry may come this long after the request that started it. */
export const FINISH_MS = 60 * 60_000;
/** The most entries one correlation reads. */
export const MAX_ACTIVITY_ENTRIES = 10_000;

export interface Attribution {
  time: string;
  operation: string | null;
  resource_id: string | null;
  status: string | null;
  /** Who Azure says called: the managed identity's object ID. */
  caller: string | null;
  correlation_id: string | null;
  /** True when an azgate request made it. */
  through_azgate: boolean;
  /** The azgate request whose correlation ID it carries, and whether it is that request's own operation on its resource (false: part of it, as a deployment's resources are). */
  request_id?: string;
  same_operation?: boolean;
  /** False when the agent did not say whose token it sent (an older agent): the caller could not be compared. */
  caller_checked?: boolean;
  user?: string;
  command?: string | null;
  command_id?: string;
  session_id?: string;
  azure_identity?: string;
  /** Why an entry with an azgate correlation ID is not explained (another caller, another time). */
  not_explained_because?: string;
}

const same = (a: string | null | undefined, b: string | null | undefined) => !!a && !!b && a.toLowerCase() === b.toLowerCase();

export function correlate(entries: ActivityEntry[], commands: CommandRow[]): Attribution[] {
  const byCorrelation = new Map<string, { call: AzureCall; command: CommandRow }>();
  for (const command of commands) for (const call of command.azure_calls) byCorrelation.set(call.correlation_id.toLowerCase(), { call, command });
  const attributed = entries.map((e) => attribute(e, byCorrelation));
  // One request, one operation of its own: a second operationId on its own action and resource is a copy.
  const operations = new Map<string, Set<string>>();
  entries.forEach((e, i) => {
    const a = attributed[i];
    if (a.through_azgate && a.same_operation && e.operationId) operations.set(a.request_id!, (operations.get(a.request_id!) ?? new Set()).add(e.operationId.toLowerCase()));
  });
  return attributed.map((a) =>
    a.through_azgate && a.same_operation && (operations.get(a.request_id!)?.size ?? 0) > 1
      ? { ...notVouched(a), not_explained_because: `${operations.get(a.request_id!)!.size} operations carry azgate request ${a.request_id}'s correlation ID for its one ${a.operation ?? "operation"}: all but one were made around azgate with the ID copied` }
      : a,
  );
}

/** An attribution taken back: the request it pointed at stays named. */
function notVouched(a: Attribution): Attribution {
  return { time: a.time, operation: a.operation, resource_id: a.resource_id, status: a.status, caller: a.caller, correlation_id: a.correlation_id, through_azgate: false, request_id: a.request_id };
}

function attribute(e: ActivityEntry, byCorrelation: Map<string, { call: AzureCall; command: CommandRow }>): Attribution {
  {
    const base: Attribution = {
      time: e.eventTimestamp,
      operation: e.operationName?.value ?? null,
      resource_id: e.resourceId ?? null,
      status: e.status?.value ?? null,
      caller: e.caller ?? null,
      correlation_id: e.correlationId ?? null,
      through_azgate: false,
    };
    const found = e.correlationId ? byCorrelation.get(e.correlationId.toLowerCase()) : undefined;
    if (!found) return base;
    const { call, command } = found;
    const t = Date.parse(e.eventTimestamp);
    if (!(t >= Date.parse(call.start) - CLOCK_SKEW_MS && t <= Date.parse(call.end) + FINISH_MS)) {
      return { ...base, request_id: call.request_id, not_explained_because: `it carries azgate request ${call.request_id}'s correlation ID, but came at another time` };
    }
    if (call.principal_id && !same(call.principal_id, e.caller)) {
      return { ...base, request_id: call.request_id, not_explained_because: `it carries azgate request ${call.request_id}'s correlation ID, but another principal called (${e.caller ?? "none"}, not ${call.principal_id})` };
    }
    return {
      ...base,
      through_azgate: true,
      request_id: call.request_id,
      same_operation: same(call.action, e.operationName?.value) && same(call.scope, e.resourceId),
      caller_checked: !!call.principal_id,
      user: command.user,
      command: command.command,
      command_id: command.id,
      session_id: command.session_id,
      azure_identity: command.azure_identity,
    };
  }
}
