/**
 * Kubernetes: a projected service-account token (audience: the cluster's
 * name), signed by the cluster's service-account issuer, read by OIDC
 * discovery and its JWKS (an AKS cluster's OIDC issuer URL, say). Rules
 * name service_account as namespace:name, or a whole namespace. The kubelet
 * hands one token to a pod for most of an hour, so no replay cache: a pod
 * may join again with the token it has.
 */
import { kubernetesRuleShape, type KubernetesSpec } from "../../../resources/join-token.ts";
import { claim, keptFacts, type Claims, type MethodImpl } from "../rules.ts";

function podOf(claims: Claims): { namespace?: string; serviceAccount?: string; pod?: string } {
  const k = claims["kubernetes.io"] as { namespace?: unknown; serviceaccount?: { name?: unknown }; pod?: { name?: unknown } } | undefined;
  const text = (v: unknown) => (typeof v === "string" && v.length <= 253 ? v : undefined);
  return { namespace: text(k?.namespace), serviceAccount: text(k?.serviceaccount?.name), pod: text(k?.pod?.name) };
}

export const kubernetes: MethodImpl<KubernetesSpec> = {
  method: "kubernetes",
  issuer: (s) => s.oidc.issuer,
  defaultAudience: (cluster) => cluster,
  singleUse: false,
  ruleFields: Object.keys(kubernetesRuleShape),
  field(claims, name) {
    const { namespace, serviceAccount } = podOf(claims);
    if (name === "namespace") return namespace;
    if (name === "service_account") return namespace && serviceAccount ? `${namespace}:${serviceAccount}` : undefined;
    return undefined;
  },
  precheck(_spec, claims) {
    const { namespace, serviceAccount } = podOf(claims);
    // The subject and the kubernetes.io claims say the same account, or the token is not a service account's.
    if (!namespace || !serviceAccount || claim(claims, "sub") !== `system:serviceaccount:${namespace}:${serviceAccount}`) return "it is not a service account's token (sub system:serviceaccount:NAMESPACE:NAME)";
    return null;
  },
  facts(c) {
    const { namespace, serviceAccount, pod } = podOf(c);
    return keptFacts([["namespace", namespace], ["service_account", serviceAccount], ["pod", pod]]);
  },
};
