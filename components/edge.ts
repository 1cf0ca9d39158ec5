import { isIPv4, isIPv6 } from "net";
import { ipv6Groups } from "./address";
import { Checker, isRecord, shown } from "./checker";

/*
 * Who the load balancer believes about a client's address (trustedProxies),
 * and how much one client may ask of it (rateLimit). Both are rendered into
 * the frontend; this module holds their rules and their view.
 */

/** Per-client limits, enforced in HAProxy stick tables. Absent = no limit. */
export interface RateLimit {
    /** Requests allowed per client IP per period; one more is answered 429 with `Retry-After: <periodSeconds>`. */
    requests: number;
    /** The sliding period the requests are counted over, in seconds. */
    periodSeconds: number;
    /** Connections one client IP may hold open at once; one more is closed as it is accepted (counted as a denied connection). Absent = no limit. */
    maxConcurrentPerClient?: number;
    /** Addresses or CIDRs never limited (monitoring, an office's NAT), IPv4 or IPv6. */
    allowlist?: string[];
}

const RATE_LIMIT_KEYS = ["requests", "periodSeconds", "maxConcurrentPerClient", "allowlist"] as const;
/** Where rateLimit's counters live: backends holding only a stick table. */
export const RATE_TABLE = "veza_rate_limit";
export const CONN_TABLE = "veza_conn_limit";
/** The backend refused requests go to: its own line in the stats and metrics counts every 429. */
export const RATE_LIMITED_BACKEND = "veza_rate_limited";
/** Clients a table keeps at most; the least recently seen is dropped first (about 100 bytes each). */
export const TABLE_SIZE = "100k";
/** How many trusted proxies in a row the client address is looked for behind (X-Forwarded-For entries read from the right). */
export const TRUSTED_HOPS = 3;

const IPV4_CIDR = /^(\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2}))?$/;
const IPV6_CIDR = /^([0-9A-Fa-f:.]+)(?:\/(\d{1,3}))?$/;

/** The address as bits ("0101..."), for the host-bits check. */
function bits(address: string): string {
    if (isIPv4(address))
        return address
            .split(".")
            .map((o) => Number(o).toString(2).padStart(8, "0"))
            .join("");
    return ipv6Groups(address)
        .map((g) => g.toString(2).padStart(16, "0"))
        .join("");
}

/** The network an address/prefix names, written back: "10.1.2.3/8" -> "10.0.0.0/8". */
function networkOf(address: string, prefix: number): string {
    const b = bits(address)
        .slice(0, prefix)
        .padEnd(isIPv4(address) ? 32 : 128, "0");
    if (isIPv4(address)) return `${[0, 8, 16, 24].map((i) => parseInt(b.slice(i, i + 8), 2)).join(".")}/${prefix}`;
    const groups = Array.from({ length: 8 }, (_, i) => parseInt(b.slice(i * 16, i * 16 + 16), 2).toString(16));
    return `${groups.join(":").replace(/(^|:)0(:0)+(:|$)/, "::")}/${prefix}`;
}

/** Why `value` is not an address or CIDR HAProxy's `-m ip` and `src` read exactly as written, or undefined when it is one. */
function cidrProblem(value: unknown): string | undefined {
    const usage = 'must be an IPv4 or IPv6 address, or a network with its prefix length such as "10.0.0.0/8" or "2001:db8::/32"';
    if (typeof value !== "string") return `${usage} (got ${shown(value)})`;
    const m = IPV4_CIDR.exec(value) ?? IPV6_CIDR.exec(value);
    if (m === null || !(isIPv4(m[1]) || isIPv6(m[1]))) return `${usage} (got ${shown(value)})`;
    const max = isIPv4(m[1]) ? 32 : 128;
    if (m[2] === undefined) return undefined;
    const prefix = Number(m[2]);
    if (prefix < 1 || prefix > max) return `must have a prefix length from 1 to ${max}; /0 would be every address (got ${shown(value)})`;
    if (bits(m[1]).slice(prefix).includes("1"))
        return `has host bits set past its /${prefix}: did you mean ${networkOf(m[1], prefix)}? (got ${shown(value)})`;
    return undefined;
}

/** IPv4 clients as HAProxy compares them with IPv6 entries: IPv4-mapped, ::ffff:0:0/96. */
const IPV4_MAPPED = "0".repeat(80) + "1".repeat(16);

/** A checked entry as the bits of its network in IPv6 space (an IPv4 network as IPv4-mapped). */
function networkBits(entry: string): string {
    const [address, prefix] = entry.split("/");
    if (isIPv4(address)) return IPV4_MAPPED + bits(address).slice(0, prefix === undefined ? 32 : Number(prefix));
    return bits(address).slice(0, prefix === undefined ? 128 : Number(prefix));
}

