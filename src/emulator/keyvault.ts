import { Hono, type Context } from "hono";
import type { SigningKey } from "./keys.ts";
import type { World } from "./world.ts";
import { bearerChecker } from "./bearer.ts";
import { isDataAllowed } from "./arm-rbac.ts";
import { PUBLIC_CLOUD, type EmulatedCloud } from "./clouds.ts";

const VERSION = "0000000000000000000000000000000a";

/**
 * Key Vault secrets on <name>.vault.azure.net: the 401 challenge its SDKs
 * start with, audience https://vault.azure.net, data-plane RBAC, get and list.
 */
export function keyVaultApp(opts: { world: World; key: SigningKey; cloud?: EmulatedCloud }) {
  const { world } = opts;
  const cloud = opts.cloud ?? PUBLIC_CLOUD;
  const suffix = cloud.vaultSuffix;
  const check = bearerChecker(opts.key, [cloud.vaultResource, `${cloud.vaultResource}/`]);
  const app = new Hono();
  const kvError = (c: Context, status: number, code: string, message: string, inner?: string) =>
    c.json({ error: { code, message, ...(inner ? { innererror: { code: inner } } : {}) } }, status as 400);

  app.all("*", async (c) => {
    const url = new URL(c.req.url);
    const vaultName = url.hostname.slice(0, -suffix.length);
    const vault = world.key_vaults.find((v) => v.name.toLowerCase() === vaultName);
    if (!vault) return kvError(c, 404, "VaultNotFound", `The vault '${vaultName}' does not exist.`);
    const auth = await check(c.req.header("authorization"));
    if (!auth.ok) {
      c.header("WWW-Authenticate", `Bearer authorization="https://${cloud.loginHost}/${world.tenant_id}", resource="${cloud.vaultResource}"`);
      return kvError(c, 401, "Unauthorized", auth.reason === "missing" ? "AKV10000: Request is missing a Bearer or PoP token." : `AKV10022: Invalid audience or token (${auth.reason}).`);
    }
    const oid = String(auth.claims.oid);
    const vaultId = `/subscriptions/${vault.subscription}/resourceGroups/${vault.resource_group}/providers/Microsoft.KeyVault/vaults/${vault.name}`;
    const parts = url.pathname.replace(/\/+$/, "").split("/").slice(1);
    if (c.req.method !== "GET" || parts[0]?.toLowerCase() !== "secrets") return kvError(c, 400, "BadParameter", "Only secret get and list are emulated.");
    const forbidden = (action: string) =>
      kvError(c, 403, "Forbidden", `Caller is not authorized to perform action on resource. If role assignments, deny assignments or role definitions were changed recently, please observe propagation time. Caller: appid=${auth.claims.appid};oid=${oid} Action: '${action}' Resource: '${vaultId.toLowerCase()}'`, "ForbiddenByRbac");
    const base = `https://${vault.name}${suffix}/secrets`;
    if (parts.length === 1) {
      const action = "Microsoft.KeyVault/vaults/secrets/readMetadata/action";
      if (!isDataAllowed(world, oid, action, vaultId)) return forbidden(action);
      return c.json({ value: Object.keys(vault.secrets).map((n) => ({ id: `${base}/${n}`, attributes: attributes() })), nextLink: null });
    }
    const name = parts[1];
    const action = "Microsoft.KeyVault/vaults/secrets/getSecret/action";
    if (!isDataAllowed(world, oid, action, `${vaultId}/secrets/${name}`)) return forbidden(action);
    const value = vault.secrets[name];
    if (value === undefined) return kvError(c, 404, "SecretNotFound", `A secret with (name/id) ${name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command.`);
    return c.json({ value, id: `${base}/${name}/${VERSION}`, attributes: attributes() });
  });
  return app;
}

function attributes() {
  return { enabled: true, created: 1767225600, updated: 1767225600, recoveryLevel: "Recoverable+Purgeable", recoverableDays: 90 };
}
