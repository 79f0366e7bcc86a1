/**
 * Waits until a writable (an http.ClientRequest, a socket) has at most
 * `highWater` bytes queued. On Node, `write()` returning false and 'drain'
 * are enough. On Deno 2 (checked with 2.9), a TLS ClientRequest's `write()`
 * reports no backpressure and 'drain' fires at once, while `writableLength`
 * is right; so this checks the queue length itself and waits for 'drain' or
 * a short tick, whichever comes first.
 */
export async function waitForWritable(w: { writableLength: number; once(event: "drain", cb: () => void): unknown; off?(event: "drain", cb: () => void): unknown; destroyed?: boolean }, highWater = 1024 * 1024): Promise<void> {
  while (w.writableLength > highWater && !w.destroyed) {
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        w.off?.("drain", done);
        resolve();
      };
      const timer = setTimeout(done, 5);
      w.once("drain", done);
    });
  }
}
