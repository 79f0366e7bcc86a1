/**
 * Blob storage's listings, as the service answers them (XML): the account's
 * containers (`GET /?comp=list`, az storage container list) and a
 * container's blobs (`GET /c?restype=container&comp=list`, az storage blob
 * list), read from the world and the blobs on disk.
 */
import { promises as fsp } from "node:fs";
import path from "node:path";

const xmlText = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
/** A fixed date for containers: the world does not say when they were made. */
const CONTAINER_TIME = "Mon, 01 Jan 2024 00:00:00 GMT";
const CONTAINER_ETAG = '"0x8DC0A2F6B3C4D5E"';

export const CONTAINER_PROPERTY_HEADERS = { ETag: CONTAINER_ETAG, "Last-Modified": CONTAINER_TIME, "x-ms-lease-status": "unlocked", "x-ms-lease-state": "available", "x-ms-has-immutability-policy": "false", "x-ms-has-legal-hold": "false" };

function header(endpoint: string, q: URLSearchParams, extra = ""): string {
  const prefix = q.get("prefix");
  const max = q.get("maxresults");
  return `\uFEFF<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="${xmlText(endpoint)}"${extra}>${prefix ? `<Prefix>${xmlText(prefix)}</Prefix>` : ""}${max ? `<MaxResults>${xmlText(max)}</MaxResults>` : ""}`;
}

export function containerListXml(endpoint: string, containers: string[], q: URLSearchParams): string {
  const prefix = q.get("prefix") ?? "";
  const items = containers
    .filter((c) => c.startsWith(prefix))
    .sort()
    .map((c) => `<Container><Name>${xmlText(c)}</Name><Properties><Last-Modified>${CONTAINER_TIME}</Last-Modified><Etag>${CONTAINER_ETAG}</Etag><LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState><DefaultEncryptionScope>$account-encryption-key</DefaultEncryptionScope><DenyEncryptionScopeOverride>false</DenyEncryptionScopeOverride><HasImmutabilityPolicy>false</HasImmutabilityPolicy><HasLegalHold>false</HasLegalHold></Properties>${q.get("include")?.includes("metadata") ? "<Metadata />" : ""}</Container>`)
    .join("");
  return `${header(endpoint, q)}<Containers>${items}</Containers><NextMarker /></EnumerationResults>`;
}

/** Every file under `dir`, as blob names ('/'-separated, relative). */
async function walk(dir: string, base = ""): Promise<string[]> {
  const entries = await fsp.readdir(dir, { withFileTypes: true }).catch(() => []);
  const out: string[] = [];
  for (const e of entries) {
    const name = base ? `${base}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await walk(path.join(dir, e.name), name)));
    else if (e.isFile()) out.push(name);
  }
  return out;
}

/** The blobs of one container (`dir`: its files), with the properties az and the SDKs read; `etagOf` reads a blob's ETag. */
export async function blobListXml(endpoint: string, container: string, dir: string, q: URLSearchParams, etagOf: (name: string) => Promise<string>): Promise<string> {
  const prefix = q.get("prefix") ?? "";
  const names = (await walk(dir)).filter((n) => n.startsWith(prefix)).sort();
  const items: string[] = [];
  for (const name of names) {
    const stat = await fsp.stat(path.join(dir, ...name.split("/"))).catch(() => null);
    if (!stat) continue;
    const time = stat.mtime.toUTCString();
    items.push(
      `<Blob><Name>${xmlText(name)}</Name><Properties><Creation-Time>${time}</Creation-Time><Last-Modified>${time}</Last-Modified><Etag>${xmlText(await etagOf(name))}</Etag><Content-Length>${stat.size}</Content-Length><Content-Type>application/octet-stream</Content-Type><BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier><AccessTierInferred>true</AccessTierInferred><LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState><ServerEncrypted>true</ServerEncrypted></Properties></Blob>`,
    );
  }
  return `${header(endpoint, q, ` ContainerName="${xmlText(container)}"`)}<Blobs>${items.join("")}</Blobs><NextMarker /></EnumerationResults>`;
}
