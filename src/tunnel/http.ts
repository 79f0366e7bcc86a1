/**
 * HTTP over a tunnel stream (docs/tunnel-protocol.md, "HTTP streams"):
 * OPEN carries the request head, DATA the body, END ends the body; the
 * answer is a META with the response head, DATA, an optional trailer META
 * (status of the upstream call and timings), then END.
 */
import { z } from "zod";
import { ErrorCode, type Meta } from "./frame.ts";
import type { TunnelStream } from "./stream.ts";
import type { TunnelSession } from "./session.ts";

import type { HeaderList } from "./headers.ts";
export { headerValue, type HeaderList } from "./headers.ts";

/** The longest URL a request through the tunnel may have; what reads a request's path (per-request policy, `roles explain`) reads no more. */
export const MAX_URL_CHARS = 8192;

const headerList = z.array(z.tuple([z.string().min(1).max(256), z.string().max(8192)])).max(256);

export const requestHeadSchema = z.object({
  kind: z.literal("http"),
  method: z.string().regex(/^[A-Z]{1,16}$/, "must be an HTTP method"),
  url: z.string().url().max(MAX_URL_CHARS),
  headers: headerList,
  /** Set by the local proxy of one `azgate az`/`exec` run: which run sent it (azure/client-info.ts; recorded, never decided on). */
  invocation: z.object({ id: z.string().max(64), program: z.string().max(64).optional() }).optional(),
});
export type RequestHead = z.infer<typeof requestHeadSchema>;

export const responseHeadSchema = z.object({
  status: z.number().int().min(100).max(599),
  headers: headerList,
});
export type ResponseHead = z.infer<typeof responseHeadSchema>;

/** The trailer the agent sends after the body: where the time went, and whether the upstream body ended abnormally. */
export const responseTrailerSchema = z.object({
  timings: z.object({ total_ms: z.number(), token_ms: z.number().optional(), upstream_ms: z.number().optional() }),
  /** The principal (object ID) of the token the agent sent: who Azure's logs say called. */
  principal_id: z.string().max(64).optional(),
  error: z.string().max(4096).optional(),
});
export type ResponseTrailer = z.infer<typeof responseTrailerSchema>;

/** Answers a stream with a small JSON response and ends it (refusals and errors). */
export async function respondJson(stream: TunnelStream, status: number, body: unknown, extraHeaders: HeaderList = []): Promise<void> {
  const bytes = new TextEncoder().encode(JSON.stringify(body));
  stream.sendMeta({ status, headers: [["content-type", "application/json; charset=utf-8"], ["content-length", String(bytes.length)], ...extraHeaders] } satisfies ResponseHead);
  const writer = stream.writable.getWriter();
  await writer.write(bytes);
  await writer.close();
}

export interface TunnelResponse {
  status: number;
  headers: HeaderList;
  body: ReadableStream<Uint8Array>;
  /** Resolves after the body with the trailer, if the far side sent one. */
  trailer: () => Promise<ResponseTrailer | null>;
  stream: TunnelStream;
}

/**
 * Sends one HTTP request over a session and waits for the response head.
 * The body (if any) is streamed with flow control.
 */
export async function tunnelRequest(
  session: TunnelSession,
  head: Omit<RequestHead, "kind"> & Meta,
  body?: ReadableStream<Uint8Array> | Uint8Array,
): Promise<TunnelResponse> {
  const stream = session.open({ kind: "http", ...head });
  // Straight onto the stream, not through its web stream: an empty body's END goes out in the same turn as the OPEN.
  const sending = (async () => {
    try {
      if (body instanceof ReadableStream) for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) await stream.write(chunk);
      else if (body && body.length) await stream.write(body);
      stream.end();
    } catch (e) {
      stream.reset(ErrorCode.CANCEL, (e as Error).message);
    }
  })();
  void sending;
  const meta = await stream.readMeta();
  if (!meta) {
    stream.reset(ErrorCode.PROTOCOL_ERROR, "no response head");
    throw new Error("the tunnel stream ended without a response");
  }
  const parsed = responseHeadSchema.safeParse(meta);
  if (!parsed.success) {
    stream.reset(ErrorCode.PROTOCOL_ERROR, "malformed response head");
    throw new Error("malformed response head on the tunnel stream");
  }
  return {
    status: parsed.data.status,
    headers: parsed.data.headers,
    // Made on first use: a caller that takes a whole answer (takeWhole) never needs one.
    get body() {
      return stream.readable;
    },
    trailer: async () => responseTrailerSchema.safeParse(await stream.readMeta().catch(() => null)).data ?? null,
    stream,
  };
}
