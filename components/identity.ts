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

function fnv1a32(text: string): number {
    let hash = 0x811c9dc5;
    for (const byte of Buffer.from(text, "utf8")) {
        hash ^= byte;
        hash = Math.imul(hash, 0x01000193) >>> 0;
    }
    return hash;
}

/**
 * Maps server names to distinct ids in 1..2^20-1. Collisions are resolved by
 * probing in sorted-name order, so the result depends only on the set of
 * names, never on their order in the list.
 */
export function stableServerIds(names: string[]): Map<string, number> {
    const ids = new Map<string, number>();
    const taken = new Set<number>();
    for (const name of [...names].sort()) {
        let id = (fnv1a32(name) % ID_SPACE) + 1;
        while (taken.has(id)) id = (id % ID_SPACE) + 1;
        taken.add(id);
        ids.set(name, id);
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
    const digest = secret === ""
        ? createHash("sha256").update(message).digest("hex")
        : createHmac("sha256", secret).update(message).digest("hex");
    return digest.slice(0, 16);
}

/** Hex SHA-256 of a string: how the component fingerprints rendered files. */
export function sha256Hex(text: string): string {
    return createHash("sha256").update(text, "utf8").digest("hex");
}
