import { z } from "zod";
import { AzgateError } from "../errors/index.ts";
import { identityIdProblem, requireIdentityId } from "../azure/resource-id.ts";

export const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/;

export interface User {
  kind: "user";
  version: "v2";
  /** `expires` is set on users made by an SSO login: they last as long as their certificate. */
  metadata: { name: string; description?: string; labels?: Record<string, string>; expires?: string };
  spec: {
    roles: string[];
    traits: Record<string, string[]>;
    /** `user` for users an administrator made; `connector` for users an SSO login made (as in Teleport). */
    created_by?: { time: string; user?: string; connector?: { type: string; id: string; identity: string; subject?: string } };
  };
  /**
   * Set by the proxy, never taken from a file: a random id for this user
   * record and a credential generation that a reset bumps. Certificates carry
   * both, so a certificate outlives neither a deleted-and-recreated user of
   * the same name nor a reset.
   */
  status?: UserStatus;
}

export interface UserStatus {
  id: string;
  generation: number;
}

export const userSchema = z.strictObject({
  kind: z.literal("user"),
  version: z.literal("v2", { message: "version must be v2" }),
  metadata: z.strictObject({
    name: z.string().regex(USER_NAME, "name must be 1-128 letters, digits, '.', '_', '@', '+' or '-'"),
    description: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    revision: z.string().optional(),
  }),
  spec: z.strictObject({
    roles: z.array(z.string().min(1)).default([]),
    traits: z
      .record(z.string(), z.array(z.string()))
      .default({})
      .superRefine((traits, ctx) => {
        (traits.azure_identities ?? []).forEach((id, i) => {
          const problem = identityIdProblem(id);
          if (problem) ctx.addIssue({ code: "custom", path: ["azure_identities", i], message: `${JSON.stringify(id)} ${problem}` });
        });
      }),
    created_by: z.unknown().optional(),
    status: z.unknown().optional(),
  }),
  // Ignored on input: the proxy keeps the stored record's own.
  status: z.unknown().optional(),
});

/**
 * The `azure_identities` trait (what `{{internal.azure_identities}}` expands
 * to) where it enters, from an administrator or an identity provider: every
 * value an identity ID in the one grammar (azure/resource-id.ts), or
 * `bad_parameter` naming the bad one. Other traits are free text; where a
 * role builds an identity from them, the engine checks what it expands to.
 */
export function checkIdentityTrait(values: unknown, where = "trait azure_identities"): void {
  if (values === undefined) return;
  if (!Array.isArray(values)) throw new AzgateError("bad_parameter", `${where} must be a list of Azure identity resource IDs`);
  values.forEach((v, i) => requireIdentityId(v, `${where}[${i}]`));
}
