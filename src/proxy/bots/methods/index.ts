/** The join methods by name: each checks its CI's token in its own way (rules.ts MethodImpl). */
import type { JoinMethod, JoinToken } from "../../../resources/join-token.ts";
import type { MethodImpl } from "../rules.ts";
import { azureDevops } from "./azure-devops.ts";
import { github } from "./github.ts";
import { gitlab } from "./gitlab.ts";
import { kubernetes } from "./kubernetes.ts";

type AnySpec = { allow: Record<string, unknown>[]; audience?: string };

const METHODS: Record<JoinMethod, MethodImpl<never>> = { github, azure_devops: azureDevops, gitlab, kubernetes } as Record<JoinMethod, MethodImpl<never>>;

/** A join token's method and its spec, together. */
export function methodOf(token: JoinToken): { impl: MethodImpl<AnySpec>; spec: AnySpec } {
  const method = token.spec.join_method;
  return { impl: METHODS[method] as unknown as MethodImpl<AnySpec>, spec: token.spec[method] as unknown as AnySpec };
}
