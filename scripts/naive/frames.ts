/**
 * The naive chain's framing (bench baseline, not azgate): a byte stream of
 * frames, [payload length u32][stream id u32][type u8][payload]. No flow
 * control of its own: the WebSocket streams' backpressure is all there is.
 */
import { Transform, type TransformCallback } from "node:stream";

export const HEAD = 1;
export const DATA = 2;
export const END = 3;

export interface Frame {
  id: number;
  type: number;
  payload: Buffer;
}

export function frame(id: number, type: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.allocUnsafe(9);
  header.writeUInt32BE(payload.length, 0);
  header.writeUInt32BE(id, 4);
  header.writeUInt8(type, 8);
  return Buffer.concat([header, payload]);
}

/** Bytes in, frames out (object mode). */
export class FrameReader extends Transform {
  private buffered: Buffer = Buffer.alloc(0);

  constructor() {
    super({ readableObjectMode: true });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    while (this.buffered.length >= 9) {
      const length = this.buffered.readUInt32BE(0);
      if (this.buffered.length < 9 + length) break;
      this.push({ id: this.buffered.readUInt32BE(4), type: this.buffered.readUInt8(8), payload: this.buffered.subarray(9, 9 + length) } satisfies Frame);
      this.buffered = this.buffered.subarray(9 + length);
    }
    done();
  }
}
