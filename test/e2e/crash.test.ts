import { afterAll, describe, expect, it } from "vitest";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { startProxyProcess, tempDir, type ProxyProcess } from "../helpers/azgate.ts";
import { ApiClient } from "../../src/api/client.ts";
import { readLocalAdmin } from "../../src/proxy/local-admin.ts";

/**
 * SIGKILL the proxy while admin writes are in flight: every write it
 * acknowledged must be there after a restart, and every record must parse.
 */
const dataDir = tempDir();
const home = tempDir();
let proxy: ProxyProcess | undefined;

afterAll(async () => {
  await proxy?.stop("SIGKILL");
});

async function adminClient(): Promise<ApiClient> {
  const creds = await readLocalAdmin(dataDir);
  if (!creds) throw new Error("no local admin credentials");
  return new ApiClient({ baseUrl: creds.url, ca_pem: creds.ca_pem }, { keyPem: creds.key_pem, certPem: creds.cert_pem });
}

function roleYaml(name: string, i: number): string {
  return `kind: role\nversion: v7\nmetadata: {name: ${name}}\nspec:\n  allow:\n    app_labels: {env: e${i}}\n    azure_identities: [/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-${i}]\n`;
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => (statSync(path.join(dir, f)).isDirectory() ? walk(path.join(dir, f)) : [path.join(dir, f)]));
}

describe("crash safety", () => {
  it("loses no acknowledged write and leaves no torn record after SIGKILL", async () => {
    proxy = await startProxyProcess({ dataDir, home, args: ["--second-factor", "off"] });
    const client = await adminClient();
    const acked = new Map<string, number>();
    let stop = false;
    const worker = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const name = `crash-${w}-${i}`;
        try {
          await client.call("POST", "/v1/admin/resources", { text: roleYaml(name, i), source: name });
          acked.set(name, i);
          // Overwrites too: the old or the new version is fine, a torn one is not.
          if (i > 0) await client.call("POST", "/v1/admin/resources", { text: roleYaml(`crash-${w}-${i - 1}`, i + 1000), source: name, force: true }).then(() => acked.set(`crash-${w}-${i - 1}`, i + 1000));
        } catch {
          return; // the proxy is gone
        }
      }
    };
    const workers = Array.from({ length: 6 }, (_, w) => worker(w));
    while (acked.size < 60) await new Promise((r) => setTimeout(r, 20));
    await proxy.stop("SIGKILL");
    stop = true;
    await Promise.all(workers);
    expect(acked.size).toBeGreaterThanOrEqual(60);

    // Every record on disk parses, whatever moment the kill hit.
    for (const file of walk(path.join(dataDir, "backend"))) {
      if (path.basename(file).startsWith(".")) continue; // a temp file from the cut-off write, removed on open
      expect(() => JSON.parse(readFileSync(file, "utf8")), file).not.toThrow();
    }

    // The lock of the dead process is taken over; every acknowledged write is there.
    proxy = await startProxyProcess({ dataDir, home, args: ["--second-factor", "off"] });
    const after = await adminClient();
    const { items } = await after.call<{ items: { metadata: { name: string }; spec: { allow: { app_labels: { env: string } } } }[] }>("GET", "/v1/admin/resources/role");
    const stored = new Map(items.filter((r) => r.metadata.name.startsWith("crash-")).map((r) => [r.metadata.name, r.spec.allow.app_labels.env]));
    for (const [name, version] of acked) {
      expect(stored.has(name), `${name} was acknowledged but is missing`).toBe(true);
      // A later overwrite may have landed without its acknowledgement reaching us; never an older one.
      expect(Number(stored.get(name)!.slice(1))).toBeGreaterThanOrEqual(version);
    }
    expect(walk(path.join(dataDir, "backend")).filter((f) => path.basename(f).includes(".tmp-"))).toEqual([]);
  });
});
