/**
 * Running the real `az` through an app session: find it, learn its version
 * once (MSAL managed identity from 2.73 changes the login flag), and run it
 * with the local proxy's environment, passing stdio, signals and exit code.
 */
import { execFile, spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { AzgateError } from "../errors/index.ts";
import { readTextOrNull, writeFileAtomic } from "../runtime/fs.ts";
import { azgateHome } from "./profile.ts";

export const MSAL_VERSION = [2, 73, 0];

export function findAz(env: Record<string, string | undefined> = process.env): string {
  for (const dir of (env.PATH ?? "").split(path.delimiter)) {
    const candidate = path.join(dir, "az");
    if (dir && existsSync(candidate)) return candidate;
  }
  throw new AzgateError(
    "not_found",
    "the Azure CLI (az) is not installed or not on PATH; install it (Debian/Ubuntu: apt-get install azure-cli; elsewhere: https://aka.ms/InstallAzureCLI), or use azgate proxy azure with another client",
  );
}

/**
 * az's version, cached per binary (az version is slow); null when it cannot
 * be read. `configDir` (a bot's): az runs there and nothing is cached under
 * the home directory.
 */
export async function azVersion(az: string, configDir?: string): Promise<string | null> {
  const cacheFile = configDir ? null : path.join(azgateHome(), "az-version.json");
  const stamp = `${az}:${statSync(az).mtimeMs}`;
  const cached = cacheFile ? await readTextOrNull(cacheFile) : null;
  if (cached) {
    const c = JSON.parse(cached) as { stamp: string; version: string };
    if (c.stamp === stamp) return c.version;
  }
  // A config dir of its own: a bare `az version` would create ~/.azure and try the network on its own.
  const env = { ...process.env, AZURE_CONFIG_DIR: configDir ?? path.join(azgateHome(), "azure", ".az-version"), AZURE_CORE_COLLECT_TELEMETRY: "false" };
  // Not spawnSync: a bot asks while it joins, and waits for both at once.
  const stdout = await new Promise<string>((resolve) => {
    execFile(az, ["version", "--output", "json"], { encoding: "utf8", env, timeout: 60_000 }, (_err, out) => resolve(String(out ?? "")));
  });
  try {
    const version = String((JSON.parse(stdout) as Record<string, string>)["azure-cli-core"]);
    if (!/^\d+\.\d+\.\d+/.test(version)) return null;
    if (cacheFile) await writeFileAtomic(cacheFile, JSON.stringify({ stamp, version }) + "\n", 0o600).catch(() => undefined);
    return version;
  } catch {
    return null;
  }
}

/** az 2.73+ takes --resource-id for a managed identity; older versions --username. Unknown: assume new (as Teleport does). */
export function usesMsal(version: string | null): boolean {
  if (!version) return true;
  const v = version.split(".").map((n) => parseInt(n, 10));
  for (let i = 0; i < 3; i++) if ((v[i] ?? 0) !== MSAL_VERSION[i]) return (v[i] ?? 0) > MSAL_VERSION[i];
  return true;
}

/** Runs az with `env` added, passing stdio and signals; resolves with its exit code. */
export function runAz(az: string, args: string[], env: Record<string, string>, opts: { capture?: boolean; signal?: AbortSignal } = {}): Promise<{ code: number; stdout: string }> {
  return runChild(az, args, { AZURE_CORE_COLLECT_TELEMETRY: "false", ...process.env, ...env } as Record<string, string>, opts);
}

/**
 * Runs a command with exactly `env`, passing stdin, stdout and stderr,
 * SIGINT and SIGTERM; resolves with its exit code (128 + the signal when a
 * signal ended it). A command that cannot be started rejects, saying why.
 */
export function runChild(cmd: string, args: string[], env: Record<string, string>, opts: { capture?: boolean; signal?: AbortSignal } = {}): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ["inherit", opts.capture ? "pipe" : "inherit", "inherit"], signal: opts.signal });
    let stdout = "";
    child.stdout?.on("data", (d) => {
      stdout += d;
      process.stdout.write(d);
    });
    const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
    const onInt = forward("SIGINT");
    const onTerm = forward("SIGTERM");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
    const done = () => {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
    };
    child.on("error", (e: NodeJS.ErrnoException) => {
      done();
      if (e.code === "ENOENT") reject(new AzgateError("not_found", `${cmd}: command not found (not on PATH)`));
      else if (e.code === "EACCES") reject(new AzgateError("access_denied", `${cmd}: permission denied (not executable?)`));
      else reject(e);
    });
    child.on("close", (code, signal) => {
      done();
      resolve({ code: code ?? 128 + (signal === "SIGINT" ? 2 : signal === "SIGKILL" ? 9 : 15), stdout });
    });
  });
}
