/**
 * After a long-running mode stopped cleanly: exit even if a library left a
 * handle open (sockets of closed WebSockets linger on Deno). The timer does
 * not itself keep the process alive.
 */
export function exitAfterStop(): void {
  const t = setTimeout(() => process.exit(), 1000);
  t.unref?.();
}
