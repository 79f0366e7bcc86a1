/**
 * Addresses the agent never forwards to, whatever DNS says: IMDS and other
 * link-local, loopback, private (RFC 1918, ULA), carrier-grade NAT, multicast,
 * reserved and unspecified ranges, including IPv4 inside IPv6. Pure; the
 * agent calls it on every address a target name resolves to.
 */
type Range = [base: bigint, bits: number, why: string];

function v4(a: string): bigint | null {
  const parts = a.split(".");
  if (parts.length !== 4) return null;
  let n = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return null;
    n = (n << 8n) | BigInt(Number(p));
  }
  return n;
}

function v6(a: string): bigint | null {
  let text = a.toLowerCase().replace(/%.*$/, "");
  // An embedded dotted IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const n = v4(dotted[1]);
    if (n === null) return null;
    text = text.slice(0, -dotted[1].length) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const missing = 8 - head.length - tail.length;
  if ((halves.length === 1 && missing !== 0) || missing < 0) return null;
  const groups = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  let n = 0n;
  for (const g of groups) {
    if (!/^[0-9a-f]{1,4}$/.test(g)) return null;
    n = (n << 16n) | BigInt(parseInt(g, 16));
  }
  return n;
}

const V4_RANGES: Range[] = [
  ["0.0.0.0", 8, "unspecified"],
  ["10.0.0.0", 8, "private"],
  ["100.64.0.0", 10, "carrier-grade NAT"],
  ["127.0.0.0", 8, "loopback"],
  ["169.254.0.0", 16, "link-local (IMDS)"],
  ["172.16.0.0", 12, "private"],
  ["192.0.0.0", 24, "IETF protocol assignments"],
  ["192.168.0.0", 16, "private"],
  ["198.18.0.0", 15, "benchmarking"],
  ["224.0.0.0", 4, "multicast"],
  ["240.0.0.0", 4, "reserved"],
].map(([a, bits, why]) => [v4(a as string)!, bits as number, why as string]);

const V6_RANGES: Range[] = [
  ["::", 128, "unspecified"],
  ["::1", 128, "loopback"],
  ["fc00::", 7, "private (ULA)"],
  ["fe80::", 10, "link-local"],
  ["ff00::", 8, "multicast"],
  ["2001:db8::", 32, "documentation"],
  ["fd00:ec2::254", 128, "metadata service"],
].map(([a, bits, why]) => [v6(a as string)!, bits as number, why as string]);

function inRange(n: bigint, width: number, [base, bits]: Range): boolean {
  const shift = BigInt(width - bits);
  return n >> shift === base >> shift;
}

/** Why `address` is forbidden, or null when it is a public unicast address. Unparseable input is forbidden. */
export function forbiddenAddressReason(address: string): string | null {
  const a4 = v4(address);
  if (a4 !== null) return V4_RANGES.find((r) => inRange(a4, 32, r))?.[2] ?? null;
  const a6 = v6(address);
  if (a6 === null) return "not an IP address";
  // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::/96) carry an IPv4 address.
  const high = a6 >> 32n;
  if (high === 0xffffn || high === 0n || high === v6("64:ff9b::")! >> 32n) {
    if (a6 <= 1n) return V6_RANGES.find((r) => inRange(a6, 128, r))![2];
    return forbiddenAddressReason([24n, 16n, 8n, 0n].map((s) => ((a6 >> s) & 0xffn).toString()).join("."));
  }
  return V6_RANGES.find((r) => inRange(a6, 128, r))?.[2] ?? null;
}

/**
 * Why the workstation's local proxy must not tunnel to `address`: this
 * machine itself (loopback, unspecified) or its link (link-local: IMDS and
 * friends). A client of the local proxy reaches no local service through it.
 */
export function localTargetReason(address: string): string | null {
  const why = forbiddenAddressReason(address);
  return why && /loopback|link-local|unspecified|metadata|not an IP/.test(why) ? why : null;
}

/** An address as a number and its width (32 or 128), or null when it is not an IP address. */
function parseAddress(address: string): { n: bigint; width: 32 | 128 } | null {
  const a4 = v4(address);
  if (a4 !== null) return { n: a4, width: 32 };
  const a6 = v6(address);
  if (a6 === null) return null;
  // An IPv4-mapped address (what a dual-stack socket reports) is the IPv4 address.
  if (a6 >> 32n === 0xffffn) return { n: a6 & 0xffffffffn, width: 32 };
  return { n: a6, width: 128 };
}

/** True when `cidr` is an address range (a.b.c.d/n, x::/n) or a single address. */
export function isCidr(cidr: string): boolean {
  const [addr, bits, ...rest] = cidr.split("/");
  const a = parseAddress(addr);
  return !!a && rest.length === 0 && (bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= a.width));
}

/** True when `address` lies in one of `cidrs` (each a range or a single address). */
export function inCidrs(address: string, cidrs: readonly string[]): boolean {
  const a = parseAddress(address);
  if (!a) return false;
  return cidrs.some((cidr) => {
    const [base, bits] = cidr.split("/");
    const b = parseAddress(base);
    if (!b || b.width !== a.width) return false;
    return inRange(a.n, a.width, [b.n, bits === undefined ? a.width : Number(bits), ""]);
  });
}
