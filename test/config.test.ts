import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadConfig } from "../src/config/load.ts";

function file(text: string): string {
  const f = path.join(mkdtempSync(path.join(tmpdir(), "azgate-cfg-")), "azgate.yaml");
  writeFileSync(f, text);
  return f;
}

describe("configuration", () => {
  it("layers file, then AZGATE_* environment, then flags", () => {
    const f = file("cluster_name: from-file\nproxy:\n  listen: 0.0.0.0:1000\n  public_addr: file.example.com\n");
    const c = loadConfig({ file: f, env: { AZGATE_LISTEN: "127.0.0.1:2000", AZGATE_CLUSTER_NAME: "from-env" }, flags: [[["cluster_name"], "from-flag"]] });
    expect(c.cluster_name).toBe("from-flag");
    expect(c.proxy.listen).toBe("127.0.0.1:2000");
    expect(c.proxy.public_addr).toBe("file.example.com");
    expect(c.auth.second_factor).toBe("otp");
  });

  it("names the field in a validation error", () => {
    expect(() => loadConfig({ env: { AZGATE_LISTEN: "nonsense" } })).toThrow(/proxy\.listen: must be host:port/);
    expect(() => loadConfig({ file: file("auth:\n  second_factor: sms\n") })).toThrow(/auth\.second_factor: must be "otp", "webauthn", "on", "optional" or "off"/);
    expect(() => loadConfig({ file: file("proxy:\n  listn: 0.0.0.0:3080\n") })).toThrow(/proxy\.listn: unknown field/);
  });

  it("takes file or postgres storage, and says what a postgres one lacks", () => {
    expect(loadConfig({}).storage).toEqual({ type: "file" });
    const pg = loadConfig({ env: { AZGATE_STORAGE_TYPE: "postgres", AZGATE_STORAGE_CONN_STRING: "postgres://azgate@db.example.com:5432/azgate?sslmode=verify-full" } });
    expect(pg.storage).toEqual({ type: "postgres", conn_string: "postgres://azgate@db.example.com:5432/azgate?sslmode=verify-full", auth: "password" });
    expect(loadConfig({ file: file("storage:\n  type: postgres\n  conn_string: postgresql://u@h/db\n  auth: entra\n  ca_file: /etc/ssl/azure.pem\n") }).storage).toMatchObject({ auth: "entra", ca_file: "/etc/ssl/azure.pem" });
    expect(() => loadConfig({ file: file("storage:\n  type: postgres\n") })).toThrow(/storage\.conn_string/);
    expect(() => loadConfig({ file: file("storage:\n  type: postgres\n  conn_string: mysql://x\n") })).toThrow(/storage\.conn_string: must be a postgres:\/\/ connection string/);
    expect(() => loadConfig({ file: file("storage:\n  type: etcd\n") })).toThrow(/storage\.type: type must be "file" or "postgres"|storage: type must be "file" or "postgres"/);
    expect(() => loadConfig({ file: file("storage:\n  type: postgres\n  conn_string: postgres://h/db\n  auth: kerberos\n") })).toThrow(/storage\.auth: must be "password" or "entra"/);
  });

  it("takes an app's cloud, public Azure by default; one cloud per agent", () => {
    const apps = (yaml: string) => loadConfig({ file: file(`agent:\n  apps:\n${yaml}`) }).agent?.apps;
    expect(apps("    - name: azure-cli\n")).toMatchObject([{ name: "azure-cli", cloud: "Azure" }]);
    expect(apps("    - name: gov\n      cloud: AzureUSGovernment\n    - name: gov2\n      cloud: AzureUSGovernment\n")?.map((a) => a.cloud)).toEqual(["AzureUSGovernment", "AzureUSGovernment"]);
    expect(() => apps("    - name: cn\n      cloud: AzureGermanCloud\n")).toThrow(/agent\.apps\[0\]\.cloud: must be one of Azure, AzureUSGovernment, AzureChinaCloud/);
    expect(() => apps("    - name: a\n    - name: b\n      cloud: AzureChinaCloud\n")).toThrow(/agent\.apps: all apps of one agent must name the same cloud/);
  });

  it("notifications go to private, loopback and link-local addresses only when allowed (file or environment)", () => {
    expect(loadConfig({}).notifications).toEqual({ allow_private_addresses: false });
    expect(loadConfig({ file: file("notifications:\n  allow_private_addresses: true\n") }).notifications.allow_private_addresses).toBe(true);
    expect(loadConfig({ env: { AZGATE_NOTIFICATIONS_ALLOW_PRIVATE_ADDRESSES: "true" } }).notifications.allow_private_addresses).toBe(true);
    expect(loadConfig({ env: { AZGATE_NOTIFICATIONS_ALLOW_PRIVATE_ADDRESSES: "false" } }).notifications.allow_private_addresses).toBe(false);
    expect(() => loadConfig({ env: { AZGATE_NOTIFICATIONS_ALLOW_PRIVATE_ADDRESSES: "yes" } })).toThrow(/notifications\.allow_private_addresses: must be true or false/);
  });

  it("reports malformed YAML and a missing file", () => {
    expect(() => loadConfig({ file: file("proxy: [\n") })).toThrow(/malformed YAML/);
    expect(() => loadConfig({ file: "/nonexistent/azgate.yaml" })).toThrow(/cannot read config file/);
  });
});
