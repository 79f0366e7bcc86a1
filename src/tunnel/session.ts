import { decodeFrame, encodeFrame, ErrorCode, LIMITS, TunnelProtocolError, type Frame, type Meta } from "./frame.ts";
import { StreamResetError, TunnelStream, type StreamHost } from "./stream.ts";

/** The message channel a session runs on (a WebSocket; see websocket.ts). */
export interface FrameTransport {
  send(frame: Uint8Array): void;
  /** Resolves when queued output is below the transport's high-water mark. */
  writable(): Promise<void>;
  close(code: number, reason: string): void;
}

export interface SessionOptions {
  /** The dialer opens odd stream ids, the acceptor even ones (as in HTTP/2). */
  role: "dialer" | "acceptor";
  /** Called for each stream the peer opens. */
  onStream?: (stream: TunnelStream) => void;
  /** Called when the peer announces it will take no new streams. */
  onGoAway?: (code: number, reason: string) => void;
  /** PING interval (the dialer pings, the acceptor answers); either side closes the connection after `idleTimeoutMs` without any frame. */
  pingIntervalMs?: number;
  idleTimeoutMs?: number;
  name?: string;
}

export interface SessionClosed {
  code: number;
  reason: string;
  /** True when this side ended it. */
  local: boolean;
}

/**
 * Receive window all of a connection's streams may hold beyond their initial
 * windows, together: with MAX_GROWN_WINDOW it bounds what one tunnel can make
 * this side buffer (HTTP/2 has a connection window for the same reason).
 */
export const SESSION_WINDOW_BUDGET = 32 * 1024 * 1024;

/** WebSocket close codes used when a session ends. */
const WS_NORMAL = 1000;
const WS_PROTOCOL_ERROR = 1002;

/**
 * A stream multiplexer over one message transport: the protocol of
 * docs/tunnel-protocol.md. Both legs (client to proxy, agent to proxy) use it.
 */
export class TunnelSession {
  private readonly streams = new Map<number, TunnelStream>();
  private nextId: number;
  private lastPeerId = 0;
  private draining = false;
  private peerDraining = false;
  /** Why the peer said GOAWAY (a lock's message, "proxy is shutting down"): told to whoever tries to open a stream after it. */
  private peerGoAwayReason = "";
  private closedInfo: SessionClosed | null = null;
  private readonly closeWaiters: ((c: SessionClosed) => void)[] = [];
  private readonly drainWaiters: (() => void)[] = [];
  private lastReceived = performance.now();
  private readonly timer: ReturnType<typeof setInterval> | undefined;
  private readonly host: StreamHost;
  /** Round-trip time of the last PING, in ms. */
  rttMs: number | null = null;
  private pingSentAt = 0;
  /** Receive window this connection's streams hold beyond their initial windows (at most SESSION_WINDOW_BUDGET). */
  private grownWindow = 0;

  constructor(
    private readonly transport: FrameTransport,
    private readonly opts: SessionOptions,
  ) {
    this.nextId = opts.role === "dialer" ? 1 : 2;
    const ping = opts.pingIntervalMs ?? 15_000;
    const idle = opts.idleTimeoutMs ?? 45_000;
    this.timer = setInterval(() => {
      if (performance.now() - this.lastReceived > idle) return this.close(ErrorCode.TIMEOUT, `no frames for ${Math.round(idle / 1000)}s`);
      // Only the dialer pings; the acceptor answers and watches the silence. Both still hear a
      // frame every interval, and an idle tunnel carries half the frames it would if both pinged
      // (a proxy holding thousands of agent tunnels spends its idle CPU on these).
      if (opts.role === "acceptor") return;
      this.pingSentAt = performance.now();
      this.send({ type: "PING", stream: 0, opaque: new Uint8Array(8) });
    }, ping);
    (this.timer as { unref?: () => void }).unref?.();
    const send = (f: Frame) => this.send(f);
    this.host = {
      sendData: (stream, data) => send({ type: "DATA", stream, data }),
      sendMeta: (stream, meta) => send({ type: "META", stream, meta }),
      sendEnd: (stream) => send({ type: "END", stream }),
      sendReset: (stream, code, reason) => send({ type: "RESET", stream, code, reason }),
      sendWindow: (stream, increment) => send({ type: "WINDOW", stream, increment }),
      reserveWindow: (bytes) => {
        const granted = Math.max(0, Math.min(bytes, SESSION_WINDOW_BUDGET - this.grownWindow));
        this.grownWindow += granted;
        return granted;
      },
      releaseWindow: (bytes) => {
        this.grownWindow -= bytes;
      },
      writable: () => (this.closedInfo ? Promise.reject(this.closedError()) : this.transport.writable()),
      streamClosed: (id) => {
        this.streams.delete(id);
        if (this.streams.size === 0) for (const w of this.drainWaiters.splice(0)) w();
      },
    };
  }

  get isClosed(): boolean {
    return this.closedInfo !== null;
  }
  /** True once either side announced a drain: open no new streams here. */
  get isDraining(): boolean {
    return this.draining || this.peerDraining;
  }
  get openStreams(): number {
    return this.streams.size;
  }

  /** Opens a stream with its metadata. Fails fast when the session is closed or draining. */
  open(meta: Meta): TunnelStream {
    if (this.closedInfo) throw this.closedError();
    if (this.peerDraining || this.draining) throw new StreamResetError(ErrorCode.UNAVAILABLE, this.peerGoAwayReason && !this.draining ? `tunnel is closing: ${this.peerGoAwayReason}` : "tunnel is draining", !this.draining);
    const id = this.nextId;
    this.nextId += 2;
    const stream = new TunnelStream(id, meta, this.host);
    this.streams.set(id, stream);
    this.send({ type: "OPEN", stream: id, meta });
    return stream;
  }

