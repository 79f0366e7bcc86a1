import { ErrorCode, LIMITS, type Meta } from "./frame.ts";

/** A stream ended by RESET (from either side) or by its connection closing. */
export class StreamResetError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    readonly remote: boolean,
  ) {
    super(`stream reset by ${remote ? "peer" : "this side"}: ${reason || "no reason"} (code ${code})`);
    this.name = "StreamResetError";
  }
}

/** What a stream needs from its session; keeps the stream free of connection details. */
export interface StreamHost {
  sendData(id: number, data: Uint8Array): void;
  sendMeta(id: number, meta: Meta): void;
  sendEnd(id: number): void;
  sendReset(id: number, code: number, reason: string): void;
  sendWindow(id: number, increment: number): void;
  /** Up to `bytes` more receive window beyond a stream's initial one, from the connection's budget: what it may take (0 when spent). */
  reserveWindow(bytes: number): number;
  /** Gives back window a finished stream had reserved. */
  releaseWindow(bytes: number): void;
  /** Resolves when the connection can take more bytes (connection-level backpressure). */
  writable(): Promise<void>;
  streamClosed(id: number): void;
}

/**
 * How far a stream's receive window may grow while its reader keeps up. A
 * receiver may grant any credit (a sender accepts windows up to 2^31-1), so
 * this is this side's choice, not the protocol's: bulk transfers are not held
 * to the initial 256 KiB in flight, which starves a sender on a busy machine.
 */
export const MAX_GROWN_WINDOW = 4 * 1024 * 1024;

type Waiter = { resolve: () => void; reject: (e: unknown) => void };

/**
 * One bidirectional stream: metadata on open, then DATA and META in each
 * direction, half-close with END, or RESET. Bytes are read with `read()` and
 * written with `write()`, or through `readable` and `writable` (web streams,
 * so both runtimes and fetch bodies fit; made on first use, since the
 * proxy's relay copies chunks between streams without them).
 *
 * Flow control: the peer may send at most `initialWindow` bytes we have not
 * yet handed to our reader; we return credit (WINDOW) as our reader consumes.
 * A slow reader therefore stops the sender instead of growing a buffer.
 */
export class TunnelStream {
  /** Set once the stream was reset, by either side. */
  resetError: StreamResetError | null = null;

  private sendWindow: number = LIMITS.initialWindow;
  private recvAllowance: number = LIMITS.initialWindow;
  /** This side's receive window: the initial one, grown while the reader keeps up. */
  private recvWindow: number = LIMITS.initialWindow;
  private unacked = 0;
  /** Bytes the reader has taken, in all. */
  private consumed = 0;
  private creditWaiters: Waiter[] = [];
  private chunks: Uint8Array[] = [];
  private dataWaiter: Waiter | null = null;
  private metas: Meta[] = [];
  private metaWaiters: { resolve: (m: Meta | null) => void; reject: (e: unknown) => void }[] = [];
  private localEnded = false;
  private remoteEnded = false;
  private finished = false;
  private readonly doneResolvers: (() => void)[] = [];
  private readableStream: ReadableStream<Uint8Array> | undefined;
  private writableStream: WritableStream<Uint8Array> | undefined;

  constructor(
    readonly id: number,
    /** The metadata the opener sent. */
    readonly meta: Meta,
    private readonly host: StreamHost,
  ) {}

