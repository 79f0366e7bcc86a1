import { AzgateError } from "../errors/index.ts";
import type { Identity } from "../pki/identity.ts";
import type { Role, Traits } from "../rbac/types.ts";
import { checkRule } from "../rbac/engine.ts";
import { isBot, type User } from "../resources/user.ts";
import type { ProxyContext } from "./context.ts";
import { lockInForce } from "./locks.ts";
import { userStamp } from "./users.ts";
import { accessSnapshot, type AccessSnapshot } from "./access-cache.ts";

/** Who is calling, with roles and traits as the backend says now, not as the certificate said. */
export interface Caller {
  identity: Identity;
  name: string;
  user: User | null;
  roles: Role[];
  traits: Traits;
}

/** The data dir owner's identity: every admin verb, nothing else. */
const LOCAL_ADMIN_ROLE: Role = {
  kind: "role",
  version: "v7",
  metadata: { name: "@local-admin" },
  spec: { allow: { rules: [{ resources: ["*"], verbs: ["*"] }] } },
};

export async function resolveCaller(ctx: ProxyContext, identity: Identity): Promise<Caller> {
  if (identity.kind === "local-admin") {
    if (identity.session_id !== ctx.localAdminSession) {
      throw new AzgateError("cert_untrusted", "this local admin identity belongs to an earlier proxy run");
    }
    return { identity, name: identity.name, user: null, roles: [LOCAL_ADMIN_ROLE], traits: {} };
  }
  if (identity.kind !== "user") throw new AzgateError("access_denied", "this call is for users");
  // Users, roles and locks as the backend has them now (cached until anything is written; access-cache.ts). A tunnel's
  // identity is one object for all its requests: its caller is resolved once per snapshot, and again after any write.
  // Only an answer is kept, never a refusal: a lock that expires lifts on the next request.
  const now = await accessSnapshot(ctx.backend, ctx.clock);
  return now.derived(identity, "caller", () => readCaller(now, identity));
}

/** The caller as the snapshot has it: the same account record, its roles as defined now, and no lock in force. */
async function readCaller(now: AccessSnapshot, identity: Identity): Promise<Caller> {
  const user = await now.user(identity.name);
  if (!user) throw new AzgateError("unauthenticated", `user "${identity.name}" no longer exists`);
  // The same record, not a later user of the same name, and no reset since the certificate was issued.
  const stamp = userStamp(user);
  if ((identity.user_id ?? "") !== stamp.id || (identity.generation ?? 0) !== stamp.generation) {
    throw new AzgateError("unauthenticated", `this certificate was issued to an earlier account "${identity.name}" (deleted or reset since); run azgate login`);
  }
  // A bot's certificates come from a join, a person's from a login: neither stands for the other kind of account.
  if (!!identity.bot !== isBot(user)) throw new AzgateError("unauthenticated", `this certificate is not for the ${isBot(user) ? "bot" : "user"} "${identity.name}"`);
  // The failed-login lockout is not checked here: it stops password guessing, not signed-in sessions.
  // Roles deleted since are skipped (deleting a role takes effect at once).
  const roles = (await Promise.all(user.spec.roles.map((r) => now.role(r)))).filter((r): r is Role => r !== null);
  lockInForce(await now.locks(), {
    user: user.metadata.name,
    roles: roles.map((r) => r.metadata.name),
    azure_identity: identity.route?.azure_identity,
    session_ids: [identity.session_id, identity.login_session_id].filter((s): s is string => !!s),
  });
  return { identity, name: user.metadata.name, user, roles, traits: user.spec.traits };
}

export function authorize(caller: Caller, resource: string, verb: string): void {
  const d = checkRule(caller.roles, resource, verb);
  if (!d.allowed) throw new AzgateError("access_denied", `access denied to perform action "${verb}" on "${resource}"`);
}