  /** Resolves when the session ends. */
  closed(): Promise<SessionClosed> {
    if (this.closedInfo) return Promise.resolve(this.closedInfo);
    return new Promise((r) => this.closeWaiters.push(r));
  }

  /**
   * Graceful drain: tell the peer to open nothing new, let open streams
   * finish (up to `deadlineMs`), then close.
   */
  async drain(deadlineMs: number, reason = "draining"): Promise<void> {
    if (this.closedInfo) return;
    if (!this.draining) {
      this.draining = true;
      this.send({ type: "GOAWAY", stream: 0, code: ErrorCode.NO_ERROR, reason });
    }
    if (this.streams.size > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, deadlineMs);
        this.drainWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    this.close(ErrorCode.NO_ERROR, reason);
  }

  /** Ends the session now: open streams are reset on both sides. */
  close(code: number = ErrorCode.NO_ERROR, reason = "closed"): void {
    if (this.closedInfo) return;
    this.send({ type: "GOAWAY", stream: 0, code, reason });
    this.finish({ code, reason, local: true });
    this.transport.close(code === ErrorCode.NO_ERROR || code === ErrorCode.TIMEOUT ? WS_NORMAL : WS_PROTOCOL_ERROR, reason.slice(0, 120));
  }

  /** The transport closed underneath us. */
  transportClosed(reason: string): void {
    this.finish({ code: ErrorCode.UNAVAILABLE, reason, local: false });
  }

  /** Feeds one received message. Protocol errors close the session with a GOAWAY saying why. */
  receive(message: Uint8Array): void {
    if (this.closedInfo) return;
    this.lastReceived = performance.now();
    try {
      this.handle(decodeFrame(message));
    } catch (e) {
      if (e instanceof TunnelProtocolError) return this.close(e.code, e.message);
      throw e;
    }
  }

  private handle(f: Frame): void {
    switch (f.type) {
      case "PING":
        return this.send({ type: "PONG", stream: 0, opaque: f.opaque });
      case "PONG":
        if (this.pingSentAt) this.rttMs = performance.now() - this.pingSentAt;
        return;
      case "GOAWAY":
        this.peerDraining = true;
        this.peerGoAwayReason = f.reason;
        this.opts.onGoAway?.(f.code, f.reason);
        return;
      case "OPEN":
        return this.acceptOpen(f.stream, f.meta);
    }
    const stream = this.streams.get(f.stream);
    if (!stream) {
      // A frame for a stream that already closed (a race with RESET or END) is dropped;
      // one for a stream that never existed is a broken peer.
      if (this.wasOpened(f.stream)) return;
      throw new TunnelProtocolError(ErrorCode.PROTOCOL_ERROR, `${f.type} for stream ${f.stream}, which was never opened`);
    }
    switch (f.type) {
      case "DATA":
        if (!stream.onData(f.data)) {
          stream.reset(ErrorCode.FLOW_CONTROL_ERROR, "peer sent more than its window");
        }
        return;
      case "META":
        return stream.onMeta(f.meta);
      case "END":
        return stream.onEnd();
      case "WINDOW":
        if (!stream.onWindow(f.increment)) stream.reset(ErrorCode.FLOW_CONTROL_ERROR, "window grew past 2^31-1");
        return;
      case "RESET":
        return stream.fail(new StreamResetError(f.code, f.reason, true));
    }
  }

  private wasOpened(id: number): boolean {
    const peerParity = this.opts.role === "dialer" ? 0 : 1;
    return id % 2 === peerParity ? id <= this.lastPeerId : id < this.nextId;
  }

  private acceptOpen(id: number, meta: Meta): void {
    const peerParity = this.opts.role === "dialer" ? 0 : 1;
    if (id % 2 !== peerParity) throw new TunnelProtocolError(ErrorCode.PROTOCOL_ERROR, `stream id ${id} has this side's parity`);
    if (id <= this.lastPeerId) throw new TunnelProtocolError(ErrorCode.PROTOCOL_ERROR, `stream id ${id} is not above the last one (${this.lastPeerId})`);
    this.lastPeerId = id;
    if (this.draining) return this.send({ type: "RESET", stream: id, code: ErrorCode.REFUSED_STREAM, reason: "draining: open it elsewhere" });
    let peerStreams = 0;
    for (const sid of this.streams.keys()) if (sid % 2 === peerParity) peerStreams++;
    if (peerStreams >= LIMITS.maxStreamsPerPeer) {
      return this.send({ type: "RESET", stream: id, code: ErrorCode.REFUSED_STREAM, reason: `more than ${LIMITS.maxStreamsPerPeer} open streams` });
    }
    if (!this.opts.onStream) return this.send({ type: "RESET", stream: id, code: ErrorCode.REFUSED_STREAM, reason: "this side accepts no streams" });
    const stream = new TunnelStream(id, meta, this.host);
    this.streams.set(id, stream);
    this.opts.onStream(stream);
  }

  private send(f: Frame): void {
    if (this.closedInfo) return;
    this.transport.send(encodeFrame(f));
  }

  private closedError(): StreamResetError {
    const c = this.closedInfo!;
    return new StreamResetError(ErrorCode.UNAVAILABLE, `tunnel closed: ${c.reason}`, !c.local);
  }

  private finish(info: SessionClosed): void {
    if (this.closedInfo) return;
    this.closedInfo = info;
    clearInterval(this.timer);
    const err = this.closedError();
    for (const s of [...this.streams.values()]) s.fail(err);
    this.streams.clear();
    for (const w of this.drainWaiters.splice(0)) w();
    for (const w of this.closeWaiters.splice(0)) w(info);
  }
}
