import { isSelfAddress, memberAddressProblem } from "./address";
import { Checker, isRecord, shown } from "./checker";
import { MAX_SERVER_ID, serverId } from "./identity";

/** One upstream server in a pool. */
export interface BackendServer {
    /** HAProxy server name, e.g. `backend-api-1`. Stable identity: cookie value and hash-ring id derive from it. */
    name: string;
    /** DNS name or IP, e.g. `backend-api-1.lxd`. Hostnames are re-resolved at runtime through the container's resolver. */
    address: string;
    /** Upstream port. Default: the pool's port (`backendApiPort` / `streamServerPort`). */
    port?: number;
    /** Relative weight 0-256. Default: 100. */
    weight?: number;
    /**
     * The server's id, 1-1048575: its place on the stream pool's hash ring.
     * Default: derived from `name`. Pin one when two names take the same id
     * (validation says so) or to keep a server's place across a rename.
     */
    id?: number;
}

const NAME = /^[A-Za-z0-9._-]{1,64}$/;

function checkAddress(c: Checker, field: string, address: unknown): void {
    const problem = memberAddressProblem(address);
    if (problem !== undefined) c.fail(field, `${problem} (got ${shown(address)})`);
}

/** The fields of a pool entry. */
export const SERVER_KEYS = ["name", "address", "port", "weight", "id"] as const;
/** A pool entry as messages show it: "{ name, address, port?, weight?, id? }". */
const SERVER_SHAPE = `{ ${SERVER_KEYS.map((k) => (k === "name" || k === "address" ? k : `${k}?`)).join(", ")} }`;

/**
 * A member on a loopback address and one of the load balancer's own ports
 * is the load balancer itself: a loop through the public listener, or the
 * stats listener published without its password.
 */
export function checkNotOwnListener(c: Checker, field: string, servers: unknown, defaultPort: unknown, own: [string, unknown][]): void {
    if (!Array.isArray(servers)) return;
    servers.forEach((server: unknown, i) => {
        if (!isRecord(server) || typeof server.address !== "string" || memberAddressProblem(server.address) !== undefined) return;
        if (!isSelfAddress(server.address)) return;
        const port = server.port ?? defaultPort;
        const hit = own.find(([, p]) => p === port);
        if (hit) {
            c.fail(
                `${field}[${i}].address`,
                `with port ${shown(port)} is this load balancer's own ${hit[0]} listener (a loopback address): ` +
                    `requests would loop back into it${hit[0] === "statsPort" ? " and publish the stats without their password" : ""} (got ${shown(server.address)})`,
                hit[0],
            );
        }
    });
}

export function checkPool(c: Checker, field: string, servers: unknown): void {
    if (!Array.isArray(servers) || servers.length === 0) {
        c.fail(field, `must list at least one server (${SERVER_SHAPE})`);
        return;
    }
    const seen = new Map<string, number>();
    // Pinned ids first, wherever they stand: a derived id meeting a pinned one is the derived one's to move.
    const ids = new Map<number, number>();
    servers.forEach((server: unknown, i) => {
        if (!isRecord(server) || server.id === undefined) return;
        const before = c.found.length;
        c.integer(`${field}[${i}].id`, server.id, 1, MAX_SERVER_ID);
        if (c.found.length !== before) return;
        const holder = ids.get(server.id as number);
        if (holder !== undefined)
            c.fail(`${field}[${i}].id`, `pins ${server.id}, which ${field}[${holder}].id pins too; server ids must be unique in a pool`);
        else ids.set(server.id as number, i);
    });
    servers.forEach((server: Partial<BackendServer>, i) => {
        const at = `${field}[${i}]`;
        if (!isRecord(server)) {
            c.fail(at, `must be an object ${SERVER_SHAPE} (got ${shown(server)})`);
            return;
        }
        c.knownKeys(at, server, SERVER_KEYS);
        if (c.matches(`${at}.name`, server.name, NAME, "must be 1-64 characters of A-Z a-z 0-9 . _ -")) {
            const name = server.name as string;
            const first = seen.get(name);
            if (first !== undefined) {
                c.fail(`${at}.name`, `duplicates ${field}[${first}].name ${shown(name)}; server names must be unique in a pool`);
            } else {
                seen.set(name, i);
            }
            if (first === undefined && server.id === undefined) {
                // A server's id (its place on the hash ring) comes from its name
                // alone, so no other server can ever move it; two names on one id
                // cannot both have it, and one of them would move.
                const id = serverId({ name });
                const holder = ids.get(id);
                if (holder !== undefined) {
                    const other = servers[holder] as BackendServer;
                    c.fail(
                        `${at}.name`,
                        `takes the same server id (${id}) as ${field}[${holder}].name ${shown(other.name)}${other.id !== undefined ? ", which pins it" : ""}: ` +
                            `ids come from names so that adding a server never moves another; rename one of the two, or pin another \`id\` (1-${MAX_SERVER_ID}, unused in the pool) on one of them`,
                    );
                } else {
                    ids.set(id, i);
                }
            }
        }
        checkAddress(c, `${at}.address`, server.address);
        if (server.port !== undefined) c.port(`${at}.port`, server.port);
        if (server.weight !== undefined) c.integer(`${at}.weight`, server.weight, 0, 256);
    });
    if (servers.length > 0 && servers.every((server) => isRecord(server) && server.weight === 0)) {
        c.fail(field, "has every server at weight 0: the pool could never serve a request; give at least one server a weight of 1-256");
    }
}
