/** What an end-to-end file starts and must stop: processes and clusters (`stop`), servers and browsers (`close`). */
export type Stoppable = { stop(): Promise<unknown> } | { close(): Promise<unknown> };

/**
 * An end-to-end file's teardown, `afterAll(() => stopAll(agent, cluster))`:
 * stops each in the order given (the last started first), skips what never
 * started (a beforeAll that failed half-way), and goes on past a failure, so
 * one thing that will not stop leaves nothing else running; the first
 * failure is thrown at the end.
 */
export async function stopAll(...things: (Stoppable | null | undefined)[]): Promise<void> {
  let failure: unknown = null;
  for (const thing of things) {
    if (!thing) continue;
    try {
      await ("stop" in thing ? thing.stop() : thing.close());
    } catch (e) {
      failure ??= e;
    }
  }
  if (failure) throw failure;
}
