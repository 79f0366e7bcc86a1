import { spawn } from "node:child_process";

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * What a child with an otherwise clean environment still inherits: PATH, and
 * libfaketime's variables, so a run moved in time (the CI's time-travel run,
 * `faketime '+400 days' ...`) moves the clients it starts too.
 */
export function baseEnv(): Record<string, string> {
  const keep = Object.entries(process.env).filter(([k, v]) => v !== undefined && (k === "LD_PRELOAD" || k.startsWith("FAKETIME") || k === "DONT_FAKE_MONOTONIC"));
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", ...(Object.fromEntries(keep) as Record<string, string>) };
}

/** Runs a command to completion with exactly the given environment (plus baseEnv()). */
export function runCommand(cmd: string, args: string[], env: Record<string, string>, timeoutMs = 120_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...baseEnv(), ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${cmd}: ${e.message}`));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** Runs a client script (node or Debian's python) and parses the one JSON line it prints last. */
export async function runJsonClient<T>(script: string, args: string[], env: Record<string, string>): Promise<T> {
  const interpreter = script.endsWith(".py") ? "/usr/bin/python3" : "node";
  const res = await runCommand(interpreter, [script, ...args], env);
  try {
    return JSON.parse(res.stdout.trim().split("\n").pop() ?? "") as T;
  } catch {
    throw new Error(`${script} printed no result (exit ${res.code}):\n${res.stdout}\n${res.stderr}`);
  }
}
