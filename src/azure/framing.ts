/**
 * How a forwarded request's body is framed on its way to Azure: decided here,
 * once, never taken as the client sent it. A body the next hop could read as
 * something else is request smuggling: on a kept-alive connection, the bytes
 * of an allowed GET's "body" would be read by Azure as a second request that
 * azgate never decided, with the real token of whoever's connection it was.
 *
 * - A GET, HEAD or OPTIONS carries no body: a declared length above zero, or
 *   any body byte, is refused.
 * - Any other method's body is framed by a length the agent enforces byte for
 *   byte (Content-Length, a single decimal), or, without one, chunked by the
 *   HTTP client (a DELETE's body needs a declared length: Node would write it
 *   unframed).
 * - Transfer-Encoding and Expect never cross (forwarding.ts drops hop-by-hop
 *   headers; Content-Length is re-written from the checked value).
 */
import { BadRequest } from "../errors/index.ts";
import type { HeaderList } from "../tunnel/http.ts";

/** Methods Azure's APIs never send a body with. */
const BODYLESS = new Set(["GET", "HEAD", "OPTIONS"]);
/** Methods an HTTP client frames by chunks when no length is given (Node sends others' bodies raw). */
const CHUNKED_BY_DEFAULT = new Set(["POST", "PUT", "PATCH"]);
/** The largest length azgate forwards (a block blob's single PUT is at most 5,000 MiB). */
export const MAX_BODY_LENGTH = 5_000 * 1024 * 1024;

/** True for the methods that carry no body (a body on one is refused wherever it is seen). */
export const isBodyless = (method: string) => BODYLESS.has(method.toUpperCase());

/** The declared length, checked: null when none is declared. */
export function declaredLength(headers: HeaderList): number | null {
  const values = headers.filter(([k]) => k.toLowerCase() === "content-length").map(([, v]) => v.trim());
  if (values.length === 0) return null;
  if (values.length > 1 || !/^\d{1,13}$/.test(values[0])) throw new BadRequest("the request has a malformed or repeated Content-Length");
  const n = Number(values[0]);
  if (n > MAX_BODY_LENGTH) throw new BadRequest(`the request's body is larger than azgate forwards (${MAX_BODY_LENGTH} bytes)`);
  return n;
}

/**
 * The framing of a request whose head is `method` and `headers`, before its
 * body is known (the proxy's check): throws BadRequest for what can only be
 * smuggling or a client's mistake.
 */
export function checkFramingHead(method: string, headers: HeaderList): number | null {
  if (headers.some(([k]) => ["transfer-encoding", "expect"].includes(k.toLowerCase()))) {
    // The local proxy and the proxy drop these at their hop; one arriving here was put in the tunnel on purpose.
    throw new BadRequest("Transfer-Encoding and Expect do not cross azgate's tunnel");
  }
  const length = declaredLength(headers);
  if (BODYLESS.has(method.toUpperCase()) && length !== null && length > 0) throw new BadRequest(`a ${method.toUpperCase()} request carries no body`);
  return length;
}

/** The framing once it is known whether a body follows (the agent's check): the length to send, or null for none or chunks. */
export function checkFraming(method: string, headers: HeaderList, hasBody: boolean): number | null {
  const m = method.toUpperCase();
  const length = checkFramingHead(m, headers);
  if (!hasBody) return length === null ? null : length === 0 ? 0 : badLength(length, 0);
  if (BODYLESS.has(m)) throw new BadRequest(`a ${m} request carries no body`);
  if (length === null && !CHUNKED_BY_DEFAULT.has(m)) throw new BadRequest(`a ${m} request with a body needs a Content-Length`);
  return length;
}

function badLength(declared: number, got: number): never {
  throw new BadRequest(`the request's body is ${got} bytes, not the ${declared} its Content-Length declares`);
}

/**
 * The body as it may leave: exactly `length` bytes when a length is declared
 * (an error, which aborts the upstream request and its connection, on one
 * byte more or less); chunks as they come otherwise.
 */
export function framedBody(body: ReadableStream<Uint8Array>, length: number | null): ReadableStream<Uint8Array> {
  if (length === null) return body;
  let seen = 0;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        seen += chunk.length;
        if (seen > length) return controller.error(new BadRequest(`the request's body is longer than the ${length} bytes its Content-Length declares`));
        controller.enqueue(chunk);
      },
      flush(controller) {
        if (seen !== length) controller.error(new BadRequest(`the request's body is ${seen} bytes, not the ${length} its Content-Length declares`));
      },
    }),
  );
}
