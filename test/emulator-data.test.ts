import { describe, expect, it } from "vitest";
import path from "node:path";
import { clientEnv, useEmulator } from "./helpers/emulator.ts";
import { runJsonClient } from "./helpers/run.ts";

/** Key Vault and Blob (other audiences, large bodies) with the real @azure/keyvault-secrets and @azure/storage-blob. */
const fx = useEmulator({ projectToken: true });

type Call = { ok: boolean; value?: string; status?: number; code?: string; message?: string };
function data(clientId: string, env: Record<string, string> = {}) {
  return runJsonClient<Record<"secret" | "missing" | "upload" | "download", Call> & { sha: string }>(
    path.resolve("test/clients/js-data.mjs"),
    [],
    clientEnv(fx, { AZURE_CLIENT_ID: clientId, AZURE_FEDERATED_TOKEN_FILE: fx.tokenFile, ...env }),
  );
}

describe("emulated Key Vault and Blob storage with the real SDKs", () => {
  it("a Blob Data Contributor uploads and downloads 8 MiB intact; it may not read secrets", async () => {
    const r = await data("00000000-0000-4000-8000-000000000003");
    expect(r.upload.ok, r.upload.message).toBe(true);
    expect(r.download).toEqual({ ok: true, value: r.sha });
    expect(r.secret).toMatchObject({ ok: false, status: 403, code: "Forbidden" });
  });

  it("Key Vault Secrets User reads a secret; Blob Data Reader reads but may not write", async () => {
    const r = await data("00000000-0000-4000-8000-000000000002");
    expect(r.secret).toEqual({ ok: true, value: "emulated-secret-value" });
    expect(r.missing).toMatchObject({ ok: false, status: 404, code: "SecretNotFound" });
    expect(r.upload).toMatchObject({ ok: false, status: 403, code: "AuthorizationPermissionMismatch" });
    const read = await data("00000000-0000-4000-8000-000000000002", { BLOB_SIZE: "16", READ_BLOB: "big/report.bin" });
    expect(read.download.ok, read.download.message).toBe(true);
  });

  it("control-plane Reader alone reaches no data (the agent's custom role)", async () => {
    const r = await data("00000000-0000-0000-0000-000000000001", { BLOB_SIZE: "16" });
    expect(r.secret).toMatchObject({ ok: false, status: 403 });
    expect(r.upload).toMatchObject({ ok: false, status: 403, code: "AuthorizationPermissionMismatch" });
    // The SDK's download starts with a HEAD, whose error has no body to carry a code.
    expect(r.download).toMatchObject({ ok: false, status: 403 });
  });
});
