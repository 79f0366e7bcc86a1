/**
 * The audit log by command (pure): the request events of one command (the
 * same `command_id` in one session: azure/client-info.ts says how a request
 * is given one) folded into one row: who, which identity, what the client
 * said it ran (az's command and parameter names, or the program `azgate
 * exec` ran), how many requests, the Azure operations they touched, and
 * the result. The proxy's own facts (user, identity, operations, decision)
 * are its; the command's name is the client's word.
 */
import type { AuditEvent } from "./sink.ts";

export const COMMAND_RESULTS = ["allowed", "denied", "failed", "in_flight"] as const;
export type CommandResult = (typeof COMMAND_RESULTS)[number];

export interface CommandRow {
  /** The command's ID within its session (`admin audit ls --session S --command ID` lists its requests). */
  id: string;
  session_id: string;
  /** Its first event, its last, and the time between. */
  time: string;
  end: string;
  duration_ms: number;
  user: string;
  app: string;
  azure_identity: string;
  /** `az group delete`, or the program `azgate exec` ran; null when the client said neither. */
  command: string | null;
  /** az's parameter names (`--name --yes`), never their values. */
  parameters: string | null;
  invocation_id: string | null;
  user_agent: string | null;
  requests: number;
  /** The Azure operations its requests named, in first-seen order. */
  actions: string[];
  /** denied: azgate refused one of its requests; failed: Azure answered one with an error (or none came); in_flight: a request has no end yet. */
  result: CommandResult;
  denied: number;
  failed: number;
  /** Its requests that Azure answered, as Azure's Activity Log can name them (audit/correlate.ts joins on these). */
  azure_calls: AzureCall[];
  access_request_id?: string;
  /** The first request, for a command the client did not name. */
  first_request: { method: string; host: string; path: string };
}

/** One request Azure answered: the correlation ID azgate sent (its request ID), what it did, and who Azure saw call. */
export interface AzureCall {
  request_id: string;
  correlation_id: string;
  action: string | null;
  scope: string | null;
  /** The object ID of the token the agent sent, when the agent said. */
  principal_id: string | null;
  /** When the request started and when Azure's answer was recorded. */
  start: string;
  end: string;
  status: number | null;
}

type Said = { command?: string; parameters?: string; invocation_id?: string; user_agent?: string; program?: string; client_request_id?: string };

const REQUEST_EVENTS = new Set(["app.request.start", "app.request", "app.request.denied"]);

/** Rows, newest first, from request events in any order; other events are ignored. */
export function commandsOf(events: AuditEvent[]): CommandRow[] {
  const groups = new Map<string, AuditEvent[]>();
  for (const e of events) {
    if (!REQUEST_EVENTS.has(e.event) || typeof e.request_id !== "string") continue;
    // An event from before commands were recorded is a command of its own.
    const id = typeof e.command_id === "string" ? e.command_id : `req:${e.request_id}`;
    const key = JSON.stringify([e.user, e.session_id ?? null, id]);
    const group = groups.get(key);
    if (group) group.push(e);
    else groups.set(key, [e]);
  }
  const rows = [...groups.values()].map(row);
  return rows.sort((a, b) => b.time.localeCompare(a.time) || a.id.localeCompare(b.id));
}

function row(events: AuditEvent[]): CommandRow {
  events.sort((a, b) => a.time.localeCompare(b.time));
  const first = events[0];
  const str = (v: unknown) => (typeof v === "string" ? v : null);
  const said = events.map((e) => (e.client ?? {}) as Said).find((c) => c.command || c.program) ?? ((first.client ?? {}) as Said);
  const byRequest = new Map<string, AuditEvent[]>();
  for (const e of events) byRequest.set(e.request_id as string, [...(byRequest.get(e.request_id as string) ?? []), e]);
  let denied = 0;
  let failed = 0;
  let open = 0;
  for (const evs of byRequest.values()) {
    const end = evs.find((e) => e.event !== "app.request.start");
    if (!end) open++;
    else if (end.event === "app.request.denied") denied++;
    else if (end.success === false || (typeof end.status === "number" && end.status >= 400)) failed++;
  }
  const distinct = (values: unknown[]) => [...new Set(values.filter((v): v is string => typeof v === "string" && v !== ""))];
  const last = events[events.length - 1];
  return {
    id: str(first.command_id) ?? `req:${first.request_id}`,
    session_id: str(first.session_id) ?? "",
    time: first.time,
    end: last.time,
    duration_ms: Date.parse(last.time) - Date.parse(first.time),
    user: first.user ?? "",
    app: str(first.app) ?? "",
    azure_identity: str(first.azure_identity) ?? "",
    command: said.command ? `az ${said.command}` : (said.program ?? null),
    parameters: said.parameters ?? null,
    invocation_id: said.invocation_id ?? null,
    user_agent: said.user_agent ?? null,
    requests: byRequest.size,
    actions: distinct(events.map((e) => e.action)),
    result: denied ? "denied" : failed ? "failed" : open ? "in_flight" : "allowed",
    denied,
    failed,
    azure_calls: [...byRequest.values()].flatMap((evs) => {
      const end = evs.find((e) => e.event === "app.request" && typeof e.azure_correlation_id === "string");
      if (!end) return [];
      return [{ request_id: end.request_id as string, correlation_id: end.azure_correlation_id as string, action: str(end.action), scope: str(end.scope), principal_id: str(end.azure_principal_id), start: evs[0].time, end: end.time, status: typeof end.status === "number" ? end.status : null }];
    }),
    ...(distinct(events.map((e) => e.access_request_id))[0] ? { access_request_id: distinct(events.map((e) => e.access_request_id))[0] } : {}),
    first_request: { method: str(first.method) ?? "", host: str(first.host) ?? "", path: str(first.path) ?? "" },
  };
}