/** Whether the networks (bit prefixes) together cover every address under `target`. */
function coverAll(networks: string[], target: string): boolean {
    if (networks.some((n) => target.startsWith(n))) return true;
    const inside = networks.filter((n) => n.length > target.length && n.startsWith(target));
    if (inside.length === 0) return false;
    return coverAll(inside, `${target}0`) && coverAll(inside, `${target}1`);
}

/** A list of addresses and CIDRs: every entry must be one, none twice, and together not every address of a family. */
export function checkCidrList(c: Checker, field: string, value: unknown): void {
    if (!Array.isArray(value)) {
        c.fail(field, `must be a list of addresses or CIDRs, e.g. ["10.0.0.0/8"] (got ${shown(value)})`);
        return;
    }
    const seen = new Set<string>();
    value.forEach((entry, i) => {
        const problem = cidrProblem(entry);
        if (problem !== undefined) c.fail(`${field}[${i}]`, problem);
        else if (seen.has(entry as string)) c.fail(`${field}[${i}]`, `lists ${entry} twice`);
        seen.add(entry as string);
    });
    if (value.some((entry) => cidrProblem(entry) !== undefined)) return;
    // "Everyone" in another spelling (::ffff:0:0/96, 0.0.0.0/1 + 128.0.0.0/1, ::/1 + 8000::/1) is everyone too.
    const networks = (value as string[]).map(networkBits);
    const family = coverAll(networks, "") ? "address, IPv4 and IPv6" : coverAll(networks, IPV4_MAPPED) ? "IPv4 address" : undefined;
    if (family !== undefined) {
        c.fail(
            field,
            `together covers every ${family} (${(value as string[]).join(", ")}): that is everyone, as /0 would be; list only the networks you mean`,
        );
    }
}

/** rateLimit: absent (undefined) is off; otherwise every field by its rule, unknown keys refused. */
export function checkRateLimit(c: Checker, field: string, value: unknown): void {
    if (value === undefined) return;
    if (!isRecord(value)) {
        c.fail(
            field,
            `must be an object { requests, periodSeconds, maxConcurrentPerClient?, allowlist? }, or absent for no limit (got ${shown(value)})`,
        );
        return;
    }
    c.knownKeys(field, value, RATE_LIMIT_KEYS);
    c.integer(`${field}.requests`, value.requests, 1, 1000000);
    c.integer(`${field}.periodSeconds`, value.periodSeconds, 1, 86400);
    if (value.maxConcurrentPerClient !== undefined) c.integer(`${field}.maxConcurrentPerClient`, value.maxConcurrentPerClient, 1, 100000);
    if (value.allowlist !== undefined) checkCidrList(c, `${field}.allowlist`, value.allowlist);
}

/**
 * Entries on one ACL line. HAProxy reads at most 64 words on a line and
 * drops the rest (MAX_LINE_ARGS), so a long list is written as several lines
 * of one named ACL, which HAProxy ORs; 32 leaves room for the line's own
 * words and keeps the longest IPv6 lines near 1.5 KB.
 */
export const ACL_ENTRIES_PER_LINE = 32;

/** A list as the lines of one named ACL: [{ entries: "a b ..." }, ...], none when the list is empty. */
function aclLines(list: string[]): { entries: string }[] {
    return Array.from({ length: Math.ceil(list.length / ACL_ENTRIES_PER_LINE) }, (_, i) => ({
        entries: list.slice(i * ACL_ENTRIES_PER_LINE, (i + 1) * ACL_ENTRIES_PER_LINE).join(" "),
    }));
}

/** The template's view of trustedProxies and rateLimit (checked values only). */
export function edgeView(trustedProxies: string[], rateLimit: RateLimit | undefined): object {
    const allowlist = rateLimit?.allowlist ?? [];
    // Proxies and allowlisted clients are never counted per connection: a proxy carries many clients.
    const connectionExempt = [...allowlist, ...trustedProxies];
    return {
        trustProxies: trustedProxies.length > 0,
        trustedProxyLines: aclLines(trustedProxies),
        // "-2" and "-3": the entries a chain of trusted proxies puts left of the last one.
        deeperHops: Array.from({ length: TRUSTED_HOPS - 1 }, (_, i) => ({ occurrence: -(i + 2) })),
        rateLimit: rateLimit && {
            requests: rateLimit.requests,
            periodSeconds: rateLimit.periodSeconds,
            maxConcurrent: rateLimit.maxConcurrentPerClient,
            allowlisted: allowlist.length > 0,
            allowlistLines: aclLines(allowlist),
            connectionExempted: connectionExempt.length > 0,
            connectionExemptLines: aclLines(connectionExempt),
            rateTable: RATE_TABLE,
            connTable: CONN_TABLE,
            limitedBackend: RATE_LIMITED_BACKEND,
            tableSize: TABLE_SIZE,
        },
    };
}
