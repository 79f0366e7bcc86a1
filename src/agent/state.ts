/**
 * The agent's identity on disk, under <data dir>/agent (0700): identity.json,
 * host.key and host.crt (0600). Written once at join, the certificate again at
 * each renewal.
 */
import path from "node:path";
import { ensureDir, readTextOrNull, writeFileAtomic } from "../runtime/index.ts";

export interface AgentIdentity {
  cluster_name: string;
  host_id: string;
  /** The proxy address it joined through. */
  proxy_addr: string;
  /** The cluster's host CA: the proxy's TLS certificate must chain to it. */
  host_ca_pem: string;
  /** Every host CA it trusts (two while the host CA rotates; docs/rotation.md); absent in state written before rotations. */
  host_ca_pems?: string[];
  joined: string;
}

/** The host CAs an agent's identity trusts. */
export function trustedHostCas(identity: AgentIdentity): string[] {
  return identity.host_ca_pems?.length ? identity.host_ca_pems : [identity.host_ca_pem];
}

/** The identity trusting `pems` from now on (the first, for an agent one version older, is the one it keeps). */
export function withHostCas(identity: AgentIdentity, pems: string[]): AgentIdentity {
  return { ...identity, host_ca_pem: pems[0], host_ca_pems: pems };
}

export interface AgentState {
  identity: AgentIdentity;
  keyPem: string;
  certPem: string;
}

const dirOf = (dataDir: string) => path.join(dataDir, "agent");
const files = (dataDir: string) => ({
  identity: path.join(dirOf(dataDir), "identity.json"),
  key: path.join(dirOf(dataDir), "host.key"),
  cert: path.join(dirOf(dataDir), "host.crt"),
});

export async function loadAgentState(dataDir: string): Promise<AgentState | null> {
  const f = files(dataDir);
  const [identity, keyPem, certPem] = await Promise.all([readTextOrNull(f.identity), readTextOrNull(f.key), readTextOrNull(f.cert)]);
  if (!identity || !keyPem || !certPem) return null;
  return { identity: JSON.parse(identity) as AgentIdentity, keyPem, certPem };
}

export async function saveAgentState(dataDir: string, state: AgentState): Promise<void> {
  await ensureDir(dirOf(dataDir), 0o700);
  const f = files(dataDir);
  await writeFileAtomic(f.key, state.keyPem, 0o600);
  await writeFileAtomic(f.cert, state.certPem, 0o600);
  await writeFileAtomic(f.identity, JSON.stringify(state.identity, null, 2) + "\n", 0o600);
}

export async function saveHostCert(dataDir: string, certPem: string): Promise<void> {
  await writeFileAtomic(files(dataDir).cert, certPem, 0o600);
}

export function agentStateDir(dataDir: string): string {
  return dirOf(dataDir);
}
