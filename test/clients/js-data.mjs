// Key Vault and Blob data-plane calls with the real SDKs and a Workload ID
// credential, in their own process. Prints one JSON line.
import { createHash, randomBytes } from "node:crypto";
import { WorkloadIdentityCredential } from "@azure/identity";
import { SecretClient } from "@azure/keyvault-secrets";
import { BlobServiceClient } from "@azure/storage-blob";

const credential = new WorkloadIdentityCredential();
const secrets = new SecretClient("https://teleport-demo-kv.vault.azure.net", credential);
const container = new BlobServiceClient("https://teleportdemostore.blob.core.windows.net", credential).getContainerClient("reports");
const attempt = async (fn) => {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    return { ok: false, status: e.statusCode, code: e.code, message: e.message };
  }
};
const sha = (b) => createHash("sha256").update(b).digest("hex");
const size = Number(process.env.BLOB_SIZE ?? 8 * 1024 * 1024);
const data = randomBytes(size);

console.log(
  JSON.stringify({
    secret: await attempt(async () => (await secrets.getSecret("db-password")).value),
    missing: await attempt(async () => (await secrets.getSecret("nope")).value),
    upload: await attempt(async () => (await container.getBlockBlobClient("big/report.bin").uploadData(data, { blockSize: size + 1, maxSingleShotSize: size + 1 })).etag),
    download: await attempt(async () => sha(await container.getBlobClient(process.env.READ_BLOB ?? "big/report.bin").downloadToBuffer())),
    sha: sha(data),
  }),
);
