import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { AzgateError } from "../errors/index.ts";
import { generateKeyPair, privateKeyToPem } from "../pki/keys.ts";
import { issueServerCert } from "../pki/certificate.ts";
import type { Authority } from "../pki/authority.ts";

/**
 * The proxy's TLS identity: the operator's certificate when configured, else
 * one from the host CA for the public and listen names (clients pin the CA).
 */
export async function proxyTls(opts: { certFile?: string; keyFile?: string; hostCa: Authority; names: string[]; now: Date }): Promise<{ key: string; cert: string; selfIssued: boolean }> {
  if (opts.certFile && opts.keyFile) {
    try {
      return { key: readFileSync(opts.keyFile, "utf8"), cert: readFileSync(opts.certFile, "utf8"), selfIssued: false };
    } catch (e) {
      throw new AzgateError("config_invalid", `proxy.tls: cannot read ${(e as NodeJS.ErrnoException).path}: ${(e as Error).message}`);
    }
  }
  const names = [...new Set([...opts.names, "localhost", "127.0.0.1", "::1"].filter((n) => n && n !== "0.0.0.0" && n !== "::"))];
  const keys = await generateKeyPair();
  const cert = await issueServerCert({
    ca: opts.hostCa,
    publicKey: keys.publicKey,
    dnsNames: names.filter((n) => !isIP(n)),
    ips: names.filter((n) => isIP(n)),
    now: opts.now,
    notAfter: new Date(opts.now.getTime() + 90 * 86_400_000),
  });
  return { key: await privateKeyToPem(keys.privateKey), cert: cert.toString("pem") + "\n" + opts.hostCa.cert.toString("pem") + "\n", selfIssued: true };
}
