import type { WebSocket } from "ws";
import { MAX_FRAME_SIZE } from "./frame.ts";
import { TunnelSession, type FrameTransport, type SessionOptions } from "./session.ts";

/** Output queued beyond this makes writers wait for the socket (connection-level backpressure). */
const HIGH_WATER_BYTES = 1024 * 1024;

/** The largest WebSocket message either side accepts: one frame. */
export const WS_MAX_PAYLOAD = MAX_FRAME_SIZE;

/**
 * A `ws` WebSocket (server or client side; the same class on Node and Deno) as a frame transport.
 *
 * Frames sent in one turn of the event loop (a request's open, metadata and
 * end; a response's head, body and trailer) leave in one socket write: the
 * socket is corked at the turn's first frame and uncorked once the turn's
 * callbacks have run (setImmediate), so TLS seals them together instead of
 * one record and one system call per frame.
 */
export function wsTransport(ws: WebSocket): FrameTransport {
  let flushed: Promise<void> = Promise.resolve();
  const socket = (ws as unknown as { _socket?: { cork?(): void; uncork?(): void; destroyed?: boolean } })._socket;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket!.uncork!();
  };
  return {
    send(frame) {
      if (ws.readyState !== ws.OPEN) return;
      if (!corked && socket?.cork && !socket.destroyed) {
        corked = true;
        socket.cork();
        setImmediate(uncork);
      }
      flushed = new Promise<void>((resolve) => ws.send(frame, { binary: true }, () => resolve()));
    },
    writable() {
      return ws.bufferedAmount < HIGH_WATER_BYTES ? Promise.resolve() : flushed;
    },
    close(code, reason) {
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, reason);
    },
  };
}

/** Runs a session on an open WebSocket: frames in, frames out, close both ways. */
export function attachSession(ws: WebSocket, opts: SessionOptions): TunnelSession {
  const session = new TunnelSession(wsTransport(ws), opts);
  ws.on("message", (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
    if (!isBinary) return session.close(1, "text messages are not part of the protocol");
    session.receive(toBytes(data));
  });
  ws.on("close", (code: number, reason: Buffer) => session.transportClosed(`websocket closed (${code}${reason.length ? `: ${reason.toString()}` : ""})`));
  ws.on("error", (e: Error) => session.transportClosed(`websocket error: ${e.message}`));
  return session;
}

export function toBytes(data: Buffer | ArrayBuffer | Buffer[] | Uint8Array): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data));
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
