import type { ApiTarget } from "../api/client.ts";
import { proxyBaseUrl, proxyCaFromArgs } from "../api/trust.ts";
import type { Profile } from "./profile.ts";

/** Where and how to reach a profile's proxy: its CAs, plus any AZGATE_PROXY_CA_FILE set now. */
export function profileTarget(p: Profile): ApiTarget {
  const front = [...(p.proxy_ca_pems ?? []), ...(proxyCaFromArgs(undefined) ?? [])];
  return { baseUrl: proxyBaseUrl(p.proxy), ca_pem: p.ca_pem, ...(p.ca_pems?.length ? { host_ca_pems: p.ca_pems } : {}), proxy_ca_pems: front.length ? front : undefined, insecure: p.insecure };
}
