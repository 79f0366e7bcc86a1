export * from "./frame.ts";
export { TunnelStream, StreamResetError } from "./stream.ts";
export { TunnelSession, type FrameTransport, type SessionOptions, type SessionClosed } from "./session.ts";
export { attachSession, wsTransport, toBytes, WS_MAX_PAYLOAD } from "./websocket.ts";
export { respondJsonMeta, controlCall } from "./control.ts";
export { dialTunnel, type DialOptions } from "./dial.ts";
