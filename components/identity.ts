import { createHash, createHmac } from "crypto";

/*
 * HAProxy 2.6 places a server on the consistent-hash ring by its numeric id
 * (lb_chash.c hashes `puid * SRV_EWGHT_RANGE + node`), and the id defaults to
 * the server's position in the list. Deriving the id from the name instead
 * keeps every server's ring points fixed when others are inserted or removed
 * anywhere in the list. Ids stay below 2^20 because `puid * 4096` wraps at
 * 2^32: two ids equal modulo 2^20 would share ring points.
 */
const ID_SPACE = (1 << 20) - 1;
/** The largest server id: a pinned `id` is 1..MAX_SERVER_ID too. */
export const MAX_SERVER_ID = ID_SPACE;

function fnv1a32(text: string): number {
    let hash = 0x811c9dc5;
    for (const byte of Buffer.from(text, "utf8")) {
        hash ^= byte;
        hash = Math.imul(hash, 0x01000193) >>> 0;
    }
    return hash;
}

/** A server's id in 1..2^20-1, from its name alone. */
export function primaryServerId(name: string): number {
    return (fnv1a32(name) % ID_SPACE) + 1;
}

/** A server's id: the one it pins, else the one its name gives. */
export function serverId(server: { name: string; id?: number }): number {
    return server.id ?? primaryServerId(server.name);
}

/**
 * Maps server names to their ids. Each depends on its own entry only (a
 * pinned id, else the name), so no server's id moves when others are added,
 * removed or reordered. Two servers on one id are refused by validation;
 * here they are a programming error.
 */
export function stableServerIds(servers: { name: string; id?: number }[]): Map<string, number> {
    const ids = new Map<string, number>();
    const taken = new Map<number, string>();
    for (const server of servers) {
        const id = serverId(server);
        const other = taken.get(id);
        if (other !== undefined && other !== server.name)
            throw new Error(`servers ${other} and ${server.name} share id ${id}: validate the settings first`);
        taken.set(id, server.name);
        ids.set(server.name, id);
    }
    return ids;
}

/**
 * Opaque, stable cookie value for a server: a keyed hash, so the cookie does
 * not reveal the server's name or address, and users stay pinned across
 * re-renders as long as the server keeps its name.
 */
export function cookieValue(pool: string, serverName: string, secret: string): string {
    const message = `${pool}\0${serverName}`;
    const digest =
        secret === "" ? createHash("sha256").update(message).digest("hex") : createHmac("sha256", secret).update(message).digest("hex");
    return digest.slice(0, 16);
}

/** Hex SHA-256 of a string: how the component fingerprints rendered files. */
export function sha256Hex(text: string): string {
    return createHash("sha256").update(text, "utf8").digest("hex");
}
