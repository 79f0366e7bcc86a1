/**
 * Running the real `az` through an app session: find it, learn its version
 * once (MSAL managed identity from 2.73 changes the login flag), and run it
 * with the local proxy's environment, passing stdio, signals and exit code.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { AzgateError } from "../errors/index.ts";
import { readTextOrNull, writeFileAtomic } from "../runtime/index.ts";
import { azgateHome } from "./profile.ts";
import { IDENTITY_HOST, MSI_HOST } from "./token-endpoint.ts";

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

/** az's version, cached per binary (az version is slow); null when it cannot be read. */
export async function azVersion(az: string): Promise<string | null> {
  const cacheFile = path.join(azgateHome(), "az-version.json");
  const stamp = `${az}:${statSync(az).mtimeMs}`;
  const cached = await readTextOrNull(cacheFile);
  if (cached) {
    const c = JSON.parse(cached) as { stamp: string; version: string };
    if (c.stamp === stamp) return c.version;
  }
  // A config dir of its own: a bare `az version` would create ~/.azure and try the network on its own.
  const env = { ...process.env, AZURE_CONFIG_DIR: path.join(azgateHome(), "azure", ".az-version"), AZURE_CORE_COLLECT_TELEMETRY: "false" };
  const out = spawnSync(az, ["version", "--output", "json"], { encoding: "utf8", env, timeout: 60_000 });
  try {
    const version = String((JSON.parse(out.stdout) as Record<string, string>)["azure-cli-core"]);
    if (!/^\d+\.\d+\.\d+/.test(version)) return null;
    await writeFileAtomic(cacheFile, JSON.stringify({ stamp, version }) + "\n", 0o600).catch(() => undefined);
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

const SECRET = /^[0-9a-f]{16,128}$/;

function inheritedError(what: string): AzgateError {
  return new AzgateError("bad_parameter", `${what}; this shell's managed-identity variables are not azgate's. Unset them (unset MSI_ENDPOINT IDENTITY_ENDPOINT IDENTITY_HEADER) or open a new shell, then run the command again`);
}

/**
 * Reuses the secret of exports already in the environment (a shell that ran
 * `azgate proxy azure`), else a new one. Another service's endpoint (a VM's,
 * App Service's) is replaced in the child's environment. What is refused is
 * a half or damaged azgate export: an IDENTITY_HEADER without its endpoint,
 * azgate's endpoint with a malformed secret, or two secrets that disagree;
 * guessing there could hand a client a secret that is not this session's.
 */
export function tokenSecret(env: Record<string, string | undefined> = process.env): string {
  const idEndpoint = env.IDENTITY_ENDPOINT;
  const idHeader = env.IDENTITY_HEADER;
  const msi = env.MSI_ENDPOINT;
  const ours = `https://${IDENTITY_HOST}`;
  const msiPrefix = `https://${MSI_HOST}/`;
  let fromIdentity: string | undefined;
  let fromMsi: string | undefined;
  if (idHeader !== undefined && !idEndpoint) throw inheritedError("IDENTITY_HEADER is set without IDENTITY_ENDPOINT");
  if (idEndpoint?.replace(/\/$/, "") === ours) {
    if (!idHeader || !SECRET.test(idHeader)) throw inheritedError(`IDENTITY_ENDPOINT is azgate's (${ours}) but IDENTITY_HEADER is ${idHeader ? "malformed" : "missing"}`);
    fromIdentity = idHeader;
  }
  if (msi !== undefined && msi.toLowerCase().startsWith(msiPrefix.slice(0, -1))) {
    const secret = msi.slice(msiPrefix.length);
    if (!msi.startsWith(msiPrefix) || !SECRET.test(secret)) throw inheritedError(`MSI_ENDPOINT names azgate's endpoint but is malformed (${JSON.stringify(msi.slice(0, 80))})`);
    fromMsi = secret;
  }
  if (fromIdentity && fromMsi && fromIdentity !== fromMsi) throw inheritedError("IDENTITY_HEADER and MSI_ENDPOINT carry different azgate secrets");
  return fromIdentity ?? fromMsi ?? Array.from(crypto.getRandomValues(new Uint8Array(10)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Runs az with `env` added, passing stdio and signals; resolves with its exit code. */
export function runAz(az: string, args: string[], env: Record<string, string>, opts: { capture?: boolean } = {}): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(az, args, { env: { AZURE_CORE_COLLECT_TELEMETRY: "false", ...process.env, ...env }, stdio: ["inherit", opts.capture ? "pipe" : "inherit", "inherit"] });
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
    child.on("error", reject);
    child.on("close", (code, signal) => {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      resolve({ code: code ?? (signal === "SIGINT" ? 130 : 143), stdout });
    });
  });
}
