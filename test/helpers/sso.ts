/**
 * Driving `azgate login --auth NAME --browser none` like a person: read the
 * link it prints, open it in Chromium, sign in at the identity provider.
 */
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { createHash, randomBytes } from "node:crypto";
import type { Page } from "playwright-core";
import { azgateCommand, type CliResult } from "./azgate.ts";
import { loginUrlFrom } from "./browser.ts";
import type { TestCluster } from "./cluster.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../../src/pki/keys.ts";
import { ApiClient } from "../../src/api/client.ts";
import { listenTracked } from "../../src/net/listen.ts";

export interface PendingLogin {
  url: string;
  done: Promise<CliResult>;
  /** Ends a login the test will not finish. */
  cancel(): Promise<CliResult>;
  /** Types a line into the CLI (as a person pasting an address). */
  type(line: string): void;
  /** What the CLI printed to stderr so far. */
  output(): string;
}

/** Starts the CLI login and resolves once it has printed the link to open. */
export function startSsoLogin(cluster: TestCluster, home: string, connector: string, extra: string[] = []): Promise<PendingLogin> {
  const [cmd, argv] = azgateCommand(["login", "--proxy", cluster.proxy.addr, "--ca-pin", cluster.proxy.pin, "--auth", connector, "--browser", "none", ...extra]);
  const child = spawn(cmd, argv, { env: { ...process.env, AZGATE_HOME: home, NO_COLOR: "1" }, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  const done = new Promise<CliResult>((resolve) => child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr })));
  return new Promise((resolve, reject) => {
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => {
      stderr += d;
      const url = loginUrlFrom(stderr);
      if (url)
        resolve({
          url,
          done,
          cancel: () => {
            child.kill("SIGTERM");
            return done;
          },
          type: (line) => child.stdin.write(line + "\n"),
          output: () => stderr,
        });
    });
    void done.then((r) => reject(new Error(`login exited (${r.code}) before printing a link:\n${r.stderr}`)));
  });
}

/** Waits until the browser has landed on a loopback callback (the client's, or one of a test's). */
export async function waitForCallback(page: Page): Promise<URL> {
  await page.waitForURL((u) => u.hostname === "127.0.0.1" && u.pathname === "/callback", { timeout: 30_000 });
  return new URL(page.url());
}

/**
 * An SSO login made by hand against the API, standing in for a client whose
 * loopback a test controls: what arrives at its callback is recorded.
 */
export async function startRawAttempt(cluster: TestCluster, connector: string, opts: { ttlMs?: number } = {}) {
  const secret = randomBytes(32).toString("hex");
  const keys = await generateKeyPair();
  const arrived: URL[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (url.pathname === "/callback") arrived.push(url); // not the browser's favicon request
    res.end("recorded\n");
  });
  const listener = await listenTracked(server, 0, "127.0.0.1");
  const api = new ApiClient(cluster.target);
  const start = await api.call<{ attempt: string; auth_url: string }>("POST", "/v1/sso/login", {
    connector,
    public_key_pem: await publicKeyToPem(keys.publicKey),
    redirect_url: `http://127.0.0.1:${listener.port}/callback`,
    secret_hash: createHash("sha256").update(secret).digest("hex"),
    ttl_ms: opts.ttlMs,
  });
  return {
    ...start,
    secret,
    arrived,
    keyPem: await privateKeyToPem(keys.privateKey),
    pickup: (code: string, withSecret = secret) => api.call<{ cert_pem: string; user: string }>("POST", "/v1/sso/pickup", { attempt: start.attempt, code, secret: withSecret }),
    close: () => listener.close(),
  };
}
