/**
 * Real receivers for notifications, on loopback: an HTTP endpoint that
 * records what it is posted (and can be told to fail), and an SMTP server
 * (smtp-server, STARTTLS with a CA of the test's and a password) whose
 * mails are parsed by mailparser.
 */
import http from "node:http";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { SMTPServer } from "smtp-server";
import { simpleParser, type ParsedMail } from "mailparser";
import { operatorCa } from "./tls-front.ts";

export interface Posted {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface HttpReceiver {
  url: (path?: string) => string;
  posts: Posted[];
  /** The statuses to answer next, in order (then 200). */
  failNext(...statuses: number[]): void;
  waitFor(count: number, timeoutMs?: number): Promise<Posted[]>;
  close(): Promise<void>;
}

export async function startHttpReceiver(): Promise<HttpReceiver> {
  const posts: Posted[] = [];
  const queued: number[] = [];
  const waiters: (() => void)[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const status = queued.shift() ?? 200;
      if (status === 200) {
        posts.push({ path: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
        for (const w of waiters.splice(0)) w();
      }
      res.writeHead(status, { "content-type": "text/plain" }).end(status === 200 ? "ok" : "receiver is down");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (p = "/hook") => `http://127.0.0.1:${port}${p}`,
    posts,
    failNext: (...s) => void queued.push(...s),
    waitFor: async (count, timeoutMs = 15_000) => {
      const deadline = Date.now() + timeoutMs;
      while (posts.length < count) {
        if (Date.now() > deadline) throw new Error(`receiver got ${posts.length} posts, waited for ${count}`);
        await new Promise<void>((r) => (waiters.push(r), setTimeout(r, 200)));
      }
      return posts;
    },
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

export interface SmtpReceiver {
  port: number;
  caFile: string;
  user: string;
  password: string;
  mails: (ParsedMail & { envelopeTo: string[]; secure: boolean })[];
  waitFor(count: number, timeoutMs?: number): Promise<SmtpReceiver["mails"]>;
  close(): Promise<void>;
}

export async function startSmtpReceiver(dir: string): Promise<SmtpReceiver> {
  const ca = operatorCa(dir, "Mail Test CA");
  const leaf = ca.issue("smtp", ["localhost", "127.0.0.1"]);
  const mails: SmtpReceiver["mails"] = [];
  const user = "azgate";
  const password = "mail-password-1";
  const server = new SMTPServer({
    key: readFileSync(leaf.keyFile),
    cert: readFileSync(leaf.certFile),
    authMethods: ["PLAIN", "LOGIN"],
    // No AUTH before STARTTLS (smtp-server's default), and no mail without AUTH.
    onAuth: (auth, _session, cb) => (auth.username === user && auth.password === password ? cb(null, { user }) : cb(new Error("Invalid username or password"))),
    onData: (stream, session, cb) => {
      simpleParser(stream).then(
        (m) => {
          mails.push(Object.assign(m, { envelopeTo: session.envelope.rcptTo.map((r) => r.address), secure: session.secure }));
          cb();
        },
        (e) => cb(e as Error),
      );
    },
    logger: false,
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    port: (server.server.address() as AddressInfo).port,
    caFile: ca.caFile,
    user,
    password,
    mails,
    waitFor: async (count, timeoutMs = 15_000) => {
      const deadline = Date.now() + timeoutMs;
      while (mails.length < count) {
        if (Date.now() > deadline) throw new Error(`SMTP server got ${mails.length} mails, waited for ${count}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      return mails;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** The Standard Webhooks secret form: whsec_ and base64. */
export const newWebhookSecret = () => `whsec_${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")}`;

