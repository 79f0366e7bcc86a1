/**
 * A real syslog receiver: Debian's rsyslogd, listening for RFC 5425 (syslog
 * over TLS, octet-counting) with a certificate from a CA of the test's, and
 * writing each message it parsed as `PRI|TIME|HOST|APP|PROCID|MSGID|MSG`
 * (its own RFC 5424 parser's fields) to a file the test reads.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { operatorCa } from "./tls-front.ts";

export interface Rsyslog {
  port: number;
  caFile: string;
  /** The messages written so far, as rsyslog parsed them. */
  messages(): { pri: number; time: string; host: string; app: string; procid: string; msgid: string; msg: string }[];
  stop(): Promise<void>;
  /** Starts it again on the same port (after stop). */
  restart(): Promise<void>;
}

export async function startRsyslog(dir: string, port: number): Promise<Rsyslog> {
  const ca = operatorCa(path.join(dir, "ca"), "Syslog Test CA");
  const leaf = ca.issue("syslog", ["localhost", "127.0.0.1"]);
  const out = path.join(dir, "messages.log");
  const conf = path.join(dir, "rsyslog.conf");
  writeFileSync(
    conf,
    `global(workDirectory="${dir}" DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="${ca.caFile}" DefaultNetstreamDriverCertFile="${leaf.certFile}" DefaultNetstreamDriverKeyFile="${leaf.keyFile}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.Authmode="anon")
input(type="imtcp" port="${port}" address="127.0.0.1")
template(name="fields" type="string" string="%pri%|%timereported:::date-rfc3339%|%hostname%|%app-name%|%procid%|%msgid%|%msg%\\n")
action(type="omfile" file="${out}" template="fields" flushOnTXEnd="on")
`,
  );
  let child: ChildProcess | null = null;
  const start = async () => {
    child = spawn("rsyslogd", ["-n", "-f", conf, "-i", path.join(dir, "rsyslogd.pid")], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d));
    for (const deadline = Date.now() + 15_000; ; ) {
      if (child.exitCode !== null) throw new Error(`rsyslogd exited (${child.exitCode}): ${stderr}`);
      if (await listening(port)) return;
      if (Date.now() > deadline) throw new Error(`rsyslogd did not listen on ${port}: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const stop = async () => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill("SIGTERM");
    await exited;
  };
  await start();
  return {
    port,
    caFile: ca.caFile,
    messages: () =>
      existsSync(out)
        ? readFileSync(out, "utf8")
            .split("\n")
            .filter(Boolean)
            .map((line) => {
              const [pri, time, host, app, procid, msgid, ...msg] = line.split("|");
              return { pri: Number(pri), time, host, app, procid, msgid, msg: msg.join("|") };
            })
        : [],
    stop,
    restart: start,
  };
}

function listening(port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => (s.destroy(), r(true)));
    s.once("error", () => r(false));
  });
}