  /** The peer's bytes as a web stream (one reader: do not mix with `read()`). */
  get readable(): ReadableStream<Uint8Array> {
    return (this.readableStream ??= new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          try {
            const chunk = await this.read();
            if (chunk) controller.enqueue(chunk);
            else controller.close();
          } catch (e) {
            controller.error(e);
          }
        },
        cancel: () => this.reset(ErrorCode.CANCEL, "reader cancelled"),
      },
      { highWaterMark: 0 },
    ));
  }

  /** This side's bytes as a web stream: closing it ends the stream, aborting it resets. */
  get writable(): WritableStream<Uint8Array> {
    return (this.writableStream ??= new WritableStream<Uint8Array>({
      write: (chunk) => this.write(chunk),
      close: () => this.end(),
      abort: (reason) => this.reset(ErrorCode.CANCEL, reason instanceof Error ? reason.message : "writer aborted"),
    }));
  }

  /**
   * Resolves once the peer has sent bytes or ended, or the stream was reset:
   * from then on `drained` says whether any body comes (a request's END can
   * follow a META its reader waited for). Not while another read waits.
   */
  async bodyKnown(): Promise<void> {
    while (this.chunks.length === 0 && !this.remoteEnded && !this.resetError) await this.nextArrival();
  }

  /**
   * Every byte the peer sent, at once, when it has already ended (an ARM
   * answer usually comes whole in one read): no reader and no web stream
   * needed. Null while more may come, after a reset, or once reading began.
   */
  takeWhole(): Uint8Array | null {
    if (!this.remoteEnded || this.resetError || this.readableStream) return null;
    const chunks = this.chunks.splice(0);
    if (chunks.length === 1) return chunks[0];
    const whole = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      whole.set(c, at);
      at += c.length;
    }
    return whole;
  }

  /** True once the peer has ended and every byte it sent has been read (a request without a body, say). */
  get drained(): boolean {
    return this.remoteEnded && this.chunks.length === 0;
  }

  get isClosed(): boolean {
    return this.finished;
  }

  /** Resolves when both directions are done or the stream was reset. */
  done(): Promise<void> {
    if (this.finished) return Promise.resolve();
    return new Promise((r) => this.doneResolvers.push(r));
  }

  /** The next META from the peer, in order; null once the peer ended without sending more. */
  readMeta(): Promise<Meta | null> {
    const next = this.metas.shift();
    if (next) return Promise.resolve(next);
    if (this.resetError) return Promise.reject(this.resetError);
    if (this.remoteEnded) return Promise.resolve(null);
    return new Promise((resolve, reject) => this.metaWaiters.push({ resolve, reject }));
  }

  sendMeta(meta: Meta): void {
    if (this.resetError) throw this.resetError;
    if (this.localEnded) throw new Error("stream already ended");
    this.host.sendMeta(this.id, meta);
  }

  /** Half-close: no more DATA or META from this side. */
  end(): void {
    if (this.localEnded || this.resetError) return;
    this.localEnded = true;
    this.host.sendEnd(this.id);
    this.maybeFinish();
  }

  reset(code: number, reason: string): void {
    if (this.resetError || this.finished) return;
    this.host.sendReset(this.id, code, reason);
    this.fail(new StreamResetError(code, reason, false));
  }

  // ---- called by the session -------------------------------------------------

  onData(data: Uint8Array): boolean {
    if (this.remoteEnded || this.resetError) return true; // late frame after our reset: drop
    if (data.length > this.recvAllowance) return false; // flow-control violation
    this.recvAllowance -= data.length;
    this.chunks.push(data);
    this.wakeReader();
    return true;
  }

  onMeta(meta: Meta): void {
    if (this.remoteEnded || this.resetError) return;
    const waiter = this.metaWaiters.shift();
    if (waiter) waiter.resolve(meta);
    else this.metas.push(meta);
  }

  onEnd(): void {
    if (this.remoteEnded || this.resetError) return;
    this.remoteEnded = true;
    for (const w of this.metaWaiters.splice(0)) w.resolve(null);
    this.wakeReader();
    this.maybeFinish();
  }

  onWindow(increment: number): boolean {
    if (this.sendWindow + increment > LIMITS.maxWindow) return false;
    this.sendWindow += increment;
    for (const w of this.creditWaiters.splice(0)) w.resolve();
    return true;
  }

  /** RESET from the peer, or the connection went away. */
  fail(err: StreamResetError): void {
    if (this.resetError || this.finished) return;
    this.resetError = err;
    this.chunks = [];
    for (const w of this.creditWaiters.splice(0)) w.reject(err);
    for (const w of this.metaWaiters.splice(0)) w.reject(err);
    this.wakeReader();
    this.finish();
  }

  /**
   * The peer's next chunk, returning its credit to the peer as it is taken
   * (a slow reader holds the sender back); null once the peer ended. Throws
   * the StreamResetError when the stream was reset. One reader at a time.
   */
  async read(): Promise<Uint8Array | null> {
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk) {
        this.grantCredit(chunk.length);
        return chunk;
      }
      if (this.resetError) throw this.resetError;
      if (this.remoteEnded) return null;
      await this.nextArrival();
    }
  }

  /** Sends `chunk`, waiting for the peer's credit and the connection's room as it goes. */
  async write(chunk: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.resetError) throw this.resetError;
      if (this.localEnded) throw new Error("stream already ended");
      if (this.sendWindow === 0) {
        await new Promise<void>((resolve, reject) => this.creditWaiters.push({ resolve, reject }));
        continue;
      }
      await this.host.writable();
      if (this.resetError) throw this.resetError;
      const n = Math.min(chunk.length - offset, this.sendWindow, LIMITS.maxDataPayload);
      this.host.sendData(this.id, chunk.subarray(offset, offset + n));
      this.sendWindow -= n;
      offset += n;
    }
  }

  // ---- internals --------------------------------------------------------------

  private grantCredit(consumed: number): void {
    this.unacked += consumed;
    this.consumed += consumed;
    // Batch credit so small reads do not each cost a frame. A quarter window
    // is safe: a sender that used up its window has given us four times that.
    if (this.unacked >= this.recvWindow / 4) {
      if (this.remoteEnded || this.resetError) return;
      // A reader that has taken a whole window keeps up: double the window, as far as the
      // connection's budget allows. A slow reader never gets here, so it still stops the sender.
      const growth = this.consumed >= this.recvWindow && this.recvWindow < MAX_GROWN_WINDOW ? this.host.reserveWindow(Math.min(this.recvWindow, MAX_GROWN_WINDOW - this.recvWindow)) : 0;
      this.recvWindow += growth;
      this.recvAllowance += this.unacked + growth;
      this.host.sendWindow(this.id, this.unacked + growth);
      this.unacked = 0;
    }
  }

  /** This side's receive window now (the most unread data the peer may have sent us). */
  get receiveWindow(): number {
    return this.recvWindow;
  }

  /** Until the peer's next DATA, END or a reset (wakeReader). One waiter at a time. */
  private nextArrival(): Promise<void> {
    return new Promise<void>((resolve, reject) => (this.dataWaiter = { resolve, reject }));
  }

  private wakeReader(): void {
    const w = this.dataWaiter;
    this.dataWaiter = null;
    w?.resolve();
  }

  private maybeFinish(): void {
    if (this.localEnded && this.remoteEnded) this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.host.releaseWindow(this.recvWindow - LIMITS.initialWindow);
    this.host.streamClosed(this.id);
    for (const r of this.doneResolvers.splice(0)) r();
  }
}
