/**
 * Tunnel frames: one frame per binary WebSocket message. Pure encoding and
 * decoding, no I/O. The wire format is specified in docs/tunnel-protocol.md;
 * change both together.
 *
 *   0      1      2              6
 *   +------+------+--------------+----------------+
 *   | type | flags| stream id    | payload ...    |
 *   +------+------+--------------+----------------+
 *     u8     u8     u32 BE
 */
export const FrameType = {
  OPEN: 0x01,
  DATA: 0x02,
  META: 0x03,
  END: 0x04,
  RESET: 0x05,
  WINDOW: 0x06,
  PING: 0x07,
  PONG: 0x08,
  GOAWAY: 0x09,
} as const;
export type FrameTypeName = keyof typeof FrameType;

/** Codes carried by RESET and GOAWAY. */
export const ErrorCode = {
  NO_ERROR: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  REFUSED_STREAM: 3,
  CANCEL: 4,
  FLOW_CONTROL_ERROR: 5,
  UNAVAILABLE: 6,
  TIMEOUT: 7,
  LIMIT_EXCEEDED: 8,
} as const;
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

export const HEADER_SIZE = 6;
/** Limits fixed by protocol version 1; both sides enforce them. */
export const LIMITS = {
  maxDataPayload: 64 * 1024,
  maxMetaBytes: 16 * 1024,
  maxReasonBytes: 256,
  initialWindow: 256 * 1024,
  maxWindow: 2 ** 31 - 1,
  maxStreamsPerPeer: 1024,
} as const;
export const MAX_FRAME_SIZE = HEADER_SIZE + LIMITS.maxDataPayload;

export type Meta = Record<string, unknown>;

export type Frame =
  | { type: "OPEN"; stream: number; meta: Meta }
  | { type: "DATA"; stream: number; data: Uint8Array }
  | { type: "META"; stream: number; meta: Meta }
  | { type: "END"; stream: number }
  | { type: "RESET"; stream: number; code: number; reason: string }
  | { type: "WINDOW"; stream: number; increment: number }
  | { type: "PING"; stream: 0; opaque: Uint8Array }
  | { type: "PONG"; stream: 0; opaque: Uint8Array }
  | { type: "GOAWAY"; stream: 0; code: number; reason: string };

/** A malformed frame or a broken rule: the connection ends with this code. */
export class TunnelProtocolError extends Error {
  constructor(
    readonly code: ErrorCodeValue,
    message: string,
  ) {
    super(message);
    this.name = "TunnelProtocolError";
  }
}

const TYPE_NAMES = new Map<number, FrameTypeName>(Object.entries(FrameType).map(([k, v]) => [v, k as FrameTypeName]));
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function header(type: number, stream: number, payloadLength: number): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(HEADER_SIZE + payloadLength);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, type);
  view.setUint8(1, 0);
  view.setUint32(2, stream >>> 0);
  return { bytes, view };
}

function codeAndReason(type: number, stream: number, code: number, reason: string): Uint8Array {
  let text = encoder.encode(reason);
  if (text.length > LIMITS.maxReasonBytes) text = encoder.encode(reason.slice(0, LIMITS.maxReasonBytes / 4));
  const { bytes, view } = header(type, stream, 4 + text.length);
  view.setUint32(HEADER_SIZE, code >>> 0);
  bytes.set(text, HEADER_SIZE + 4);
  return bytes;
}

