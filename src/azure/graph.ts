/**
 * Microsoft Graph and Azure AD Graph: OData services, which name one call
 * several ways (OData 4.01 URL conventions; Microsoft Graph's $metadata):
 * a key as a segment or in parentheses (`applications/{id}`,
 * `applications('{id}')`), an alternate key (`applications(appId='...')`),
 * a bound action or function with or without its namespace or the
 * namespace's alias (`addPassword`, `microsoft.graph.addPassword`,
 * `graph.addPassword`), a function's parameters in parentheses. A `paths`
 * rule written for one spelling would miss the others, so where a rule
 * applies a Graph path with parentheses, a colon (a drive item addressed by
 * its path) or a namespace-qualified segment is refused (UnsafePath):
 * azgate reads only the plain spelling. And any name under a Graph host is
 * read as that host.
 */
import { hostMatches, type AzureCloud } from "./clouds.ts";
import { UnsafePath } from "./safe-path.ts";

/** The Graph host this host (lower case, no port or trailing dot) is, or null when it is none of the cloud's. */
export function graphHost(host: string, cloud: AzureCloud): string | null {
  return cloud.graphHosts.find((g) => host === g) ?? cloud.graphHosts.find((g) => hostMatches(host, g)) ?? null;
}

/** Namespaces (and Graph's alias for its own) a bound action, function or type cast may be qualified with. */
const QUALIFIED = /^(microsoft\.graph|graph|microsoft\.directoryservices)\./i;

/** Throws UnsafePath for a Graph path segment azgate would read otherwise than Graph does. */
export function checkGraphSegments(segments: string[]): void {
  for (const [i, s] of segments.entries()) {
    if (/[():]/.test(s)) throw new UnsafePath(`"${s}" (segment ${i + 1}) uses OData's parentheses or colon addressing, another spelling of a Graph call: write the key as a segment (/applications/{id}/addPassword)`);
    if (QUALIFIED.test(s)) throw new UnsafePath(`"${s}" (segment ${i + 1}) is namespace-qualified, another spelling of a Graph call: write it without the namespace`);
  }
}
