import { promises as fsp, readFileSync, rmSync } from "node:fs";
import { systemClock } from "../util/clock.ts";
import { AzgateError } from "../errors/index.ts";
import { fsyncDir } from "./fs.ts";
import path from "node:path";

export interface DirLock {
  file: string;
  release(): Promise<void>;
}

export interface LockHolder {
  pid: number;
  purpose: string;
  started: string;
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Who holds the lock now, or null when it is free or its holder is dead. */
export async function readLockHolder(file: string): Promise<LockHolder | null> {
  let text: string;
  try {
    text = await fsp.readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
  try {
    const holder = JSON.parse(text) as LockHolder;
    return holder.pid !== process.pid && isProcessAlive(holder.pid) ? holder : null;
  } catch {
    return null; // written by a process that died mid-write: treat as stale
  }
}

/**
 * An exclusive lock on a directory: a lock file created with O_EXCL holding
 * the owner's pid. A lock left by a dead process (SIGKILL, power loss) is
 * taken over; a live holder makes this fail with backend_locked.
 */
export async function acquireDirLock(dir: string, purpose: string): Promise<DirLock> {
  const file = path.join(dir, "azgate.lock");
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await fsp.open(file, "wx", 0o600);
      await fh.writeFile(JSON.stringify({ pid: process.pid, purpose, started: systemClock.date().toISOString() }));
      await fh.sync();
      await fh.close();
      await fsyncDir(dir);
      return {
        file,
        // Synchronous on purpose: it runs while a process stops, and on Deno an
        // async file op issued after heavy load was seen never to complete.
        release: async () => {
          let holder = "";
          try {
            holder = readFileSync(file, "utf8");
          } catch {
            return;
          }
          if (holder.includes(`"pid":${process.pid},`)) rmSync(file, { force: true });
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const holder = await readLockHolder(file);
      if (holder) {
        throw new AzgateError(
          "backend_locked",
          `data dir ${dir} is in use by another azgate process (pid ${holder.pid}, ${holder.purpose}, since ${holder.started}); stop it or choose another --data-dir`,
        );
      }
      await fsp.rm(file, { force: true }); // stale: its holder is gone
    }
  }
  throw new AzgateError("backend_locked", `could not lock data dir ${dir}; another process keeps taking it`);
}
