/** The naive chain's client (in the bench's process): requests multiplexed over one WebSocket to the relay. */
import { PassThrough, Readable } from "node:stream";
import { WebSocket, createWebSocketStream } from "ws";
import { DATA, END, FrameReader, HEAD, frame, type Frame } from "./frames.ts";

export interface NaiveResponse {
  status: number;
  body: Readable;
}

export async function naiveClient(relayUrl: string, caPem: string): Promise<{ request(url: string, opts?: { method?: string; headers?: Record<string, string>; body?: Readable }): Promise<NaiveResponse>; close(): void }> {
  const ws = new WebSocket(`${relayUrl}/client`, { ca: caPem, perMessageDeflate: false, maxPayload: 1 << 30 });
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  const out = createWebSocketStream(ws);
  const pending = new Map<number, { head: (r: NaiveResponse) => void; body: PassThrough }>();
  let next = 1;
  const reader = out.pipe(new FrameReader());
  reader.on("data", (f: Frame) => {
    const p = pending.get(f.id);
    if (!p) return;
    if (f.type === HEAD) p.head({ status: (JSON.parse(f.payload.toString()) as { status: number }).status, body: p.body });
    else if (f.type === DATA && !p.body.write(f.payload)) {
      // A slow reader stops the whole connection (naive: no per-stream windows).
      reader.pause();
      p.body.once("drain", () => reader.resume());
    }
    if (f.type === END) {
      p.body.end();
      pending.delete(f.id);
    }
  });
  const write = (b: Buffer) => (out.write(b) ? Promise.resolve() : new Promise<void>((r) => out.once("drain", () => r())));
  return {
    async request(url, opts = {}) {
      const id = next++;
      const body = new PassThrough();
      const head = new Promise<NaiveResponse>((resolve) => pending.set(id, { head: resolve, body }));
      await write(frame(id, HEAD, Buffer.from(JSON.stringify({ method: opts.method ?? "GET", url, headers: opts.headers ?? {} }))));
      if (opts.body) for await (const chunk of opts.body) await write(frame(id, DATA, Buffer.from(chunk as Uint8Array)));
      await write(frame(id, END));
      return head;
    },
    close: () => ws.close(),
  };
}
