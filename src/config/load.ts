import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { AzgateError } from "../errors/index.ts";
import { formatIssues } from "../resources/issues.ts";
import { configSchema, type Config } from "./schema.ts";

/** Environment variables and the config field each one sets. */
export const ENV_FIELDS: Record<string, string[]> = {
  AZGATE_CLUSTER_NAME: ["cluster_name"],
  AZGATE_DATA_DIR: ["data_dir"],
  AZGATE_LISTEN: ["proxy", "listen"],
  AZGATE_PUBLIC_ADDR: ["proxy", "public_addr"],
  AZGATE_ADVERTISE_ADDR: ["proxy", "advertise_addr"],
  AZGATE_PROXY_DIAG_ADDR: ["proxy", "diag_addr"],
  AZGATE_TLS_CERT_FILE: ["proxy", "tls", "cert_file"],
  AZGATE_TLS_KEY_FILE: ["proxy", "tls", "key_file"],
  AZGATE_SECOND_FACTOR: ["auth", "second_factor"],
  AZGATE_HOST_CERT_TTL: ["auth", "host_cert_ttl"],
  AZGATE_SSO_LOGIN_TIMEOUT: ["auth", "sso_login_timeout"],
  AZGATE_BOTS_CERT_TTL: ["bots", "cert_ttl"],
  AZGATE_BOTS_AUDIENCE: ["bots", "audience"],
  AZGATE_BOTS_ISSUER_CA_FILE: ["bots", "issuer_ca_file"],
  AZGATE_BOTS_ISSUER_CONNECT_TO: ["bots", "issuer_connect_to", "address"],
  AZGATE_BOTS_ISSUER_CONNECT_TO_CA_FILE: ["bots", "issuer_connect_to", "ca_file"],
  AZGATE_NOTIFICATIONS_ALLOW_PRIVATE_ADDRESSES: ["notifications", "allow_private_addresses"],
  AZGATE_AUDIT_RETENTION: ["audit", "retention"],
  AZGATE_TRACING_ENDPOINT: ["tracing", "endpoint"],
  AZGATE_STORAGE_TYPE: ["storage", "type"],
  AZGATE_STORAGE_CONN_STRING: ["storage", "conn_string"],
  AZGATE_PROXY_ADDR: ["agent", "proxy_addr"],
  AZGATE_AUTH_TOKEN: ["agent", "auth_token"],
  AZGATE_CA_PIN: ["agent", "ca_pin"],
  AZGATE_PROXY_CA_FILE: ["agent", "proxy_ca_file"],
  AZGATE_AZURE_CONNECT_TO: ["agent", "connect_to", "address"],
  AZGATE_DIAG_ADDR: ["agent", "diag_addr"],
  AZGATE_LOG_LEVEL: ["agent", "log_level"],
  AZGATE_AZURE_CA_FILE: ["agent", "connect_to", "ca_file"],
};

type Tree = Record<string, unknown>;

function setPath(tree: Tree, keys: string[], value: unknown): void {
  let node = tree;
  for (const k of keys.slice(0, -1)) node = (node[k] ??= {}) as Tree;
  node[keys[keys.length - 1]] = value;
}

function merge(base: Tree, over: Tree): Tree {
  const out: Tree = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = v && typeof v === "object" && !Array.isArray(v) && out[k] && typeof out[k] === "object" ? merge(out[k] as Tree, v as Tree) : v;
  }
  return out;
}

/**
 * Config precedence: YAML file, then AZGATE_* environment, then flags. The
 * result is validated as a whole; a problem names the field and the sources.
 */
export function loadConfig(opts: { file?: string; env?: Record<string, string | undefined>; flags?: [string[], unknown][] }): Config {
  let fromFile: Tree = {};
  if (opts.file) {
    let text: string;
    try {
      text = readFileSync(opts.file, "utf8");
    } catch (e) {
      throw new AzgateError("config_invalid", `cannot read config file ${opts.file}: ${(e as Error).message}`);
    }
    try {
      fromFile = (parseYaml(text) as Tree) ?? {};
    } catch (e) {
      throw new AzgateError("config_invalid", `${opts.file}: malformed YAML: ${(e as Error).message.split("\n")[0]}`);
    }
    if (typeof fromFile !== "object" || Array.isArray(fromFile)) throw new AzgateError("config_invalid", `${opts.file}: expected a mapping at the top level`);
  }
  const fromEnv: Tree = {};
  for (const [name, keys] of Object.entries(ENV_FIELDS)) {
    const v = opts.env?.[name];
    if (v !== undefined && v !== "") setPath(fromEnv, keys, v);
  }
  const fromFlags: Tree = {};
  for (const [keys, v] of opts.flags ?? []) if (v !== undefined) setPath(fromFlags, keys, v);

  const result = configSchema.safeParse(merge(merge(fromFile, fromEnv), fromFlags));
  if (!result.success) {
    const sources = [opts.file, "AZGATE_* environment", "flags"].filter(Boolean).join(", ");
    throw new AzgateError("config_invalid", `invalid configuration (from ${sources}):\n  ${formatIssues(result.error.issues).join("\n  ")}`);
  }
  return result.data;
}

export function defaultDataDir(): string {
  return process.getuid?.() === 0 ? "/var/lib/azgate" : path.join(os.homedir(), ".local", "share", "azgate");
}
