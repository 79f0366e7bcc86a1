/**
 * Control calls on a tunnel (heartbeats, certificate renewal): a stream whose
 * OPEN metadata is the request and whose single META is the answer.
 */
import type { Meta } from "./frame.ts";
import type { TunnelSession } from "./session.ts";
import type { TunnelStream } from "./stream.ts";

export function respondJsonMeta(stream: TunnelStream, answer: Meta): void {
  if (stream.isClosed || stream.resetError) return;
  stream.sendMeta(answer);
  stream.end();
}

export async function controlCall<T>(session: TunnelSession, request: Meta, timeoutMs = 10_000): Promise<T> {
  const stream = session.open(request);
  stream.end();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const answer = await Promise.race([
      stream.readMeta(),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer to ${String(request.type)} within ${timeoutMs / 1000}s`)), timeoutMs))),
    ]);
    if (!answer) throw new Error(`${String(request.type)}: the proxy ended the call without an answer`);
    return answer as T;
  } finally {
    clearTimeout(timer);
    stream.reset(0, "done");
  }
}
