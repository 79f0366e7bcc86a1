/**
 * `azgate login --auth NAME`: the client side of an SSO login.
 *
 * A fresh key and a secret are made here and never leave this process
 * (only the secret's hash goes to the proxy). A loopback listener waits for
 * the browser to come back with a one-time code; the certificate is then
 * picked up with code and secret together, so a browser that lands on
 * another client, or a code read from a URL, gets nobody a certificate.
 */
import { systemClock } from "../util/clock.ts";
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createInterface } from "node:readline";
import { AzgateError } from "../errors/index.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../pki/keys.ts";
import { listenTracked } from "../net/listen.ts";
import { ApiClient, type ApiTarget } from "../api/client.ts";
import { openBrowser } from "./browser.ts";

export interface SsoLoginOptions {
  target: ApiTarget;
  connector: string;
  /** "none" prints the URL only; otherwise the system's browser (or $BROWSER) is opened. */
  browser?: string;
  ttlMs?: number;
  /** Where instructions go (stderr in the CLI). */
  say: (line: string) => void;
  /**
   * With browser "none": where the person may paste the address the browser
   * ended at, when that browser runs on another machine and so cannot reach
   * this one's loopback (stdin in the CLI).
   */
  pasteFrom?: NodeJS.ReadableStream;
}

export interface SsoLoginResult {
  user: string;
  roles: string[];
  keyPem: string;
  certPem: string;
}

type Outcome = { code: string } | { error: string };

export async function ssoLogin(o: SsoLoginOptions): Promise<SsoLoginResult> {
  const keys = await generateKeyPair();
  const api = new ApiClient(o.target);
  const publicKeyPem = await publicKeyToPem(keys.publicKey);
  const cert = await throughBrowser(o, {
    failed: "sso_failed",
    again: "run azgate login --auth again",
    done: "Login successful. You can close this window and return to the terminal.",
    webUi: `${o.target.baseUrl}/web/continue`,
    start: async (redirect_url, secret_hash) => {
      const r = await api.call<{ attempt: string; auth_url: string; expires: string }>("POST", "/v1/sso/login", { connector: o.connector, public_key_pem: publicKeyPem, redirect_url, secret_hash, ttl_ms: o.ttlMs });
      return { attempt: r.attempt, url: r.auth_url, expires: r.expires };
    },
    finish: (attempt, code, secret) => api.call<{ cert_pem: string; user: string; roles: string[] }>("POST", "/v1/sso/pickup", { attempt, code, secret }),
  });
  return { user: cert.user, roles: cert.roles, keyPem: await privateKeyToPem(keys.privateKey), certPem: cert.cert_pem };
}

/** How a browser step begins and ends, for throughBrowser. */
export interface BrowserStep<T> {
  /** The error code and the hint a failure or a timeout gives. */
  failed: "sso_failed" | "mfa_required" | "login_failed";
  again: string;
  /** What the browser's last page says, and (SSO) a link to the web UI's own sign-in. */
  done: string;
  webUi?: string;
  /** Starts the attempt at the proxy, with the loopback's address and the secret's hash; the URL the browser opens. */
  start: (redirectUrl: string, secretHash: string) => Promise<{ attempt: string; url: string; expires: string }>;
  /** Takes the result with the code the browser brought and the secret. */
  finish: (attempt: string, code: string, secret: string) => Promise<T>;
}

/**
 * A step done in the browser, for the CLI: a secret kept in this process (its
 * hash goes to the proxy), a loopback listener the browser comes back to with
 * a one-time code, the result taken with code and secret together. SSO
 * logins, browser logins with a passkey, and fresh passkey checks use it.
 */
export async function throughBrowser<T>(o: Pick<SsoLoginOptions, "browser" | "say" | "pasteFrom">, step: BrowserStep<T>): Promise<T> {
  const secret = randomBytes(32).toString("hex");
  let settle: (x: Outcome) => void = () => undefined;
  const returned = new Promise<Outcome>((resolve) => (settle = resolve));
  const server = createServer((req, res) => onCallback(req, res, settle, step.done, step.webUi));
  const listener = await listenTracked(server, 0, "127.0.0.1");
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopReading = () => {};
  try {
    const start = await step.start(`http://127.0.0.1:${listener.port}/callback`, createHash("sha256").update(secret).digest("hex"));
    if (o.browser !== "none") {
      const opened = await openBrowser(start.url);
      if (!opened) o.say("Could not open a browser.");
    }
    o.say(`If browser window does not open automatically, open it by clicking on the link:\n ${start.url}`);
    if (o.browser === "none" && o.pasteFrom) {
      o.say(`A browser on another machine ends at an address starting http://127.0.0.1:${listener.port}/callback that cannot load there: paste that address here.`);
      stopReading = readPasted(o.pasteFrom, settle);
    }
    const expired = new Promise<Outcome>((resolve) => {
      timer = setTimeout(() => resolve({ error: `the browser step timed out; ${step.again}` }), Math.max(Date.parse(start.expires) - systemClock.now(), 1_000));
    });
    const outcome = await Promise.race([returned, expired]);
    if ("error" in outcome) throw new AzgateError(step.failed, outcome.error);
    return await step.finish(start.attempt, outcome.code, secret);
  } finally {
    clearTimeout(timer);
    stopReading();
    await listener.close();
  }
}

/** Lines typed or pasted: the first that is a callback address settles the login like the loopback would. */
function readPasted(input: NodeJS.ReadableStream, settle: (x: Outcome) => void): () => void {
  const lines = createInterface({ input, terminal: false });
  lines.on("line", (line) => {
    let url: URL;
    try {
      url = new URL(line.trim());
    } catch {
      return;
    }
    const code = url.searchParams.get("code");
    const error = url.searchParams.get("error");
    if (url.pathname === "/callback" && (code || error)) settle(error ? { error } : { code: code! });
  });
  return () => {
    lines.close();
    input.pause();
  };
}

/** The browser's last stop: a page for the person, and the code or the error for the waiting login. */
function onCallback(req: IncomingMessage, res: ServerResponse, settle: (x: Outcome) => void, done: string, webUi?: string): void {
  const url = new URL(req.url ?? "/", "http://127.0.0.1");
  if (req.method !== "GET" || url.pathname !== "/callback") {
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    return;
  }
  const code = url.searchParams.get("code");
  const error = url.searchParams.get("error") ?? (code ? null : "the callback carried neither a code nor an error");
  const headers = { "content-type": "text/html; charset=utf-8", "cache-control": "no-store", "referrer-policy": "no-referrer", "content-security-policy": "default-src 'none'" };
  const text = error ? `${done.startsWith("Login") ? "Login failed" : "Failed"}: ${error}` : done;
  // Only the CLI is signed in: the proxy starts no browser session for a CLI's attempt (sso/routes.ts says why).
  const more = error || !webUi ? "" : `<p>To use the browser too: <a id="web-ui" href="${escapeHtml(webUi)}">sign in to the azgate web UI</a>.</p>`;
  res.writeHead(error ? 400 : 200, headers).end(`<!doctype html><meta charset="utf-8"><title>azgate</title><h1>azgate</h1><p id="result">${escapeHtml(text)}</p>${more}\n`);
  settle(error ? { error } : { code: code! });
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
