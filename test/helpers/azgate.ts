import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { TOTP, Secret } from "otpauth";

declare const Deno: { execPath(): string } | undefined;

const ROOT = path.resolve(import.meta.dirname, "../..");

/**
 * The real CLI on the runtime running the tests: on Deno, the sources
 * directly; on Node, the single binary this checkout builds (test/global-setup.ts
 * builds it when a source is newer), or, with AZGATE_TEST_FROM_SOURCE=1,
 * the sources through tsx (what the demo's alias runs), which start about
 * 0.35 s slower each: thousands of processes in a run.
 */
export function azgateCommand(args: string[]): [string, string[]] {
  if (typeof Deno !== "undefined") return [Deno.execPath(), ["run", "-A", "--quiet", path.join(ROOT, "cmd/azgate.ts"), ...args]];
  const binary = process.env[TEST_BINARY_ENV];
  if (binary) return [binary, args];
  return [process.execPath, [path.join(ROOT, "bin/azgate.mjs"), ...args]];
}

/** Set by test/global-setup.ts to the single binary the Node run spawns. */
export const TEST_BINARY_ENV = "AZGATE_TEST_CLI_BINARY";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function tempDir(prefix = "azgate-e2e-"): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

/** Runs `azgate ARGS` to completion, writing `input` to its stdin. */
export function cli(args: string[], opts: { home: string; input?: string; env?: Record<string, string>; cwd?: string }): Promise<CliResult> {
  const [cmd, argv] = azgateCommand(args);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { env: { ...process.env, AZGATE_HOME: opts.home, NO_COLOR: "1", ...opts.env }, stdio: ["pipe", "pipe", "pipe"], cwd: opts.cwd });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(opts.input ?? "");
  });
}

export interface ProxyProcess {
  port: number;
  addr: string;
  pin: string;
  dataDir: string;
  child: ChildProcess;
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `azgate start --mode proxy` on a free loopback port and waits until it serves. */
export function startProxyProcess(opts: { dataDir: string; home: string; args?: string[]; clusterName?: string; port?: number; env?: Record<string, string> }): Promise<ProxyProcess> {
  const [cmd, argv] = azgateCommand(["start", "--mode", "proxy", "--data-dir", opts.dataDir, "--listen", `127.0.0.1:${opts.port ?? 0}`, "--cluster-name", opts.clusterName ?? "e2e", ...(opts.args ?? [])]);
  const child = spawn(cmd, argv, { env: { ...process.env, AZGATE_HOME: opts.home, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`proxy did not start:\n${out}`)), 30_000);
    const onData = (d: Buffer) => {
      out += d;
      const port = /Listening:\s+\S+:(\d+)/.exec(out)?.[1];
      const pin = /CA pin:\s+(sha256:[0-9a-f]{64})/.exec(out)?.[1];
      if (port && pin) {
        clearTimeout(timer);
        resolve({
          port: Number(port),
          addr: `127.0.0.1:${port}`,
          pin,
          dataDir: opts.dataDir,
          child,
          output: () => out,
          stop: (signal = "SIGTERM") =>
            new Promise((done) => {
              if (child.exitCode !== null || child.signalCode !== null) return done();
              // KNOWN GAP (open): on Deno, a proxy that carried 1,000 concurrent streams (replicas-load) has been seen
              // still draining 60 s after SIGTERM. Teardown is bounded: after 30 s it is killed, and says so.
              const killer = setTimeout(() => {
                process.stderr.write(`[test] proxy on ${opts.dataDir} still running 30 s after ${signal}; killing it\n`);
                child.kill("SIGKILL");
              }, 30_000);
              child.once("exit", () => {
                clearTimeout(killer);
                done();
              });
              child.kill(signal);
            }),
        });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`proxy exited with ${code}:\n${out}`)));
  });
}

/**
 * An authenticator: codes for strictly increasing time steps (a code is
 * accepted once). It starts at the current step, never a past one: a past
 * step's code dies at the next 30 s boundary, which a CLI start can cross.
 * It uses the proxy's one-step drift for a second code in the same step and
 * waits for the clock only beyond that.
 */
export class Authenticator {
  private last = -Infinity;
  constructor(readonly secret: string = new Secret({ size: 20 }).base32) {}

  async code(): Promise<string> {
    let now = Date.now();
    const step = Math.max(this.last + 1, Math.floor(now / 30_000));
    while (step > Math.floor(now / 30_000) + 1) {
      await new Promise((r) => setTimeout(r, 1000));
      now = Date.now();
    }
    this.last = step;
    return new TOTP({ secret: Secret.fromBase32(this.secret) }).generate({ timestamp: step * 30_000 + 1 });
  }
}

export interface LongRunningCli {
  child: ChildProcess;
  output(): string;
  /** Sends `signal` and resolves with the exit code (or the signal's conventional code). */
  stop(signal?: NodeJS.Signals): Promise<number>;
}

/** Starts `azgate ARGS` that keeps running (proxy azure), resolved once its stdout matches `ready`. */
export function startCli(args: string[], opts: { home: string; env?: Record<string, string>; ready: RegExp; timeoutMs?: number }): Promise<LongRunningCli> {
  const [cmd, argv] = azgateCommand(args);
  const child = spawn(cmd, argv, { env: { ...process.env, AZGATE_HOME: opts.home, NO_COLOR: "1", ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const exited = new Promise<number>((done) => child.once("exit", (code, signal) => done(code ?? (signal === "SIGINT" ? 130 : 143))));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`azgate ${args.join(" ")} did not get ready:\n${out}`)), opts.timeoutMs ?? 30_000);
    const onData = (d: Buffer) => {
      out += d;
      if (opts.ready.test(out)) {
        clearTimeout(timer);
        resolve({
          child,
          output: () => out,
          stop: (signal = "SIGINT") => {
            if (child.exitCode === null && child.signalCode === null) {
              child.kill(signal);
              // Teardown is bounded (see the proxy's stop above): killed after 30 s, said so.
              const killer = setTimeout(() => {
                process.stderr.write(`[test] azgate ${args[0]} still running 30 s after ${signal}; killing it\n`);
                child.kill("SIGKILL");
              }, 30_000);
              void exited.finally(() => clearTimeout(killer));
            }
            return exited;
          },
        });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (d) => (out += d));
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`azgate ${args.join(" ")} exited (${code}) before it was ready:\n${out}`));
    });
  });
}

/** `export K=V` lines (as `proxy azure --format unix` prints them) to an environment. */
export function parseExports(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/^export ([A-Z_][A-Z0-9_]*)=(.*)$/gm)) {
    env[m[1]] = m[2].startsWith("'") ? m[2].slice(1, -1).replace(/'\\''/g, "'") : m[2];
  }
  return env;
}
