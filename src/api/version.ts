/**
 * Which versions a proxy serves (docs/deploying.md, "Upgrades"): agents and
 * clients of its own version and one minor version behind while azgate is
 * 0.x (one major version behind from 1.0, as Teleport promises), never
 * older. Every tunnel and API handshake carries the caller's version in
 * VERSION_HEADER (the agent's heartbeat too); a caller that sends none is
 * of the last release that did not: LEGACY_VERSION. A newer caller is
 * served (it is its own to know the older proxy). One pure rule, for the
 * proxy's API, its tunnels and the heartbeat.
 */
import { AzgateError } from "../errors/index.ts";
import { VERSION } from "../version.ts";

export const VERSION_HEADER = "x-azgate-version";

/** What callers that send no version are: 0.1 predates the header. */
export const LEGACY_VERSION = "0.1.0";

type Parsed = { major: number; minor: number; patch: number };

function parse(v: string): Parsed | null {
  const m = /^(\d{1,4})\.(\d{1,4})\.(\d{1,6})(?:-[0-9A-Za-z.-]{1,32})?$/.exec(v);
  return m ? { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) } : null;
}

/** Whether `v` is a later major.minor than `ours` (a patch release adds no records or fields): what it wrote, `ours` may not know. */
export function newerMinor(v: string, ours = VERSION): boolean {
  const p = parse(v);
  const o = parse(ours)!;
  return !!p && (p.major > o.major || (p.major === o.major && p.minor > o.minor));
}

/** The oldest version `ours` serves, as major.minor. */
export function oldestServed(ours = VERSION): string {
  const o = parse(ours)!;
  if (o.major === 0) return `0.${Math.max(0, o.minor - 1)}`;
  return `${o.major - 1}.0`;
}

/**
 * Null when a caller of `peer` (undefined: it sent none) is served by a
 * proxy of `ours`; otherwise the refusal, naming both versions and the next step.
 */
export function versionRefusal(peer: string | undefined, who: "agent" | "client", ours = VERSION): AzgateError | null {
  const claimed = peer ?? LEGACY_VERSION;
  const p = parse(claimed);
  const o = parse(ours)!;
  if (!p) return new AzgateError("version_unsupported", `this ${who} sent the version ${JSON.stringify(claimed.slice(0, 40))}, which is not a version (major.minor.patch); the proxy is azgate ${ours}`);
  const served = o.major === 0 ? p.major > 0 || p.minor >= o.minor - 1 : p.major >= o.major - 1;
  if (served) return null;
  return new AzgateError(
    "version_unsupported",
    `this ${who} is azgate ${claimed}, and the proxy is azgate ${ours}, which serves ${who}s of ${oldestServed(ours)} and later; upgrade the ${who} to ${ours}${who === "agent" ? " (its data dir is kept: it reconnects as the same agent)" : ""}`,
  );
}
