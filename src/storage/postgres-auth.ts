/**
 * Entra ID authentication to Azure Database for PostgreSQL: the password is
 * an access token for the OSS RDBMS resource, fetched with @azure/identity
 * (Workload ID, managed identity, or whatever DefaultAzureCredential finds)
 * and renewed before it expires. The user name in the connection string is
 * the Entra principal (or managed identity) name.
 */
import { DefaultAzureCredential, type TokenCredential } from "@azure/identity";
import type { Clock } from "../util/clock.ts";

const SCOPE = "https://ossrdbms-aad.database.windows.net/.default";
const RENEW_BEFORE_MS = 5 * 60_000;

export function entraPassword(clock: Clock, credential: TokenCredential = new DefaultAzureCredential()): () => Promise<string> {
  let cached: { token: string; expiresOn: number } | null = null;
  return async () => {
    if (cached && cached.expiresOn - RENEW_BEFORE_MS > clock.now()) return cached.token;
    const t = await credential.getToken(SCOPE);
    if (!t) throw new Error(`no Entra token for ${SCOPE}`);
    cached = { token: t.token, expiresOn: t.expiresOnTimestamp };
    return t.token;
  };
}
