import { isIPv6 } from "net";

/*
 * What a pool member's address may be, read the way HAProxy and the C
 * resolver will read it. A name that passes here resolves as a name; an IP
 * literal means exactly one address. `isSelfAddress` knows a loopback or
 * unspecified address in every spelling: a member there, on one of the load
 * balancer's own ports, would be the load balancer itself (a health path of
 * /metrics on its stats port would publish the stats on the public listener).
 */

/** An IPv4 address as four decimal octets 0-255 without leading zeros: the one spelling every tool reads alike. */
export const IPV4_ADDRESS = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
/** A last label inet_aton would take for a number: 127.1, 2130706433, 0x7f.1, 0177.0.0.1. */
const NUMERIC_LABEL = /^(\d+|0[xX][0-9A-Fa-f]*)$/;
/** Names that are the machine itself (RFC 6761 .localhost; Debian's /etc/hosts aliases). */
const SELF_NAMES = /^(localhost|ip6-localhost|ip6-loopback)$|\.localhost$/i;

function ipv4Octets(address: string): number[] {
    return address.split(".").map(Number);
}

function isSelfIPv4(octets: number[]): boolean {
    return octets[0] === 127 || octets[0] === 0;
}

/** The eight 16-bit groups of a valid IPv6 literal (an embedded dotted IPv4 tail allowed). */
export function ipv6Groups(address: string): number[] {
    // "::ffff:127.0.0.1" -> "::ffff:7f00:1"
    const text = address.replace(
        /(\d+)\.(\d+)\.(\d+)\.(\d+)$/,
        (_m, a, b, c, d) => `${((+a << 8) | +b).toString(16)}:${((+c << 8) | +d).toString(16)}`,
    );
    const [head, rest] = text.split("::");
    const parse = (part: string | undefined) => (part ? part.split(":").map((g) => parseInt(g, 16)) : []);
    const left = parse(head);
    const right = parse(rest);
    return [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
}

function isSelfIPv6(groups: number[]): boolean {
    const zeroTo = (n: number) => groups.slice(0, n).every((g) => g === 0);
    if (zeroTo(7) && (groups[7] === 1 || groups[7] === 0)) return true; // ::1, ::
    const v4 = [groups[6] >> 8, groups[6] & 0xff, groups[7] >> 8, groups[7] & 0xff];
    if (zeroTo(5) && groups[5] === 0xffff) return isSelfIPv4(v4); // ::ffff:127.0.0.1
    if (zeroTo(6)) return isSelfIPv4(v4); // ::127.0.0.1 (IPv4-compatible)
    return false;
}

/** True for a loopback or unspecified address or a loopback name, in any spelling `memberAddressProblem` accepts. */
export function isSelfAddress(address: string): boolean {
    if (address.includes(":")) return isIPv6(address) && isSelfIPv6(ipv6Groups(address));
    if (IPV4_ADDRESS.test(address)) return isSelfIPv4(ipv4Octets(address));
    return SELF_NAMES.test(address);
}

/** Why `address` cannot be a pool member's address at all, or undefined when it can. */
export function memberAddressProblem(address: unknown): string | undefined {
    if (typeof address !== "string" || address === "") {
        return "must be a DNS name or an IP address";
    }
    if (address.includes(":")) {
        if (address.includes("%"))
            return "must not carry an IPv6 zone id (%...): a zone names a link of one machine, and HAProxy cannot use it for a server";
        if (!isIPv6(address)) return 'must be a valid IPv6 address when it holds a ":" (a port goes in `port`)';
        return undefined;
    }
    if (IPV4_ADDRESS.test(address)) return undefined;
    if (address.length > 253) return `must be a DNS name of at most 253 characters (this one has ${address.length})`;
    const labels = address.split(".");
    if (labels.some((label) => label === "")) return "must be a DNS name without empty labels (no leading, trailing or doubled dots)";
    const bad = labels.find((label) => !LABEL.test(label));
    if (bad !== undefined) {
        return bad.length > 63
            ? `must be a DNS name whose labels are at most 63 characters (label of ${bad.length})`
            : "must be a DNS name of labels of A-Z a-z 0-9 - (RFC 1123: not starting or ending with -), or an IP address";
    }
    if (NUMERIC_LABEL.test(labels[labels.length - 1])) {
        return "must be an IPv4 address of four decimal octets 0-255 without leading zeros, when it is one (short or numeric forms such as 127.1 or 0x7f000001 are read as addresses by the resolver)";
    }
    return undefined;
}

/** True for an IP literal (HAProxy resolves everything else by name at runtime). */
export function isIpLiteral(address: string): boolean {
    return IPV4_ADDRESS.test(address) || isIPv6(address);
}
