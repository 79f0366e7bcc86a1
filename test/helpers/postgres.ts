/**
 * A throwaway PostgreSQL server from Debian's packages, on loopback: initdb
 * into a temp dir, password (SCRAM) authentication over TCP, stopped and
 * removed at the end. PostgreSQL refuses to run as root, so as root it runs
 * as the `postgres` user the package creates.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { createSelfSignedCa } from "../../src/pki/authority.ts";
import { issueServerCert } from "../../src/pki/certificate.ts";
import { generateKeyPair, privateKeyToPem } from "../../src/pki/keys.ts";

export interface TestPostgres {
  /** postgres://azgate:PASSWORD@127.0.0.1:PORT/DB */
  url: string;
  /** With `tls`: the CA (PEM) that issued the server's certificate. */
  caPem?: string;
  /** A fresh database on this server (so test files do not share state). */
  database(name: string): Promise<string>;
  stop(): Promise<void>;
}

function binDir(): string {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(path.join(root, v, "bin", "postgres"))) : [];
  if (versions.length === 0) throw new Error("PostgreSQL is not installed: apt-get install -y postgresql (.ci/run does)");
  return path.join(root, versions.sort((a, b) => Number(b) - Number(a))[0], "bin");
}

const asRoot = () => process.getuid?.() === 0;
const asServerUser = (cmd: string, args: string[]): [string, string[]] => (asRoot() ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args]);

function postgresIds(): { uid: number; gid: number } {
  return { uid: Number(spawnSync("id", ["-u", "postgres"]).stdout.toString().trim()), gid: Number(spawnSync("id", ["-g", "postgres"]).stdout.toString().trim()) };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** `tls`: the server also speaks TLS, with a certificate for 127.0.0.1 from a CA of the test's own. */
export async function startPostgres(opts: { tls?: boolean } = {}): Promise<TestPostgres> {
  const bin = binDir();
  const dir = mkdtempSync(path.join(tmpdir(), "azgate-pg-"));
  const data = path.join(dir, "data");
  const password = `pw-${crypto.randomUUID()}`;
  writeFileSync(path.join(dir, "pwfile"), password + "\n");
  if (asRoot()) {
    chownSync(dir, postgresIds().uid, postgresIds().gid);
    chownSync(path.join(dir, "pwfile"), postgresIds().uid, postgresIds().gid);
  }
  chmodSync(dir, 0o700);
  const [initCmd, initArgs] = asServerUser(path.join(bin, "initdb"), ["-D", data, "-U", "azgate", `--pwfile=${path.join(dir, "pwfile")}`, "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync"]);
  const init = spawnSync(initCmd, initArgs, { encoding: "utf8" });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);

  const tlsArgs: string[] = [];
  let caPem: string | undefined;
  if (opts.tls) {
    const ca = await createSelfSignedCa("CN=test postgres CA", { now: new Date(), notAfter: new Date(Date.now() + 86_400_000) });
    const keys = await generateKeyPair();
    const cert = await issueServerCert({ ca, publicKey: keys.publicKey, dnsNames: ["localhost"], ips: ["127.0.0.1"], now: new Date(), notAfter: new Date(Date.now() + 86_400_000) });
    writeFileSync(path.join(dir, "server.crt"), cert.toString("pem") + "\n");
    writeFileSync(path.join(dir, "server.key"), await privateKeyToPem(keys.privateKey), { mode: 0o600 });
    if (asRoot()) for (const f of ["server.crt", "server.key"]) chownSync(path.join(dir, f), postgresIds().uid, postgresIds().gid);
    caPem = ca.cert.toString("pem") + "\n";
    tlsArgs.push("-c", "ssl=on", "-c", `ssl_cert_file=${path.join(dir, "server.crt")}`, "-c", `ssl_key_file=${path.join(dir, "server.key")}`);
  }
  const port = await freePort();
  const [cmd, args] = asServerUser(path.join(bin, "postgres"), ["-D", data, "-h", "127.0.0.1", "-p", String(port), "-k", dir, "-c", "fsync=off", "-c", "max_connections=200", ...tlsArgs]);
  const server: ChildProcess = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  server.stderr!.on("data", (d) => (log += d));
  const exited = new Promise<void>((r) => server.once("exit", () => r()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`PostgreSQL did not start:\n${log}`)), 30_000);
    const check = () => {
      if (/ready to accept connections/.test(log)) {
        clearTimeout(timer);
        resolve();
      } else if (server.exitCode !== null) reject(new Error(`PostgreSQL exited:\n${log}`));
      else setTimeout(check, 50);
    };
    check();
  });
  const url = (db: string) => `postgres://azgate:${encodeURIComponent(password)}@127.0.0.1:${port}/${db}`;
  return {
    url: url("postgres"),
    caPem,
    async database(name) {
      const [psqlCmd, psqlArgs] = asServerUser(path.join(bin, "psql"), ["-h", dir, "-p", String(port), "-U", "azgate", "-d", "postgres", "-c", `CREATE DATABASE "${name}"`]);
      const r = spawnSync(psqlCmd, psqlArgs, { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`CREATE DATABASE ${name}: ${r.stderr}`);
      return url(name);
    },
    async stop() {
      // Signal the postmaster itself (runuser does not pass signals on); SIGINT is a fast shutdown.
      const pid = Number(readFileSync(path.join(data, "postmaster.pid"), "utf8").split("\n")[0]);
      if (pid) process.kill(pid, "SIGINT");
      else server.kill("SIGINT");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A statement as the server's superuser, on its `postgres` database rather than `url`'s (which a test may cut or close). */
export async function asSuperuser<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const u = new URL(url);
  u.pathname = "/postgres";
  const db = new pg.Client({ connectionString: u.toString() });
  await db.connect();
  try {
    return (await db.query<T>(sql, params)).rows;
  } finally {
    await db.end();
  }
}