export function encodeFrame(f: Frame): Uint8Array {
  const t = FrameType[f.type];
  switch (f.type) {
    case "OPEN":
    case "META": {
      const json = encoder.encode(JSON.stringify(f.meta));
      if (json.length > LIMITS.maxMetaBytes) throw new TunnelProtocolError(ErrorCode.LIMIT_EXCEEDED, `metadata is ${json.length} bytes; the limit is ${LIMITS.maxMetaBytes}`);
      const { bytes } = header(t, f.stream, json.length);
      bytes.set(json, HEADER_SIZE);
      return bytes;
    }
    case "DATA": {
      if (f.data.length === 0 || f.data.length > LIMITS.maxDataPayload) throw new TunnelProtocolError(ErrorCode.PROTOCOL_ERROR, `DATA payload must be 1..${LIMITS.maxDataPayload} bytes`);
      const { bytes } = header(t, f.stream, f.data.length);
      bytes.set(f.data, HEADER_SIZE);
      return bytes;
    }
    case "END":
      return header(t, f.stream, 0).bytes;
    case "RESET":
    case "GOAWAY":
      return codeAndReason(t, f.stream, f.code, f.reason);
    case "WINDOW": {
      const { bytes, view } = header(t, f.stream, 4);
      view.setUint32(HEADER_SIZE, f.increment);
      return bytes;
    }
    case "PING":
    case "PONG": {
      const { bytes } = header(t, 0, 8);
      bytes.set(f.opaque.subarray(0, 8), HEADER_SIZE);
      return bytes;
    }
  }
}

function fail(message: string): never {
  throw new TunnelProtocolError(ErrorCode.PROTOCOL_ERROR, message);
}

function parseMeta(payload: Uint8Array, what: string): Meta {
  if (payload.length > LIMITS.maxMetaBytes) throw new TunnelProtocolError(ErrorCode.LIMIT_EXCEEDED, `${what} metadata exceeds ${LIMITS.maxMetaBytes} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(payload));
  } catch {
    fail(`${what} metadata is not UTF-8 JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(`${what} metadata must be a JSON object`);
  return value as Meta;
}

function parseReason(payload: Uint8Array, what: string): { code: number; reason: string } {
  if (payload.length < 4 || payload.length > 4 + LIMITS.maxReasonBytes) fail(`${what} payload must be a code and a reason of at most ${LIMITS.maxReasonBytes} bytes`);
  const code = new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint32(0);
  let reason: string;
  try {
    reason = decoder.decode(payload.subarray(4));
  } catch {
    fail(`${what} reason is not UTF-8`);
  }
  return { code, reason };
}

/** Decodes one frame; any malformed input throws TunnelProtocolError, never anything else. */
export function decodeFrame(input: Uint8Array): Frame {
  if (input.length < HEADER_SIZE) fail(`frame of ${input.length} bytes is shorter than the ${HEADER_SIZE}-byte header`);
  if (input.length > MAX_FRAME_SIZE) throw new TunnelProtocolError(ErrorCode.LIMIT_EXCEEDED, `frame of ${input.length} bytes exceeds ${MAX_FRAME_SIZE}`);
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const typeByte = view.getUint8(0);
  const type = TYPE_NAMES.get(typeByte);
  if (!type) fail(`unknown frame type 0x${typeByte.toString(16)}`);
  if (view.getUint8(1) !== 0) fail("frame flags must be 0");
  const stream = view.getUint32(2);
  const payload = input.subarray(HEADER_SIZE);
  const connectionLevel = type === "PING" || type === "PONG" || type === "GOAWAY";
  if (connectionLevel && stream !== 0) fail(`${type} must use stream 0`);
  if (!connectionLevel && stream === 0) fail(`${type} needs a stream id other than 0`);
  switch (type) {
    case "OPEN":
    case "META":
      return { type, stream, meta: parseMeta(payload, type) };
    case "DATA":
      if (payload.length === 0) fail("empty DATA frame");
      return { type, stream, data: payload };
    case "END":
      if (payload.length !== 0) fail("END carries no payload");
      return { type, stream };
    case "RESET":
      return { type, stream, ...parseReason(payload, "RESET") };
    case "GOAWAY":
      return { type, stream: 0, ...parseReason(payload, "GOAWAY") };
    case "WINDOW": {
      if (payload.length !== 4) fail("WINDOW payload must be 4 bytes");
      const increment = view.getUint32(HEADER_SIZE);
      if (increment === 0 || increment > LIMITS.maxWindow) fail("WINDOW increment must be 1..2^31-1");
      return { type, stream, increment };
    }
    case "PING":
    case "PONG":
      if (payload.length !== 8) fail(`${type} payload must be 8 bytes`);
      return { type, stream: 0, opaque: payload };
  }
}
