/**
 * What stands in front of an azgate proxy in a real deployment: a CA of the
 * operator's (openssl, as an operator would make one), certificates from it,
 * and Debian's nginx terminating TLS and re-encrypting to the proxy, with
 * WebSocket upgrades passed through (what ingress-nginx does).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { writeFileSync, readFileSync, mkdirSync } from "node:fs";
import net from "node:net";
import path from "node:path";

export interface OperatorCa {
  caFile: string;
  /** Issues a server certificate for `names` (DNS names or IPs); returns its files. */
  issue(name: string, names: string[]): { certFile: string; keyFile: string };
}

function openssl(args: string[], dir: string): void {
  const res = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
  if (res.status !== 0) throw new Error(`openssl ${args.join(" ")} failed:\n${res.stderr}`);
}

export function operatorCa(dir: string, cn = "Operator Test CA"): OperatorCa {
  mkdirSync(dir, { recursive: true });
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", `/CN=${cn}`, "-days", "2", "-keyout", "ca.key", "-out", "ca.pem"], dir);
  return {
    caFile: path.join(dir, "ca.pem"),
    issue(name, names) {
      const san = names.map((n) => (net.isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(",");
      writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n`);
      openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", `/CN=${names[0]}`, "-keyout", `${name}.key`, "-out", `${name}.csr`], dir);
      openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", `${name}.ext`, "-out", `${name}.pem`], dir);
      // The chain a server sends: its certificate, then the CA (as ingress secrets usually hold it).
      writeFileSync(path.join(dir, `${name}-chain.pem`), readFileSync(path.join(dir, `${name}.pem`), "utf8") + readFileSync(path.join(dir, "ca.pem"), "utf8"));
      return { certFile: path.join(dir, `${name}-chain.pem`), keyFile: path.join(dir, `${name}.key`) };
    },
  };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface NginxFront {
  port: number;
  addr: string;
  /** nginx's access log: one line per request it passed on. */
  accessLog(): string;
  stop(): Promise<void>;
}

/**
 * nginx on loopback, TLS with `cert`, proxying everything to the azgate proxy
 * at `upstreamPort` over TLS it verifies against the cluster's host CA under
 * `upstreamName` (the Service name the proxy's own certificate carries).
 */
export async function startNginxFront(o: { dir: string; cert: { certFile: string; keyFile: string }; upstreamPort: number; upstreamCaFile: string; upstreamName: string }): Promise<NginxFront> {
  mkdirSync(o.dir, { recursive: true });
  const port = await freePort();
  const conf = path.join(o.dir, "nginx.conf");
  writeFileSync(
    conf,
    `${process.getuid?.() === 0 ? "user root;\n" : ""}worker_processes 1;
pid ${o.dir}/nginx.pid;
error_log ${o.dir}/error.log info;
events { worker_connections 256; }
http {
  access_log ${o.dir}/access.log;
  client_body_temp_path ${o.dir}/body;
  proxy_temp_path ${o.dir}/proxy;
  fastcgi_temp_path ${o.dir}/fastcgi;
  uwsgi_temp_path ${o.dir}/uwsgi;
  scgi_temp_path ${o.dir}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${o.cert.certFile};
    ssl_certificate_key ${o.cert.keyFile};
    client_max_body_size 0;
    location / {
      proxy_pass https://127.0.0.1:${o.upstreamPort};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate ${o.upstreamCaFile};
      proxy_ssl_name ${o.upstreamName};
      proxy_ssl_server_name on;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
    }
  }
}
`,
  );
  const child: ChildProcess = spawn("/usr/sbin/nginx", ["-p", o.dir, "-c", conf, "-g", "daemon off;"], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  // Ready when the port accepts connections; nginx says nothing on success.
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}):\n${out}\n${readOr(path.join(o.dir, "error.log"))}`);
    if (await accepts(port)) break;
    if (i > 100) throw new Error(`nginx did not listen on ${port}:\n${out}`);
    await new Promise((r) => setTimeout(r, 50)); // polling a port nginx does not announce
  }
  return {
    port,
    addr: `127.0.0.1:${port}`,
    accessLog: () => readOr(path.join(o.dir, "access.log")),
    stop: () =>
      new Promise((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done();
        child.once("exit", () => done());
        child.kill("SIGQUIT");
      }),
  };
}

function readOr(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}
