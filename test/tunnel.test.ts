import { memoryPair } from "../src/tunnel/memory.ts";
import { describe, expect, it, vi } from "vitest";
import {
  decodeFrame,
  encodeFrame,
  ErrorCode,
  LIMITS,
  StreamResetError,
  TunnelProtocolError,
  TunnelSession,
  type Frame,
  type FrameTransport,
  type TunnelStream,
} from "../src/tunnel/index.ts";
import { SESSION_WINDOW_BUDGET } from "../src/tunnel/session.ts";
import { MAX_GROWN_WINDOW } from "../src/tunnel/stream.ts";

/** Two sessions joined by an in-memory transport that delivers asynchronously, like a socket. */
/** Two sessions joined in memory (src/tunnel/memory.ts): `a` dials, `b` accepts. */
function pair(opts: { onStream?: (s: TunnelStream) => void; idleTimeoutMs?: number; pingIntervalMs?: number } = {}) {
  const timing = { idleTimeoutMs: opts.idleTimeoutMs, pingIntervalMs: opts.pingIntervalMs };
  const p = memoryPair(timing, { ...timing, onStream: opts.onStream });
  return {
    a: p.dialer,
    b: p.acceptor,
    sent: {
      get a() {
        return p.sent.dialer;
      },
      get b() {
        return p.sent.acceptor;
      },
    },
  };
}

const bytes = (n: number, fill = 7) => new Uint8Array(n).fill(fill);
const text = (s: string) => new TextEncoder().encode(s);
async function readAll(r: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(r).arrayBuffer());
}
const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

describe("tunnel frames", () => {
  it("round-trips every frame type", () => {
    const frames: Frame[] = [
      { type: "OPEN", stream: 1, meta: { method: "GET", url: "https://management.azure.com/" } },
      { type: "DATA", stream: 3, data: bytes(LIMITS.maxDataPayload) },
      { type: "META", stream: 2, meta: { status: 200, headers: [["a", "b"]] } },
      { type: "END", stream: 5 },
      { type: "RESET", stream: 7, code: ErrorCode.CANCEL, reason: "bye ✓" },
      { type: "WINDOW", stream: 9, increment: 65536 },
      { type: "PING", stream: 0, opaque: bytes(8, 1) },
      { type: "PONG", stream: 0, opaque: bytes(8, 2) },
      { type: "GOAWAY", stream: 0, code: 0, reason: "draining" },
    ];
    for (const f of frames) expect(decodeFrame(encodeFrame(f))).toEqual(f);
  });

  it.each([
    ["a short frame", Uint8Array.of(1, 0, 0)],
    ["an unknown type", Uint8Array.of(0x42, 0, 0, 0, 0, 1)],
    ["non-zero flags", Uint8Array.of(2, 1, 0, 0, 0, 1, 9)],
    ["DATA on stream 0", Uint8Array.of(2, 0, 0, 0, 0, 0, 9)],
    ["PING on a stream", Uint8Array.of(7, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0)],
    ["empty DATA", Uint8Array.of(2, 0, 0, 0, 0, 1)],
    ["END with payload", Uint8Array.of(4, 0, 0, 0, 0, 1, 1)],
    ["a zero WINDOW", Uint8Array.of(6, 0, 0, 0, 0, 1, 0, 0, 0, 0)],
    ["OPEN with a JSON array", Uint8Array.of(1, 0, 0, 0, 0, 1, ...text("[1]"))],
    ["OPEN with invalid UTF-8", Uint8Array.of(1, 0, 0, 0, 0, 1, 0xff, 0xfe)],
    ["an oversized frame", new Uint8Array(LIMITS.maxDataPayload + 7)],
  ])("rejects %s with a protocol error", (_name, input) => {
    expect(() => decodeFrame(input)).toThrow(TunnelProtocolError);
  });

  it("refuses to encode metadata over the limit", () => {
    expect(() => encodeFrame({ type: "OPEN", stream: 1, meta: { big: "x".repeat(LIMITS.maxMetaBytes) } })).toThrow(/limit/);
  });
});

