/**
 * The HTTP methods Azure's REST APIs use. Anything else (TRACE above all,
 * which echoes the request and so the real token swapped into it, or
 * CONNECT) is refused by the client, the proxy and the agent before a token
 * is attached.
 */
export const AZURE_METHODS = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"] as const;

export function isAzureMethod(method: string): boolean {
  return (AZURE_METHODS as readonly string[]).includes(method);
}
