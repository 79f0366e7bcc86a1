/**
 * A user's traits are checked at the API, the same on both backends: a NUL
 * (which PostgreSQL's jsonb refuses, so it used to answer 500) or another
 * control character, the wrong shape, or too much is a 400 before anything
 * is stored. PostgreSQL is Debian's, started by the test (helpers/postgres.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openState, settingsFrom } from "../src/proxy/state.ts";
import { configSchema } from "../src/config/schema.ts";
import type { ProxyContext } from "../src/proxy/context.ts";
import { resolveCaller, type Caller } from "../src/proxy/caller.ts";
import { addUser, createResources, updateUser } from "../src/proxy/admin.ts";
import { parseResources } from "../src/resources/parse.ts";
import { KEYS } from "../src/proxy/keys.ts";
import { startPostgres, type TestPostgres } from "./helpers/postgres.ts";
import { tempDir } from "./helpers/azgate.ts";
import { FakeClock } from "./helpers/fake-clock.ts";

let pg: TestPostgres;
beforeAll(async () => {
  pg = await startPostgres();
}, 60_000);
afterAll(async () => pg?.stop());

const HOSTILE: [string, unknown][] = [
  ["a NUL in a value", { team: ["ops\u0000admin"] }],
  ["a NUL in a name", { "te\u0000am": ["ops"] }],
  ["another control character", { team: ["ops\u001b[2J"] }],
  ["a value that is no list", { team: "ops" }],
  ["a value that is no string", { team: [42] }],
  ["a value over 1,024 characters", { team: ["x".repeat(1025)] }],
  ["more than 256 values", { team: Array.from({ length: 257 }, (_, i) => `t${i}`) }],
];

describe.each([
  ["files", () => ({ type: "file" as const })],
  ["PostgreSQL", async () => ({ type: "postgres" as const, auth: "password" as const, conn_string: await pg.database(`azgate_traits_${crypto.randomUUID().slice(0, 8)}`) })],
])("user traits on %s", (_backend, storage) => {
  let ctx: ProxyContext;
  let close: () => Promise<void>;
  let admin: Caller;
  beforeAll(async () => {
    ({ ctx, close } = await openState(tempDir("azgate-traits-"), { clusterName: "traits", settings: settingsFrom(configSchema.parse({})), purpose: "traits test", storage: await storage(), clock: new FakeClock() }));
    admin = await resolveCaller(ctx, { kind: "local-admin", name: "@local-admin", roles: [], traits: {}, azure_identities: [], login_method: "local", session_id: ctx.localAdminSession });
  }, 60_000);
  afterAll(async () => close?.());

  it.each(HOSTILE)("refuses %s with 400 when a user is created, updated or written from a file; nothing is stored", async (_what, traits) => {
    const name = `u${crypto.randomUUID().slice(0, 8)}`;
    await expect(addUser(ctx, admin, name, ["access"], traits as Record<string, string[]>)).rejects.toMatchObject({ code: "bad_parameter", status: 400 });
    expect(await ctx.backend.get(KEYS.user(name))).toBeNull();

    await addUser(ctx, admin, name, ["access"], { team: ["ops"] });
    await expect(updateUser(ctx, admin, name, { traits: traits as Record<string, string[]> })).rejects.toMatchObject({ code: "bad_parameter", status: 400 });
    expect((await ctx.backend.get<{ spec: { traits: unknown } }>(KEYS.user(name)))!.value.spec.traits).toEqual({ team: ["ops"] });

    const file = JSON.stringify({ kind: "user", version: "v2", metadata: { name: `${name}-file` }, spec: { roles: ["access"], traits } });
    expect(() => parseResources(file, "user.yaml")).toThrow(expect.objectContaining({ code: "resource_invalid", status: 400 }));
  });

  it("refuses a NUL in --set-azure-identities too, and still takes printable traits", async () => {
    const name = `u${crypto.randomUUID().slice(0, 8)}`;
    await addUser(ctx, admin, name, ["access"], { team: ["ops", "dev team: east"] });
    await expect(updateUser(ctx, admin, name, { azure_identities: ["/subscriptions/x\u0000"] })).rejects.toMatchObject({ code: "bad_parameter", status: 400 });
    const updated = await updateUser(ctx, admin, name, { traits: { region: ["eu"] } });
    expect(updated.spec.traits).toEqual({ team: ["ops", "dev team: east"], region: ["eu"] });
    await createResources(ctx, admin, parseResources(JSON.stringify({ kind: "user", version: "v2", metadata: { name: `${name}-file` }, spec: { roles: ["access"], traits: { team: ["ops"] } } }), "user.yaml").resources, false);
    expect(await ctx.backend.get(KEYS.user(`${name}-file`))).not.toBeNull();
  });
});