describe("tunnel sessions", () => {
  it("carries a request and a response with metadata, data, trailer and half-close", async () => {
    const { a } = pair({
      onStream: async (s) => {
        const body = await readAll(s.readable);
        s.sendMeta({ status: 200, got: s.meta.url, bytes: body.length });
        const w = s.writable.getWriter();
        await w.write(text("hello "));
        await w.write(bytes(200_000));
        w.releaseLock();
        s.sendMeta({ timings: { total_ms: 1 } });
        s.end();
      },
    });
    const s = a.open({ url: "https://example/" });
    const w = s.writable.getWriter();
    await w.write(bytes(300_000, 1));
    await w.close();
    expect(await s.readMeta()).toEqual({ status: 200, got: "https://example/", bytes: 300_000 });
    const body = await readAll(s.readable);
    expect(body.length).toBe(6 + 200_000);
    expect(await s.readMeta()).toEqual({ timings: { total_ms: 1 } });
    expect(await s.readMeta()).toBeNull();
    await s.done();
    expect(a.openStreams).toBe(0);
  });

  it("stops a writer whose reader does not read after one window (flow control)", async () => {
    let accepted!: TunnelStream;
    const { a, sent } = pair({ onStream: (s) => (accepted = s) });
    const s = a.open({});
    const w = s.writable.getWriter();
    let written = 0;
    const writing = (async () => {
      for (let i = 0; i < 64; i++) {
        await w.write(bytes(64 * 1024));
        written += 64 * 1024;
      }
    })();
    await tick(100);
    // Nothing read: the sender stopped at the window, not after 4 MiB.
    expect(sent.a).toBeLessThan(LIMITS.initialWindow + 64 * 1024);
    expect(written).toBeLessThanOrEqual(LIMITS.initialWindow + 64 * 1024);
    // Reading releases it.
    const reader = accepted.readable.getReader();
    let got = 0;
    while (got < 64 * 64 * 1024) got += (await reader.read()).value!.length;
    await writing;
    expect(got).toBe(64 * 64 * 1024);
  });

  it("grows a stream's window while its reader keeps up (to 4 MiB), and a reader that then stalls still stops the sender within it", async () => {
    let accepted!: TunnelStream;
    const { a, sent } = pair({ onStream: (s) => (accepted = s) });
    const s = a.open({});
    let written = 0;
    const writing = (async () => {
      for (let i = 0; i < 256; i++) {
        await s.write(bytes(64 * 1024));
        written += 64 * 1024;
      }
    })();
    await tick();
    // A fast reader: 8 MiB taken as it comes.
    let got = 0;
    while (got < 8 * 1024 * 1024) got += (await accepted.read())!.length;
    expect(accepted.receiveWindow).toBe(MAX_GROWN_WINDOW);
    // Then it stalls: the sender stops once the grown window is used, not at the end of the 16 MiB.
    await tick(100);
    expect(written - got).toBeLessThanOrEqual(MAX_GROWN_WINDOW + 64 * 1024);
    expect(sent.a).toBeLessThan(got + MAX_GROWN_WINDOW + 256 * 1024);
    while (got < 256 * 64 * 1024) got += (await accepted.read())!.length;
    await writing;
  });

  it("keeps to the connection's budget: many bulk streams together grow by at most SESSION_WINDOW_BUDGET, given back when they end", async () => {
    const accepted: TunnelStream[] = [];
    const { a, b } = pair({ onStream: (s) => void accepted.push(s) });
    const streams = Array.from({ length: 12 }, () => a.open({}));
    const chunk = bytes(64 * 1024);
    const writing = streams.map(async (s) => {
      for (let i = 0; i < 128; i++) await s.write(chunk);
      s.end();
    });
    // Every OPEN delivered (counted, not timed: a busy machine delivers them later).
    while (accepted.length < 12) await tick(1);
    // All read to the end while all are still open (none has given its window back yet).
    await Promise.all(accepted.map(async (r) => {
      while (await r.read());
    }));
    await Promise.all(writing);
    const grown = accepted.map((r) => r.receiveWindow - LIMITS.initialWindow);
    // They wanted 12 x 3.75 MiB: the budget binds, exactly.
    expect(grown.reduce((x, y) => x + y, 0)).toBe(SESSION_WINDOW_BUDGET);
    expect(Math.max(...grown)).toBe(MAX_GROWN_WINDOW - LIMITS.initialWindow);
    for (const r of accepted) r.end();
    // Every stream finished: the budget is whole again, so a new bulk stream grows as far as the first did.
    await tick();
    const next = a.open({});
    const nextWriting = (async () => {
      for (let i = 0; i < 128; i++) await next.write(chunk);
      next.end();
    })();
    while (accepted.length < 13) await tick(1);
    const r = accepted.at(-1)!;
    expect(accepted.length).toBe(13);
    while (await r.read());
    await nextWriting;
    expect(r.receiveWindow).toBe(MAX_GROWN_WINDOW);
    expect(b.isClosed).toBe(false);
  });

  it("hands over an answer whole once its sender has ended, and only then: not while more may come (nothing lost), not after a reset", async () => {
    let serve: (s: TunnelStream) => void = () => undefined;
    const { a } = pair({ onStream: (s) => serve(s) });
    // Whole: three chunks and END before the reader looks.
    serve = (s) => void (async () => {
      for (const chunk of ["ab", "cd", "e"]) await s.write(text(chunk));
      s.end();
    })();
    const whole = a.open({ kind: "test" });
    whole.end();
    await whole.done();
    expect(new TextDecoder().decode(whole.takeWhole()!)).toBe("abcde");
    // Not ended yet: null, and nothing is lost; the reader gets every byte after.
    let finish = () => undefined as void;
    serve = (s) => void (async () => {
      await s.write(text("part"));
      finish = () => void s.write(text(" rest")).then(() => s.end());
    })();
    const partial = a.open({ kind: "test" });
    partial.end();
    await tick();
    expect(partial.takeWhole()).toBeNull();
    finish();
    expect(new TextDecoder().decode(await readAll(partial.readable))).toBe("part rest");
    // Reset by the peer: null, and reading says why.
    serve = (s) => void (async () => {
      await s.write(text("x"));
      s.reset(ErrorCode.CANCEL, "gone");
    })();
    const reset = a.open({ kind: "test" });
    reset.end();
    await reset.done();
    expect(reset.takeWhole()).toBeNull();
    await expect(reset.read()).rejects.toThrow(/gone/);
  });

  it("passes a reset to the other side with its code and reason", async () => {
    let accepted!: TunnelStream;
    const { a } = pair({ onStream: (s) => (accepted = s) });
    const s = a.open({});
    await tick();
    const reading = accepted.readable.getReader().read();
    s.reset(ErrorCode.CANCEL, "client went away");
    await expect(reading).rejects.toMatchObject({ code: ErrorCode.CANCEL, reason: "client went away", remote: true });
    await expect(s.writable.getWriter().write(bytes(1))).rejects.toBeInstanceOf(StreamResetError);
    await accepted.done();
  });

  it("drains: no new streams, open ones finish, then the session closes", async () => {
    // The open stream finishes when the test says so (not after a timer a busy machine could outrun).
    let finish!: () => void;
    const finished = new Promise<void>((r) => (finish = r));
    const { a, b } = pair({
      onStream: async (s) => {
        await finished;
        s.sendMeta({ done: true });
        s.end();
        await readAll(s.readable);
      },
    });
    const s = a.open({});
    s.end();
    await tick();
    const draining = b.drain(5_000, "proxy is shutting down");
    await tick();
    expect(a.isDraining).toBe(true);
    // Whoever opens a stream now learns why (a lock's message, a shutdown), not only that it is closing.
    expect(() => a.open({})).toThrow("tunnel is closing: proxy is shutting down");
    finish();
    expect(await s.readMeta()).toEqual({ done: true });
    await draining;
    expect((await a.closed()).local).toBe(false);
  });

  it("closes a session that hears nothing within the idle timeout", async () => {
    const silent: FrameTransport = { send() {}, writable: () => Promise.resolve(), close() {} };
    const s = new TunnelSession(silent, { role: "dialer", pingIntervalMs: 20, idleTimeoutMs: 60 });
    const closed = await s.closed();
    expect(closed.code).toBe(ErrorCode.TIMEOUT);
  });

  it("keeps an idle pair alive with the dialer's pings alone: a PING and a PONG per interval, not two of each", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval", "performance"] });
    try {
      const { a, b, sent } = pair({ onStream: () => undefined, pingIntervalMs: 1_000, idleTimeoutMs: 3_000 });
      const delivered = async () => {
        for (let i = 0; i < 4; i++) await new Promise((r) => setImmediate(r));
      };
      const frame = encodeFrame({ type: "PING", stream: 0, opaque: bytes(8) }).length;
      for (let ms = 0; ms < 20_000; ms += 100) {
        vi.advanceTimersByTime(100);
        await delivered();
      }
      // 20 PINGs from the dialer, 20 PONGs back; were both to ping, 40 each way.
      expect(sent.a / frame).toBe(20);
      expect(sent.b / frame).toBe(20);
      expect(a.isClosed || b.isClosed).toBe(false);
      expect(a.rttMs).not.toBeNull();
    } finally {
      vi.useRealTimers();
    }
  });

  it("refuses streams beyond the per-peer limit", async () => {
    const { a } = pair({ onStream: () => undefined });
    const streams = Array.from({ length: LIMITS.maxStreamsPerPeer + 1 }, () => a.open({}));
    const last = streams[streams.length - 1];
    await expect(last.readMeta()).rejects.toMatchObject({ code: ErrorCode.REFUSED_STREAM });
    await tick();
    expect(a.isClosed).toBe(false);
  });

  it("ends the connection on a frame for a stream that never existed", async () => {
    const { a, b } = pair({ onStream: () => undefined });
    b.receive(encodeFrame({ type: "DATA", stream: 99, data: bytes(3) }));
    expect((await b.closed()).code).toBe(ErrorCode.PROTOCOL_ERROR);
    expect(await a.closed()).toMatchObject({ local: false });
  });

  it("resets a stream whose peer sends beyond its window", async () => {
    let accepted!: TunnelStream;
    const { b } = pair({ onStream: (s) => (accepted = s) });
    b.receive(encodeFrame({ type: "OPEN", stream: 1, meta: {} }));
    for (let i = 0; i <= LIMITS.initialWindow / LIMITS.maxDataPayload; i++) b.receive(encodeFrame({ type: "DATA", stream: 1, data: bytes(LIMITS.maxDataPayload) }));
    expect(accepted.resetError?.code).toBe(ErrorCode.FLOW_CONTROL_ERROR);
    expect(b.isClosed).toBe(false);
  });
});

