/**
 * The audit log by command (`admin audit commands`, the web UI's command
 * view): the request events the filters select, folded by
 * audit/commands.ts. Both sinks answer the same search, so both give the
 * same rows.
 */
import { AzgateError } from "../errors/index.ts";
import { COMMAND_RESULTS, commandsOf, type CommandResult, type CommandRow } from "../audit/commands.ts";
import { auditQuery, type AuditFilters } from "./admin.ts";
import { authorize, type Caller } from "./caller.ts";
import type { ProxyContext } from "./context.ts";

/** The newest request events one view reads: a command older than these (or cut by them) is not shown. */
export const COMMAND_EVENTS_READ = 20_000;
export const COMMAND_FILTERS = ["since", "until", "user", "identity", "app", "session", "status", "limit"] as const;
export type CommandFilters = Partial<Record<(typeof COMMAND_FILTERS)[number], string>>;

/** Commands, newest first; `status` is the command's result (allowed, denied, failed, in_flight); `limit` rows (default 100). */
export async function auditCommands(ctx: ProxyContext, caller: Caller, f: CommandFilters): Promise<CommandRow[]> {
  authorize(caller, "event", "list");
  const status = f.status || undefined;
  if (status && !(COMMAND_RESULTS as readonly string[]).includes(status)) throw new AzgateError("bad_parameter", `status: "${status}" must be ${COMMAND_RESULTS.join(", ")}`);
  const limit = f.limit ? Number(f.limit) : 100;
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new AzgateError("bad_parameter", `limit: "${f.limit}" must be a whole number from 1 to 10000`);
  const filters: AuditFilters = { since: f.since, until: f.until, user: f.user, identity: f.identity, app: f.app, session: f.session, event: "app.request", limit: String(COMMAND_EVENTS_READ) };
  const events = await ctx.audit.search(auditQuery(filters, ctx.clock.now()));
  return commandsOf(events)
    .filter((r) => !status || r.result === (status as CommandResult))
    .slice(0, limit);
}
