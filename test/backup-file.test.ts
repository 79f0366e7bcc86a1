/** The review's attacks on the backup file, kept for re-testing: its permissions, a symlink at its path, and the passphrase. */
import { describe, expect, it } from "vitest";
import { lstatSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { writeFileAtomic } from "../src/runtime/index.ts";
import { openBackup, sealBackup } from "../src/storage/backup.ts";
import { tempDir } from "./helpers/azgate.ts";

describe("the file admin backup writes (writeFileAtomic, 0600)", () => {
  it("an existing 0644 file becomes 0600 (a new inode, not a chmod of the old)", async () => {
    const dir = tempDir("azgate-attack-perm-");
    const file = path.join(dir, "b.age");
    writeFileSync(file, "old", { mode: 0o644 });
    await writeFileAtomic(file, "new", 0o600);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });
  it("a symlink at the path is replaced, its target (elsewhere) not written", async () => {
    const dir = tempDir("azgate-attack-link-");
    const victim = path.join(dir, "victim.txt");
    writeFileSync(victim, "untouched", { mode: 0o644 });
    const link = path.join(dir, "b.age");
    symlinkSync(victim, link);
    await writeFileAtomic(link, "secret", 0o600);
    expect(readFileSync(victim, "utf8")).toBe("untouched");
    expect(lstatSync(link).isSymbolicLink()).toBe(false);
    expect(statSync(link).mode & 0o777).toBe(0o600);
  });
  it("a wrong passphrase's error names neither passphrase", async () => {
    const sealed = await sealBackup(new TextEncoder().encode("x\n"), { passphrase: "right-Pa55-phrase" });
    const err = await openBackup(sealed, { passphrase: "wrong-Pa55-phrase" }).then(() => null, (e: Error) => e);
    expect(err!.message).not.toMatch(/Pa55/);
  });
  it("a passphrase shorter than twelve characters is refused, saying why", async () => {
    await expect(sealBackup(new TextEncoder().encode("x\n"), { passphrase: "a" })).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringContaining("12 characters at least") });
    await expect(sealBackup(new TextEncoder().encode("x\n"), { passphrase: "twelve chars" })).resolves.toBeInstanceOf(Uint8Array);
  });
});
