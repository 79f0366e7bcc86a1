import { promises as fsp, constants, fdatasync, write } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import { randomBytes } from "node:crypto";

/** Makes a directory (and parents) and sets its mode; 0700 keeps it private. */
export async function ensureDir(dir: string, mode = 0o700): Promise<void> {
  await fsp.mkdir(dir, { recursive: true, mode });
}

/**
 * Opens `file` to append to it durably: with O_DSYNC, each write returns once
 * its data is on disk, one thread-pool job where a write and an fdatasync
 * were two. Where the platform has no O_DSYNC, appendDurably syncs instead.
 */
export function openForDurableAppend(file: string, mode = 0o600): Promise<FileHandle> {
  return fsp.open(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | (constants.O_DSYNC ?? 0), mode);
}

/**
 * Appends `data` at the end of a file opened by openForDurableAppend and
 * waits until it is on disk. The callback API: a FileHandle's appendFile and
 * datasync cost several times more per call.
 */
export function appendDurably(fd: number, data: Uint8Array): Promise<void> {
  return new Promise((done, fail) => {
    const from = (offset: number) =>
      write(fd, data, offset, data.length - offset, null, (e, n) => {
        if (e) return fail(e);
        if (offset + n < data.length) return from(offset + n);
        if (constants.O_DSYNC !== undefined) return done();
        fdatasync(fd, (e2) => (e2 ? fail(e2) : done()));
      });
    from(0);
  });
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Crash-safe replace: write a temp file beside the target, fsync it, rename it
 * over the target, then fsync the directory so the rename itself is durable.
 * A crash at any point leaves the old file or the new one, never a torn one.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${randomBytes(6).toString("hex")}`);
  const fh = await fsp.open(tmp, "w", mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fsp.chmod(tmp, mode); // the umask may have narrowed or widened the create mode
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  await fsyncDir(dir);
}

export async function readTextOrNull(file: string): Promise<string | null> {
  try {
    return await fsp.readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

export async function removeFile(file: string): Promise<boolean> {
  try {
    await fsp.unlink(file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw e;
  }
}
