/**
 * The proxy's API and web UI from an in-process state (a memory cluster's,
 * with its fake clock), served over HTTPS on loopback so a real browser can
 * sign in (the session cookie is `__Host-`, Secure). The certificate comes
 * from the cluster's host CA; the test's browser ignores HTTPS errors.
 */
import { createApi } from "../../src/proxy/api.ts";
import { proxyTls } from "../../src/proxy/tls.ts";
import type { ProxyContext } from "../../src/proxy/context.ts";
import type { AppRegistry } from "../../src/proxy/registry.ts";
import { serve } from "../../src/runtime/index.ts";

export async function serveWebUi(ctx: ProxyContext, registry: AppRegistry): Promise<{ base: string; close(): Promise<void> }> {
  const tls = await proxyTls({ hostCa: ctx.cluster.host, names: ["127.0.0.1"], now: ctx.clock.date() });
  const urls = { public: "" };
  const api = createApi(ctx, { publicUrl: () => urls.public, registry });
  const server = await serve({ fetch: api.fetch, hostname: "127.0.0.1", port: 0, tls });
  urls.public = `https://127.0.0.1:${server.port}`;
  return { base: urls.public, close: () => server.close() };
}
