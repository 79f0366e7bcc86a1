import { createReadStream, createWriteStream, promises as fsp } from "node:fs";
import { createHash, randomUUID } from "node:crypto";
import path from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Hono, type Context } from "hono";
import type { SigningKey } from "./keys.ts";
import type { World } from "./world.ts";
import { bearerChecker } from "./bearer.ts";
import { isDataAllowed } from "./arm-rbac.ts";
import { PUBLIC_CLOUD, type EmulatedCloud } from "./clouds.ts";
import { blobListXml, CONTAINER_PROPERTY_HEADERS, containerListXml } from "./blob-lists.ts";

const BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs";

/**
 * Blob storage on <account>.blob.core.windows.net: block blobs put and get,
 * streamed to and from disk (bodies may be large), the account's containers
 * and a container's blobs listed, a container's properties, data-plane RBAC,
 * audience https://storage.azure.com, errors in Storage's XML shape.
 */
export function blobApp(opts: { world: World; key: SigningKey; dir: string; cloud?: EmulatedCloud }) {
  const { world } = opts;
  const cloud = opts.cloud ?? PUBLIC_CLOUD;
  const suffix = cloud.blobSuffix;
  const check = bearerChecker(opts.key, ["https://storage.azure.com", "https://storage.azure.com/"]);
  const app = new Hono();

  app.all("*", async (c) => {
    const url = new URL(c.req.url);
    const accountName = url.hostname.slice(0, -suffix.length);
    const account = world.storage_accounts.find((a) => a.name === accountName);
    if (!account) return xmlError(c, 404, "ResourceNotFound", "The specified resource does not exist.");
    const auth = await check(c.req.header("authorization"));
    if (!auth.ok) {
      c.header("WWW-Authenticate", `Bearer authorization_uri=https://${cloud.loginHost}/${world.tenant_id}/oauth2/authorize resource_id=https://storage.azure.com`);
      return xmlError(c, 401, auth.reason === "missing" ? "NoAuthenticationInformation" : "InvalidAuthenticationInfo", "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.");
    }
    const [container, ...rest] = url.pathname.split("/").slice(1).map(decodeURIComponent);
    const blob = rest.join("/");
    const oid = String(auth.claims.oid);
    const accountScope = `/subscriptions/${account.subscription}/resourceGroups/${account.resource_group}/providers/Microsoft.Storage/storageAccounts/${account.name}`;
    const endpoint = `https://${account.name}${suffix}/`;
    const q = url.searchParams;
    const method = c.req.method;
    // Listing is reading data: a token needs a data role (Storage Blob Data Reader and up), as Azure asks;
    // the control-plane Reader alone is refused, as it is there.
    const refusedRead = () => xmlError(c, 403, "AuthorizationPermissionMismatch", "This request is not authorized to perform this operation using this permission.");
    if (!container && method === "GET" && q.get("comp") === "list") {
      if (!isDataAllowed(world, oid, `${BLOBS}/read`, accountScope)) return refusedRead();
      return listing(c, containerListXml(endpoint, account.containers, q));
    }
    if (!container || !account.containers.includes(container)) return xmlError(c, 404, "ContainerNotFound", "The specified container does not exist.");
    const scope = `${accountScope}/blobServices/default/containers/${container}`;
    if (!blob && q.get("restype") === "container" && (method === "GET" || method === "HEAD")) {
      if (!isDataAllowed(world, oid, `${BLOBS}/read`, scope)) return refusedRead();
      if (q.get("comp") === "list" && method === "GET") {
        const etagOf = (name: string) => fsp.readFile(path.join(opts.dir, "blob-etags", account.name, container, ...name.split("/")), "utf8").catch(() => '"0x0"');
        return listing(c, await blobListXml(endpoint, container, path.join(opts.dir, "blobs", account.name, container), q, etagOf));
      }
      if (!q.get("comp")) return c.body(null, 200, { ...CONTAINER_PROPERTY_HEADERS, "x-ms-version": "2021-08-06" });
    }
    if (!blob || blob.split("/").some((s) => s === ".." || s === ".")) return xmlError(c, 400, "InvalidUri", "The requested URI does not represent any resource on the server.");
    const file = path.join(opts.dir, "blobs", account.name, container, ...blob.split("/"));
    // Metadata lives in its own tree, so no blob name can collide with it.
    const etagFile = path.join(opts.dir, "blob-etags", account.name, container, ...blob.split("/"));
    const action = method === "PUT" ? "write" : method === "DELETE" ? "delete" : "read";
    if (!isDataAllowed(world, oid, `${BLOBS}/${action}`, scope)) {
      // As Azure does, the refused upload's body is read (and dropped) before the answer: a client still sending
      // it then reads the 403 instead of a broken pipe (seen under load).
      if (c.req.raw.body) for await (const _ of c.req.raw.body as unknown as AsyncIterable<Uint8Array>) void _;
      return xmlError(c, 403, "AuthorizationPermissionMismatch", "This request is not authorized to perform this operation using this permission.");
    }
    if (method === "PUT") {
      if (c.req.header("x-ms-blob-type") !== "BlockBlob") return xmlError(c, 400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format. Only BlockBlob uploads are emulated.");
      await fsp.mkdir(path.dirname(file), { recursive: true });
      const md5 = createHash("md5");
      const body = c.req.raw.body ? Readable.fromWeb(c.req.raw.body as import("node:stream/web").ReadableStream) : Readable.from([]);
      const hashing = new Transform({ transform: (chunk, _e, done) => (md5.update(chunk), done(null, chunk)) });
      // Like Azure, an upload that breaks off leaves the old blob (or none), never a partial one.
      const uploads = path.join(opts.dir, "blob-uploads");
      await fsp.mkdir(uploads, { recursive: true });
      const temp = path.join(uploads, randomUUID());
      try {
        await pipeline(body, hashing, createWriteStream(temp));
        await fsp.rename(temp, file);
      } catch (e) {
        await fsp.rm(temp, { force: true });
        throw e;
      }
      const etag = `"0x${randomUUID().replace(/-/g, "").slice(0, 15).toUpperCase()}"`;
      await fsp.mkdir(path.dirname(etagFile), { recursive: true });
      await fsp.writeFile(etagFile, etag);
      return c.body(null, 201, { ETag: etag, "Content-MD5": md5.digest("base64"), "x-ms-request-server-encrypted": "true", "x-ms-version": "2021-08-06" });
    }
    const stat = await fsp.stat(file).catch(() => null);
    if (!stat) return xmlError(c, 404, "BlobNotFound", "The specified blob does not exist.");
    if (method === "DELETE") {
      await fsp.rm(file);
      return c.body(null, 202);
    }
    const headers = {
      "Content-Length": String(stat.size),
      "Content-Type": "application/octet-stream",
      ETag: await fsp.readFile(etagFile, "utf8").catch(() => '"0x0"'),
      "Last-Modified": stat.mtime.toUTCString(),
      "x-ms-blob-type": "BlockBlob",
      "x-ms-version": "2021-08-06",
    };
    if (method === "HEAD") return c.body(null, 200, headers);
    // SDKs download large blobs in parallel ranges (Range or x-ms-range).
    const range = parseRange(c.req.header("x-ms-range") ?? c.req.header("range"), stat.size);
    if (range === "invalid") return xmlError(c, 416, "InvalidRange", "The range specified is invalid for the current size of the resource.");
    if (range) {
      const partial = { ...headers, "Content-Length": String(range.end - range.start + 1), "Content-Range": `bytes ${range.start}-${range.end}/${stat.size}` };
      return new Response(Readable.toWeb(createReadStream(file, range)) as ReadableStream, { status: 206, headers: partial });
    }
    return new Response(Readable.toWeb(createReadStream(file)) as ReadableStream, { status: 200, headers });
  });
  return app;
}

function listing(c: Context, xml: string): Response {
  return c.body(xml, 200, { "Content-Type": "application/xml", "x-ms-version": "2021-08-06" });
}

/** `bytes=START-[END]` within a blob of `size` bytes; null when absent. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | "invalid" {
  if (!header) return null;
  const m = /^bytes=(\d+)-(\d*)$/.exec(header.trim());
  if (!m) return "invalid";
  const start = Number(m[1]);
  const end = Math.min(m[2] ? Number(m[2]) : size - 1, size - 1);
  return start > end || start >= size ? "invalid" : { start, end };
}

function xmlError(c: Context, status: number, code: string, message: string): Response {
  const body = `\uFEFF<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${message}\nRequestId:${randomUUID()}\nTime:${new Date().toISOString()}</Message></Error>`;
  return c.body(body, status as 400, { "Content-Type": "application/xml", "x-ms-error-code": code });
}
