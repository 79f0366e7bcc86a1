/**
 * Azure's Activity Log joined to azgate's audit (pure): for each entry of an
 * exported Activity Log (`az monitor activity-log list -o json`, or the
 * portal's export), the azgate user and command that made it, or that none
 * did. Azure records the identity (every user of one managed identity looks
 * the same there); azgate records who used it. The join is ARM's
 * correlation ID (`correlationId`, the `x-ms-correlation-request-id` azgate
 * saw in Azure's answer), else the client's request ID
 * (`httpRequest.clientRequestId`, which azgate forwarded), and only while
 * the command ran (from CLOCK_SKEW_MS before it to FINISH_MS after it: a
 * long-running operation's last entry comes when it ends). Both IDs can be
 * chosen by a client, so a match says "consistent with", while a write that
 * no azgate command explains was certainly made around the gateway.
 */
import { z } from "zod";
import type { CommandRow } from "./commands.ts";

/** The fields of an Activity Log entry the join reads (EventData, as ARM and `az monitor activity-log list` give it). */
export const activityEntrySchema = z.object({
  eventTimestamp: z.string().max(64),
  correlationId: z.string().max(128).optional().nullable(),
  caller: z.string().max(512).optional().nullable(),
  resourceId: z.string().max(2048).optional().nullable(),
  operationName: z.object({ value: z.string().max(512).optional().nullable() }).passthrough().optional().nullable(),
  status: z.object({ value: z.string().max(128).optional().nullable() }).passthrough().optional().nullable(),
  httpRequest: z.object({ clientRequestId: z.string().max(128).optional().nullable(), method: z.string().max(16).optional().nullable() }).passthrough().optional().nullable(),
}).passthrough();
export type ActivityEntry = z.infer<typeof activityEntrySchema>;

/** Azure's clock and the proxy's may differ this much. */
export const CLOCK_SKEW_MS = 5 * 60_000;
/** A long-running operation's last entry may come this long after the command that started it ended. */
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
  /** True when an azgate command made it. */
  through_azgate: boolean;
  /** How it was matched: Azure's correlation ID, or the client's request ID. */
  matched_by?: "correlation_id" | "client_request_id";
  user?: string;
  command?: string | null;
  command_id?: string;
  session_id?: string;
  azure_identity?: string;
}

export function correlate(entries: ActivityEntry[], commands: CommandRow[]): Attribution[] {
  const byCorrelation = new Map<string, CommandRow[]>();
  const byClientRequest = new Map<string, CommandRow[]>();
  const add = (m: Map<string, CommandRow[]>, id: string, c: CommandRow) => m.set(id.toLowerCase(), [...(m.get(id.toLowerCase()) ?? []), c]);
  for (const c of commands) {
    for (const id of c.correlation_ids) add(byCorrelation, id, c);
    for (const id of c.client_request_ids) add(byClientRequest, id, c);
  }
  const during = (t: number) => (c: CommandRow) => t >= Date.parse(c.time) - CLOCK_SKEW_MS && t <= Date.parse(c.end) + FINISH_MS;
  return entries.map((e) => {
    const base: Attribution = {
      time: e.eventTimestamp,
      operation: e.operationName?.value ?? null,
      resource_id: e.resourceId ?? null,
      status: e.status?.value ?? null,
      caller: e.caller ?? null,
      correlation_id: e.correlationId ?? null,
      through_azgate: false,
    };
    const at = during(Date.parse(e.eventTimestamp));
    const byCorr = e.correlationId ? byCorrelation.get(e.correlationId.toLowerCase())?.find(at) : undefined;
    const byClient = e.httpRequest?.clientRequestId ? byClientRequest.get(e.httpRequest.clientRequestId.toLowerCase())?.find(at) : undefined;
    const c = byCorr ?? byClient;
    if (!c) return base;
    return { ...base, through_azgate: true, matched_by: byCorr ? "correlation_id" : "client_request_id", user: c.user, command: c.command, command_id: c.id, session_id: c.session_id, azure_identity: c.azure_identity };
  });
}
