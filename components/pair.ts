import { IPV4_ADDRESS } from "./address";
import { ABSOLUTE_PATH, Checker, isRecord, shown } from "./checker";
import { renderTemplate } from "./templates";

/*
 * The load balancer pair, its pure core: what a user may ask for and what
 * keepalived is told. Two nodes hold one floating address (the VIP) between
 * them with VRRP over unicast. Node a is the container a single load
 * balancer would be (`containerName`), node b is `<containerName>-b`: turning
 * a single load balancer into a pair keeps the running container as node a
 * and adds node b, so nothing serving is deleted or replaced.
 */

/** What a user writes as `pair`. */
export interface PairArgs {
    /** The floating address with its prefix, on the Incus bridge the nodes sit on: "198.18.0.10/24". */
    vip: string;
    /** Two Incus cluster members, one node on each. Absent: both nodes on this Incus host (warned). */
    targets?: string[];
    /** VRRP virtual router id (1-255), unique among the VRRP routers of the bridge. Default: 51. */
    virtualRouterId?: number;
}

/**
 * The pair's HAProxy peers: each node listens on its bridge address at this
 * port for the other's stick-table updates (shared rate-limit counters,
 * when a table uses them).
 */
export const PEERS_PORT = 10000;
export const PEERS_SECTION = "veza_peers";
/** The peers certificate's lifetime: a century, since nothing renews it. */
export const PEERS_CERT_VALIDITY_HOURS = 100 * 365 * 24;
/** A table in the peers section that nothing writes in normal traffic: it shows the link works (`show table veza_peers/veza_pair_sync`). */
export const PAIR_SYNC_TABLE = "veza_pair_sync";

/** Where haproxy's stop hook (templates/_vrrp-handover.sh) says a planned stop is coming. */
export const HAPROXY_STOPPING_FILE = "/run/veza-haproxy-stopping";

/** keepalived's own example id; set another when the bridge carries another VRRP router with it. */
export const DEFAULT_VIRTUAL_ROUTER_ID = 51;

export const PAIR_KEYS = ["vip", "targets", "virtualRouterId"] as const satisfies readonly (keyof PairArgs)[];
/** The two nodes: a (priority 150, the first election's winner) and b. */
export const PAIR_NODES = ["a", "b"] as const;
export type PairNode = (typeof PAIR_NODES)[number];

const VIP = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;
/** An Incus cluster member's name (a host name label). */
export const CLUSTER_MEMBER = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,61}[A-Za-z0-9])?$/;

/** `vip`'s address and prefix, when it is a usable IPv4 address on a subnet (why not, otherwise). */
function parseVip(vip: unknown): { octets: number[]; prefix: number } | string {
    const m = typeof vip === "string" ? VIP.exec(vip) : null;
    if (m === null) return `must be an IPv4 address with its prefix length, such as "198.18.0.10/24" (got ${shown(vip)})`;
    const octets = m.slice(1, 5).map(Number);
    const prefix = Number(m[5]);
    if (octets.some((o, i) => o > 255 || m[i + 1] !== String(o)))
        return `must be an IPv4 address with its prefix length, such as "198.18.0.10/24" (got ${shown(vip)})`;
    if (prefix < 8 || prefix > 30) return `must have a prefix length from /8 to /30: the subnet the nodes share (got ${shown(vip)})`;
    if (octets[0] === 0 || octets[0] === 127 || octets[0] >= 224) {
        return `must be a unicast address outside 0.0.0.0/8, 127.0.0.0/8 and 224.0.0.0/3 (got ${shown(vip)})`;
    }
    const address = octets.reduce((a, o) => a * 256 + o, 0);
    const size = 2 ** (32 - prefix);
    const host = address % size;
    if (host === 0 || host === size - 1) return `must not be the network or broadcast address of its /${prefix} (got ${shown(vip)})`;
    return { octets, prefix };
}

/** Why `vip` is no usable "address/prefix", or undefined when it is. */
export function vipProblem(vip: unknown): string | undefined {
    const parsed = parseVip(vip);
    return typeof parsed === "string" ? parsed : undefined;
}

/** Every problem with `pair`, each naming its field under `field`. */
export function checkPair(c: Checker, field: string, pair: unknown): void {
    if (!isRecord(pair)) {
        c.fail(field, `must be an object such as { vip: "198.18.0.10/24" } (got ${shown(pair)})`);
        return;
    }
    c.knownKeys(field, pair, PAIR_KEYS);
    const vip = parseVip(pair.vip);
    if (typeof vip === "string") c.fail(`${field}.vip`, vip);
    if (pair.targets !== undefined) {
        const targets = pair.targets;
        if (!Array.isArray(targets) || targets.length !== 2) {
            c.fail(
                `${field}.targets`,
                `must be two Incus cluster members, one per node, such as ["node-a", "node-b"] (got ${shown(targets)})`,
            );
        } else {
            targets.forEach((t, i) =>
                c.matches(`${field}.targets[${i}]`, t, CLUSTER_MEMBER, "must be an Incus cluster member name: letters, digits, . and -"),
            );
            if (targets[0] === targets[1]) {
                c.fail(
                    `${field}.targets`,
                    `must name two different cluster members: one host would take both nodes down (got ${shown(targets)})`,
                );
            }
        }
    }
    if (pair.virtualRouterId !== undefined) c.integer(`${field}.virtualRouterId`, pair.virtualRouterId, 1, 255);
}

