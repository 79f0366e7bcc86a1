/**
 * The proxy's side of `admin backup` and `admin backend clone`: a
 * consistent snapshot of the backend (Backend.snapshot), every record and
 * every secret in it (CA keys, connectors' secrets), for callers whose roles
 * allow `read` on `backup` (no preset role does; the local admin may),
 * audited. The caller encrypts it (storage/backup.ts); it crosses the wire
 * inside the API's TLS and proof of possession only.
 */
import { audit } from "../audit/events.ts";
import { backupOf, type Backup } from "../storage/backup.ts";
import { authorize, type Caller } from "./caller.ts";
import type { ProxyContext } from "./context.ts";

export async function takeBackup(ctx: ProxyContext, caller: Caller): Promise<Backup> {
  authorize(caller, "backup", "read");
  const backup = backupOf(await ctx.backend.snapshot(), ctx.cluster.name, ctx.clock.date());
  await ctx.audit.emit(audit("BACKUP_CREATED", { user: caller.name, items: backup.header.items }));
  return backup;
}
