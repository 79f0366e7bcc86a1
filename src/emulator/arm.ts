import { Hono, type Context } from "hono";
import { bearerChecker } from "./bearer.ts";
import type { SigningKey } from "./keys.ts";
import type { World } from "./world.ts";
import { listResources, parseResourceFilter, RESOURCE_KINDS } from "./arm-kinds.ts";
import { isAllowed, visibleSubscriptions } from "./arm-rbac.ts";
import { PUBLIC_CLOUD, type EmulatedCloud } from "./clouds.ts";
import { mapRequest, UnsafePath } from "../azure/operation.ts";

type Env = { Variables: { oid: string } };
import type { ActivityLog } from "./activity-log.ts";

/**
 * ARM on management.azure.com (or another cloud's ARM host): bearer tokens checked like ARM (signature,
 * expiry, audience), case-insensitive paths, Azure RBAC from the world's role
 * assignments, errors in ARM's shape, nextLink paging. Resource groups can be
 * created and deleted; the rest is read-only.
 */
export function armApp(opts: { world: World; key: SigningKey; pageSize?: number; cloud?: EmulatedCloud; activity?: ActivityLog }) {
  const { world } = opts;
  const emulated = opts.cloud ?? PUBLIC_CLOUD;
  const AUDIENCES = emulated.armAudiences;
  const cloudName = emulated.cloud.name;
  const pageSize = opts.pageSize ?? 100;
  const checkBearer = bearerChecker(opts.key, AUDIENCES);
  const app = new Hono<Env>();
  const armError = (c: Context, status: number, code: string, message: string) => c.json({ error: { code, message } }, status as 400);

  app.use("*", async (c, next) => {
    const r = await checkBearer(c.req.header("authorization"));
    if (r.ok) {
      c.set("oid", String(r.claims.oid));
      // ARM's correlation ID: the client's when it sends one, else a new one; the Activity Log records it.
      const correlationId = c.req.header("x-ms-correlation-request-id") ?? crypto.randomUUID();
      await next();
      c.res.headers.set("x-ms-correlation-request-id", correlationId);
      opts.activity?.record({ method: c.req.method, url: new URL(c.req.url), status: c.res.status, caller: String(r.claims.oid), correlationId, clientRequestId: c.req.header("x-ms-client-request-id") ?? null, cloud: cloudName });
      return;
    }
    if (r.reason === "missing") return armError(c, 401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.");
    if (r.reason === "expired") return armError(c, 401, "ExpiredAuthenticationToken", "The access token expiry UTC time is earlier than current UTC time.");
    if (r.reason === "audience") {
      return armError(c, 401, "InvalidAuthenticationTokenAudience", `The access token has been obtained for wrong audience or resource '${r.audience}'. It should exactly match with one of the allowed audiences ${AUDIENCES.map((a) => `'${a}'`).join(",")}.`);
    }
    return armError(c, 401, "InvalidAuthenticationToken", "The access token is invalid.");
  });

  // ARM paths are case-insensitive: route on the lowercased path, answer with the world's spelling.
  app.all("*", (c) => {
    const url = new URL(c.req.url);
    const parts = url.pathname.replace(/\/+$/, "").split("/").slice(1);
    const lower = parts.map((p) => p.toLowerCase());
    const oid = c.get("oid");
    const deny = (action: string, scope: string) =>
      armError(c, 403, "AuthorizationFailed", `The client '${oid}' with object id '${oid}' does not have authorization to perform action '${action}' over scope '${scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.`);
    const list = (items: unknown[]) => {
      const skip = Number(url.searchParams.get("$skiptoken") ?? 0) || 0;
      const page = items.slice(skip, skip + pageSize);
      const next = new URL(url);
      next.searchParams.set("$skiptoken", String(skip + pageSize));
      return c.json({ value: page, ...(skip + pageSize < items.length ? { nextLink: next.toString() } : {}) });
    };
    const method = c.req.method;
    // The action ARM checks, named by the same code as azgate's policy uses (an independent consumer of it).
    let op;
    try {
      op = mapRequest({ method, host: url.hostname, path: url.pathname, query: url.searchParams }, cloudName);
    } catch (e) {
      if (e instanceof UnsafePath) return armError(c, 400, "InvalidRequestUri", e.message);
      throw e;
    }

    if (lower[0] === "tenants" && parts.length === 1) return list([{ id: `/tenants/${world.tenant_id}`, tenantId: world.tenant_id, tenantCategory: "Home" }]);
    if (lower[0] !== "subscriptions") return armError(c, 404, "InvalidResourceType", `The resource type '${parts[0] ?? ""}' could not be found in the namespace 'Microsoft.Resources'.`);
    if (parts.length === 1) {
      const visible = visibleSubscriptions(world, oid);
      return list(world.subscriptions.filter((s) => visible.includes(s.id)).map(subscriptionJson));
    }
    const sub = world.subscriptions.find((s) => s.id.toLowerCase() === lower[1]);
    if (!sub) return armError(c, 404, "SubscriptionNotFound", `The subscription '${parts[1]}' could not be found.`);
    const subScope = `/subscriptions/${sub.id}`;
    if (parts.length === 2) {
      return isAllowed(world, oid, "Microsoft.Resources/subscriptions/read", subScope) ? c.json(subscriptionJson(sub)) : deny("Microsoft.Resources/subscriptions/read", subScope);
    }
    // The Activity Log (activity-log.ts), where az monitor activity-log list reads it.
    if (lower.slice(2).join("/") === "providers/microsoft.insights/eventtypes/management/values" && method === "GET" && opts.activity) {
      const action = "Microsoft.Insights/eventtypes/values/read";
      if (!isAllowed(world, oid, action, subScope)) return deny(action, subScope);
      const found = opts.activity.list(sub.id, url.searchParams.get("$filter"));
      return "error" in found ? armError(c, 400, "InvalidFilter", found.error) : list(found);
    }
    // /subscriptions/{sub}/providers/{ns}/{type}
    if (lower[2] === "providers" && parts.length === 5) return listProviderResources(`${lower[3]}/${lower[4]}`, subScope, null);
    // /subscriptions/{sub}/resources: az resource list, az keyvault list
    if (lower[2] === "resources" && parts.length === 3) return listAll(null);
    if (lower[2] !== "resourcegroups") return armError(c, 404, "InvalidResourceType", `The resource type '${parts[2]}' could not be found.`);
    if (parts.length === 3) {
      const groups = world.resource_groups.filter((g) => g.subscription === sub.id && isAllowed(world, oid, "Microsoft.Resources/subscriptions/resourceGroups/read", groupId(g)));
      return list(groups.map(groupJson));
    }
    const groupName = parts[3];
    const group = world.resource_groups.find((g) => g.subscription === sub.id && g.name.toLowerCase() === groupName.toLowerCase());
    const rgScope = group ? groupId(group) : `${subScope}/resourceGroups/${groupName}`;
    if (parts.length === 4) {
      if (!op.action || method === "PATCH") return armError(c, 405, "MethodNotAllowed", `The method ${method} is not allowed.`);
      if (!isAllowed(world, oid, op.action, rgScope)) return deny(op.action, rgScope);
      const action = op.action.split("/").pop();
      if (action === "read") return group ? c.json(groupJson(group)) : armError(c, 404, "ResourceGroupNotFound", `Resource group '${groupName}' could not be found.`);
      if (action === "write") return upsertGroup(c, sub.id, groupName, group);
      if (!group) return armError(c, 404, "ResourceGroupNotFound", `Resource group '${groupName}' could not be found.`);
      world.resource_groups.splice(world.resource_groups.indexOf(group), 1);
      return c.body(null, 202);
    }
    if (!group) return armError(c, 404, "ResourceGroupNotFound", `Resource group '${groupName}' could not be found.`);
    if (lower[4] === "resources" && parts.length === 5) return listAll(group.name);
    if (lower[4] === "providers" && `${lower[5]}/${lower[6]}` === "microsoft.authorization/roleassignments" && parts.length === 8 && method === "PUT") return putRoleAssignment(groupId(group), parts[7]);
    if (lower[4] === "providers" && parts.length === 7) return listProviderResources(`${lower[5]}/${lower[6]}`, subScope, group.name);
    if (lower[4] === "providers" && parts.length === 8) return getProviderResource(`${lower[5]}/${lower[6]}`, group, parts[7]);
    return armError(c, 404, "InvalidResourceType", `The resource type could not be found.`);

    /** Every resource the caller may read, as ARM lists them: each checked by its own kind's read action, as ARM filters. */
    function listAll(rg: string | null) {
      if (method !== "GET") return armError(c, 405, "MethodNotAllowed", `The method ${method} is not allowed.`);
      const clauses = parseResourceFilter(url.searchParams.get("$filter"));
      if (!clauses) return armError(c, 400, "InvalidFilterInQueryString", `The emulator reads only resourceType, name and resourceGroup eq '...' (joined by and) in $filter, not '${url.searchParams.get("$filter")}'.`);
      return list(listResources(world, emulated, { subscription: sub!.id, resourceGroup: rg }, clauses, (action, id) => isAllowed(world, oid, action, id)));
    }

    function listProviderResources(type: string, scope: string, rg: string | null) {
      if (type === "microsoft.authorization/roleassignments") {
        const action = "Microsoft.Authorization/roleAssignments/read";
        if (!isAllowed(world, oid, action, scope)) return deny(action, scope);
        return list(world.role_assignments.filter((a) => a.scope.toLowerCase().startsWith(scope.toLowerCase())).map(roleAssignmentJson));
      }
      const kind = RESOURCE_KINDS[type];
      if (!kind) return armError(c, 404, "InvalidResourceType", `The resource type '${type}' could not be found.`);
      const items = kind.items(world).filter((r) => r.subscription === sub!.id && (rg === null || r.resource_group.toLowerCase() === rg.toLowerCase()));
      return list(items.filter((r) => isAllowed(world, oid, kind.action, kind.id(r))).map((r) => kind.json(r, world, emulated)));
    }

    /** A role assignment at a resource group (what az role assignment create sends); ARM checks roleAssignments/write there. */
    async function putRoleAssignment(scope: string, name: string) {
      if (!isAllowed(world, oid, op!.action!, op!.scope)) return deny(op!.action!, scope);
      let body: { properties?: { roleDefinitionId?: string; principalId?: string } };
      try {
        body = JSON.parse((await c.req.text()) || "{}");
      } catch {
        return armError(c, 400, "InvalidRequestContent", "The request content was invalid and could not be deserialized.");
      }
      const roleName = BUILT_IN_ROLE_IDS[String(body.properties?.roleDefinitionId ?? "").split("/").pop()?.toLowerCase() ?? ""];
      if (!roleName || !body.properties?.principalId) return armError(c, 400, "InvalidRoleAssignmentRequest", "properties.roleDefinitionId must name a built-in role definition, and properties.principalId a principal.");
      world.role_assignments.push({ principal_id: body.properties.principalId, role: roleName, scope });
      const i = world.role_assignments.length - 1;
      return c.json({ ...roleAssignmentJson(world.role_assignments[i], i), id: `${scope}/providers/Microsoft.Authorization/roleAssignments/${name}`, name }, 201);
    }

    function getProviderResource(type: string, rg: World["resource_groups"][number], name: string) {
      const kind = RESOURCE_KINDS[type];
      if (!kind) return armError(c, 404, "InvalidResourceType", `The resource type '${type}' could not be found.`);
      const id = `${groupId(rg)}/providers/${kind.type}/${name}`;
      if (!isAllowed(world, oid, kind.action, id)) return deny(kind.action, id);
      const item = kind.items(world).find((r) => r.subscription === rg.subscription && r.resource_group.toLowerCase() === rg.name.toLowerCase() && r.name.toLowerCase() === name.toLowerCase());
      return item ? c.json(kind.json(item, world, emulated)) : armError(c, 404, "ResourceNotFound", `The Resource '${kind.type}/${name}' under resource group '${rg.name}' was not found.`);
    }
  });

  async function upsertGroup(c: Context, subscription: string, name: string, existing: World["resource_groups"][number] | undefined) {
    let body: { location?: string } = {};
    try {
      body = JSON.parse((await c.req.text()) || "{}");
    } catch {
      return c.json({ error: { code: "InvalidRequestContent", message: "The request content was invalid and could not be deserialized." } }, 400);
    }
    if (existing) return c.json(groupJson(existing), 200);
    if (!body.location) return c.json({ error: { code: "LocationRequired", message: "The location property is required for this definition." } }, 400);
    const group = { subscription, name, location: body.location };
    world.resource_groups.push(group);
    return c.json(groupJson(group), 201);
  }

  return app;

  function subscriptionJson(s: World["subscriptions"][number]) {
    return { id: `/subscriptions/${s.id}`, authorizationSource: "RoleBased", managedByTenants: [], tags: {}, subscriptionId: s.id, tenantId: world.tenant_id, displayName: s.display_name, state: "Enabled", subscriptionPolicies: { locationPlacementId: "Public_2014-09-01", quotaId: "PayAsYouGo_2014-09-01", spendingLimit: "Off" } };
  }
  function roleAssignmentJson(a: World["role_assignments"][number], i: number) {
    return { id: `${a.scope}/providers/Microsoft.Authorization/roleAssignments/${i}`, type: "Microsoft.Authorization/roleAssignments", name: String(i), properties: { roleDefinitionName: a.role, principalId: a.principal_id, principalType: "ServicePrincipal", scope: a.scope } };
  }
}

/** Built-in role definitions by their fixed IDs (the same in every tenant). */
const BUILT_IN_ROLE_IDS: Record<string, string> = {
  "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
  "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
  "acdd72a7-3385-48ef-bd42-f606fba81ae7": "Reader",
};

const groupId = (g: World["resource_groups"][number]) => `/subscriptions/${g.subscription}/resourceGroups/${g.name}`;
const groupJson = (g: World["resource_groups"][number]) => ({ id: groupId(g), name: g.name, type: "Microsoft.Resources/resourceGroups", location: g.location, properties: { provisioningState: "Succeeded" } });
