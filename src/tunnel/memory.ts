/**
 * Two sessions joined in memory, frame for frame, as a WebSocket would join
 * them (each frame copied and delivered on a later turn of the event loop):
 * the in-process harness and the tests wire proxy, agent and client with it.
 */
import { TunnelSession, type FrameTransport, type SessionOptions } from "./session.ts";

export interface MemoryPair {
  dialer: TunnelSession;
  acceptor: TunnelSession;
  /** Bytes each side has sent. */
  sent: { dialer: number; acceptor: number };
}

export function memoryPair(dialerOpts: Omit<SessionOptions, "role"> = {}, acceptorOpts: Omit<SessionOptions, "role"> = {}): MemoryPair {
  const sent = { dialer: 0, acceptor: 0 };
  let dialer!: TunnelSession;
  let acceptor!: TunnelSession;
  const transport = (side: "dialer" | "acceptor", to: () => TunnelSession): FrameTransport => ({
    send(frame) {
      sent[side] += frame.length;
      const copy = frame.slice();
      setImmediate(() => to().receive(copy));
    },
    writable: () => Promise.resolve(),
    close() {
      setImmediate(() => to().transportClosed("peer closed"));
    },
  });
  dialer = new TunnelSession(transport("dialer", () => acceptor), { ...dialerOpts, role: "dialer" });
  acceptor = new TunnelSession(transport("acceptor", () => dialer), { ...acceptorOpts, role: "acceptor" });
  return { dialer, acceptor, sent };
}