/**
 * The peers of a pair: two nodes with distinct instance names and IPv4
 * addresses, and no listener of the config on the peers port.
 */
export function checkPeers(
    c: Checker,
    field: string,
    peers: unknown,
    s: { listenHttp: number; listenHttps: number; statsPort: number },
): void {
    if (!Array.isArray(peers)) {
        c.fail(field, `must be a list of the pair's nodes (got ${shown(peers)})`);
        return;
    }
    if (peers.length === 0) return;
    if (peers.length !== 2) c.fail(field, `must be the pair's two nodes (got ${peers.length})`);
    peers.forEach((peer: unknown, i) => {
        const p = isRecord(peer) ? peer : {};
        c.matches(`${field}[${i}].name`, p.name, CLUSTER_MEMBER, "must be the node's Incus instance name (its host name)");
        c.matches(`${field}[${i}].address`, p.address, IPV4_ADDRESS, "must be the node's IPv4 address on the bridge");
    });
    if (peers.length === 2 && isRecord(peers[0]) && isRecord(peers[1])) {
        if (peers[0].name === peers[1].name) c.fail(field, `must name two different nodes (both ${shown(peers[0].name)})`);
        if (peers[0].address === peers[1].address) c.fail(field, `must have two different addresses (both ${shown(peers[0].address)})`);
    }
    checkPeersPort(c, s);
}

/** A pair's nodes listen on PEERS_PORT for each other: no listener of the config may take it. */
export function checkPeersPort(c: Checker, s: { listenHttp: number; listenHttps: number; statsPort: number }): void {
    for (const key of ["listenHttp", "listenHttps", "statsPort"] as const) {
        if (s[key] === PEERS_PORT)
            c.fail(key, `must differ from the pair's peers port ${PEERS_PORT} (both nodes listen there for each other's tables)`);
    }
}

/** Legal but weaker than it looks: said on every run, never refused. */
export function pairWarnings(field: string, pair: PairArgs): string[] {
    if (pair.targets !== undefined) return [];
    return [
        `${field}.targets is not set: both nodes run on this Incus host, so the pair survives a node or HAProxy failure but not the host's; set two cluster members to survive that too`,
    ];
}

/** The node names of a pair whose container name is `containerName`: node a keeps that name (see the top of this file). */
export function pairNodeNames(containerName: string): Record<PairNode, string> {
    return { a: containerName, b: `${containerName}-b` };
}

/** The VIP's address without its prefix. */
export function vipAddress(vip: string): string {
    return vip.split("/")[0];
}

/** What keepalived.conf is rendered from: one node's view of the pair. */
export interface KeepalivedView {
    node: PairNode;
    /** This node's and the other node's addresses on the bridge (unicast VRRP). */
    selfAddress: string;
    peerAddress: string;
    /** "198.18.0.10/24". */
    vip: string;
    virtualRouterId: number;
    /** The interface the VIP goes on (the Incus NIC). */
    interface: string;
    /** Where the container step installs the two scripts keepalived runs. */
    aliveScript: string;
    notifyScript: string;
}

const INTERFACE = /^[A-Za-z0-9_.-]{1,15}$/;

/**
 * keepalived.conf for one node. Both nodes start as BACKUP with nopreempt:
 * the node with the higher priority (a) wins the first election, and a node
 * that comes back never takes the VIP back from a healthy one (that would be
 * a second move, a second blip for every client, for nothing).
 */
export function renderKeepalivedConfig(view: KeepalivedView): string {
    const c = new Checker();
    if (!PAIR_NODES.includes(view.node)) c.fail("node", `must be "a" or "b" (got ${shown(view.node)})`);
    c.matches("selfAddress", view.selfAddress, IPV4_ADDRESS, "must be an IPv4 address");
    c.matches("peerAddress", view.peerAddress, IPV4_ADDRESS, "must be an IPv4 address");
    if (view.selfAddress === view.peerAddress) c.fail("peerAddress", `must differ from selfAddress (both ${shown(view.selfAddress)})`);
    const vip = parseVip(view.vip);
    if (typeof vip === "string") c.fail("vip", vip);
    else if ([view.selfAddress, view.peerAddress].includes(vip.octets.join(".")))
        c.fail("vip", `must not be a node's own address (got ${shown(view.vip)})`);
    c.integer("virtualRouterId", view.virtualRouterId, 1, 255);
    c.matches("interface", view.interface, INTERFACE, "must be an interface name of 1-15 letters, digits, _ . -");
    c.matches("aliveScript", view.aliveScript, ABSOLUTE_PATH, "must be an absolute path of A-Z a-z 0-9 . _ -");
    c.matches("notifyScript", view.notifyScript, ABSOLUTE_PATH, "must be an absolute path of A-Z a-z 0-9 . _ -");
    if (c.found.length > 0) throw new Error(`keepalived.conf: ${c.problems.join("; ")}`);
    return renderTemplate("keepalived.conf.mustache", {
        ...view,
        priority: view.node === "a" ? 150 : 100,
        stoppingFile: HAPROXY_STOPPING_FILE,
    });
}
