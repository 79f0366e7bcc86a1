/**
 * The proxy's side of `admin backup` and `admin backend clone`: a
 * consistent snapshot of the backend (Backend.snapshot), every record and
 * every secret in it (CA keys, connectors' secrets), for the data dir's
 * local admin only, audited. No role grants it, not even a rule for every
 * resource: whoever may edit roles could give themselves such a rule, and a
 * backup holds the keys that make anyone anyone. The local admin is whoever
 * can read the data dir, which holds those keys already. The caller
 * encrypts it (storage/backup.ts); it crosses the wire inside the API's TLS
 * and proof of possession only.
 */
import { audit } from "../audit/events.ts";
import { AzgateError } from "../errors/index.ts";
import { backupOf, type Backup } from "../storage/backup.ts";
import type { Caller } from "./caller.ts";
import type { ProxyContext } from "./context.ts";

export async function takeBackup(ctx: ProxyContext, caller: Caller): Promise<Backup> {
  if (caller.identity.kind !== "local-admin") throw new AzgateError("access_denied", "only the data dir's local admin takes a backup: run azgate admin --data-dir DATA_DIR backup FILE on the proxy host (no role grants it: a backup holds every key of the cluster)");
  const backup = backupOf(await ctx.backend.snapshot(), ctx.cluster.name, ctx.clock.date());
  await ctx.audit.emit(audit("BACKUP_CREATED", { user: caller.name, items: backup.header.items }));
  return backup;
}
