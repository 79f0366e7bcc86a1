/**
 * Header lists as the tunnel carries them: [name, value] pairs in order,
 * names in any case. Apart from http.ts's schemas (and zod) so that what
 * runs before `azgate az` starts az (azure/client-info.ts) loads no more.
 */
export type HeaderList = [string, string][];

export function headerValue(headers: HeaderList, name: string): string[] {
  const n = name.toLowerCase();
  return headers.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
}
