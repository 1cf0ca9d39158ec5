import { createHash } from "crypto";
import { HaproxySettings } from "../../components/settings";
import { FakeBackend, serverEntry, startBackends } from "./backend";
import { HaproxyProcess, startHaproxy } from "./haproxy-process";

export interface Lab {
    api: FakeBackend[];
    stream: FakeBackend[];
    hp: HaproxyProcess;
    /** apiServers/streamServers entries for a list of backends. */
    settingsFor(api: FakeBackend[], stream: FakeBackend[]): Pick<HaproxySettings, "apiServers" | "streamServers">;
}

export interface LabOptions {
    /** How many fake api servers: backend-api-1..N. */
    api: number;
    /** How many fake stream servers: stream-srv-1..M. */
    stream: number;
    /** Rendered into haproxy.cfg; the server lists are filled in from the backends. */
    settings?: Partial<HaproxySettings>;
    /** An extra health path each kind of backend answers (when the settings move the checks off the defaults). */
    healthPaths?: { api?: string; stream?: string };
}

/**
 * `api` fake backend-api servers and `stream` stream servers on loopback, and
 * a haproxy in front of them rendered from `settings`.
 *
 *   const lab = await startLab({ api: 3, stream: 1, settings: { healthCheckIntervalMs: 200 } });
 */
export async function startLab({ api: apiCount, stream: streamCount, settings = {}, healthPaths = {} }: LabOptions): Promise<Lab> {
    const api = await startBackends("backend-api", apiCount, healthPaths.api);
    const stream = await startBackends("stream-srv", streamCount, healthPaths.stream);
    const settingsFor = (a: FakeBackend[], s: FakeBackend[]) => ({
        apiServers: a.map((b) => serverEntry(b)),
        streamServers: s.map((b) => serverEntry(b)),
    });
    const hp = await startHaproxy({ ...settings, ...settingsFor(api, stream) } as HaproxySettings);
    return { api, stream, hp, settingsFor };
}

/**
 * Forces every server of a pool fully UP through the runtime API
 * (`set server <pool>/<name> health up`), so a test does not depend on when
 * the first check of each server happens to run: at startup HAProxy counts a
 * server as UP but with `rise` health, so one failed check would drop it.
 */
export async function forceHealthUp(hp: HaproxyProcess, pool: string, names: string[]): Promise<void> {
    for (const name of names) {
        const answer = await hp.admin(`set server ${pool}/${name} health up`);
        if (answer.trim() !== "") throw new Error(`set server ${pool}/${name} health up: ${answer.trim()}`);
    }
}

/** A deterministic UUID-shaped track id: the same i gives the same id in every run. */
export function trackId(i: number): string {
    const h = createHash("sha256").update(`veza-track-${i}`).digest("hex");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * `count` distinct networks none of which holds a loopback address, every
 * other one IPv6 written at its longest (39 characters and a prefix): lists
 * longer than one haproxy.cfg line can hold. `tag` (0-255) keeps two lists apart.
 */
export function manyNetworks(count: number, tag: number): string[] {
    return Array.from({ length: count }, (_, i) =>
        i % 2 === 0
            ? `10.${tag}.${i >> 8}.${i & 255}`
            : `2001:0db8:${tag.toString(16).padStart(4, "0")}:${i.toString(16).padStart(4, "0")}:ffff:ffff:ffff:0000/112`,
    );
}
