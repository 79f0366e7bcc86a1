/**
 * The only module that knows which runtime it is on. Both Node (>= 20.19) and
 * Deno 2 implement the `node:` APIs used here, so most of this is shared; any
 * difference between them belongs in this folder and nowhere else.
 *
 * The servers import from here. The client's everyday paths (api/client.ts,
 * client/*) import the one file of this folder they need instead, so that
 * `azgate status` does not load the HTTP server and its framework.
 */
export { serve, type ServeOptions, type RunningServer, type UpgradeRequest, type UpgradeAnswer } from "./serve.ts";
export { request, type RequestOptions, type HttpResponse } from "./http.ts";
export { writeFileAtomic, readTextOrNull, ensureDir, fsyncDir, removeFile, appendDurably, openForDurableAppend } from "./fs.ts";
export { waitForWritable } from "./backpressure.ts";
export { acquireDirLock, readLockHolder, isProcessAlive, type DirLock, type LockHolder } from "./lock.ts";

export { runtimeName, runtimeVersion, sendsInterimContinue, type RuntimeName } from "./version.ts";
export { httpsRequest, prepareHttpsRequest, closeHttpsClients, type HttpsRequest, type HttpsResponse, type PreparedHttpsRequest } from "./https-client.ts";
export { selfCommand } from "./self.ts";
export { verifyEs256 } from "./es256.ts";
export { exitAfterStop } from "./exit.ts";
export { tlsTrust, pemCertificates, type TlsTrust } from "./tls-trust.ts";