describe("tunnel decoder under random and hostile input", () => {
  // A small deterministic PRNG, so a failure can be replayed.
  function rng(seed: number) {
    let x = seed >>> 0 || 1;
    return () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) / 2 ** 32;
    };
  }

  it("survives 100,000 random and mutated frames: no crash, no hang, only clean protocol errors", () => {
    const rand = rng(20261124);
    const int = (n: number) => Math.floor(rand() * n);
    const valid: Uint8Array[] = [
      encodeFrame({ type: "OPEN", stream: 1, meta: { kind: "http", method: "GET", url: "https://management.azure.com/", headers: [] } }),
      encodeFrame({ type: "DATA", stream: 1, data: bytes(100) }),
      encodeFrame({ type: "META", stream: 1, meta: { status: 200, headers: [] } }),
      encodeFrame({ type: "END", stream: 1 }),
      encodeFrame({ type: "RESET", stream: 1, code: 4, reason: "x" }),
      encodeFrame({ type: "WINDOW", stream: 1, increment: 1000 }),
      encodeFrame({ type: "PING", stream: 0, opaque: bytes(8) }),
      encodeFrame({ type: "GOAWAY", stream: 0, code: 0, reason: "" }),
    ];
    let session = new TunnelSession({ send() {}, writable: () => Promise.resolve(), close() {} }, { role: "acceptor", onStream: () => undefined });
    const counts = { ok: 0, protocol: 0, sessionsClosed: 0 };
    for (let i = 0; i < 100_000; i++) {
      let frame: Uint8Array;
      const mode = int(3);
      if (mode === 0) {
        frame = new Uint8Array(int(80));
        for (let j = 0; j < frame.length; j++) frame[j] = int(256);
        if (frame.length > 0 && rand() < 0.7) frame[0] = 1 + int(9);
        if (frame.length > 1 && rand() < 0.7) frame[1] = 0;
      } else {
        frame = valid[int(valid.length)].slice();
        const flips = 1 + int(4);
        for (let k = 0; k < flips && frame.length; k++) frame[int(frame.length)] = int(256);
        if (mode === 2) frame = frame.subarray(0, int(frame.length + 1));
      }
      try {
        decodeFrame(frame);
        counts.ok++;
      } catch (e) {
        expect(e).toBeInstanceOf(TunnelProtocolError);
        counts.protocol++;
      }
      // The session too: it must never throw; a broken peer only closes it.
      session.receive(frame);
      if (session.isClosed) {
        counts.sessionsClosed++;
        session = new TunnelSession({ send() {}, writable: () => Promise.resolve(), close() {} }, { role: "acceptor", onStream: () => undefined });
      }
    }
    session.close();
    expect(counts.ok + counts.protocol).toBe(100_000);
    expect(counts.protocol).toBeGreaterThan(10_000);
    expect(counts.ok).toBeGreaterThan(1_000);
    expect(counts.sessionsClosed).toBeGreaterThan(1_000);
  });
});
