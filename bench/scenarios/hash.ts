import { createHash } from "crypto";
import { HaproxySettings } from "../../components/settings";
import { backendOf, FakeBackend, get, HaproxyProcess, keepAliveAgent, OP_STATE, pool, startBackend } from "../../tests/support";
import { productSettings, startProduct } from "../lib/contenders";
import { log, round } from "../lib/stats";

export interface HashResult {
    servers: number;
    tracks: number;
    /** Fraction of tracks whose server changed when a 4th server was added. */
    moved_on_add: number;
    ideal_on_add: number;
    moved_on_add_count: number;
    /** Of the tracks that moved on add, how many did NOT go to the new server (ideal 0). */
    moved_on_add_not_to_new: number;
    /** Fraction of tracks NOT on the removed server that changed server when it was removed. */
    moved_unrelated_on_remove: number;
    moved_unrelated_on_remove_count: number;
    removed_server: string;
    /** Tracks per server with 3 servers, then 4 (balance check). */
    spread_3: Record<string, number>;
    spread_4: Record<string, number>;
}

/** Deterministic UUID-shaped track ids. */
export function trackIds(count: number): string[] {
    return Array.from({ length: count }, (_, i) => {
        const h = createHash("sha256").update(`veza-bench-track-${i}`).digest("hex");
        return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
    });
}

async function mapTracks(h: HaproxyProcess, tracks: string[]): Promise<Map<string, string>> {
    // A fresh agent per phase: keep-alive connections held by an old worker would route with the old config.
    const agent = keepAliveAgent(16);
    try {
        const answers = await pool(tracks.length, 16, (i) => get(h.httpPort, `/stream/${tracks[i]}/playlist.m3u8`, undefined, { agent }));
        const out = new Map<string, string>();
        answers.forEach((a, i) => {
            if (a.status !== 200) throw new Error(`track ${tracks[i]}: status ${a.status}`);
            out.set(tracks[i], backendOf(a) ?? "");
        });
        return out;
    } finally {
        agent.destroy();
    }
}

function spread(m: Map<string, string>): Record<string, number> {
    const s: Record<string, number> = {};
    for (const b of m.values()) s[b] = (s[b] ?? 0) + 1;
    return Object.fromEntries(Object.entries(s).sort());
}

/** Every stream server RUNNING at full weight (not in slowstart), so the ring is the steady-state one. */
async function waitSteady(h: HaproxyProcess, names: string[]): Promise<void> {
    await h.waitFor(
        async () => {
            const st = (await h.serversState()).filter((s) => s.backend === "stream_pool");
            return names.every((n) => {
                const s = st.find((x) => x.server === n);
                return s !== undefined && s.opState === OP_STATE.RUNNING;
            });
        },
        { timeoutMs: 15000, what: `stream servers ${names.join(", ")} RUNNING` },
    );
}

/**
 * 1,000 track ids through the real product config: 3 stream servers, then a
 * 4th added (reload), then the 2nd of the list removed (reload).
 */
export async function measureHash(trackCount = 1000): Promise<HashResult> {
    const streams: FakeBackend[] = [];
    for (let i = 1; i <= 4; i++) streams.push(await startBackend({ name: `stream-srv-${i}` }));
    const api = await startBackend({ name: "backend-api-1" });
    const tracks = trackIds(trackCount);
    const settings = (pool: FakeBackend[]): HaproxySettings => productSettings([api], pool);

    const h = await startProduct(settings(streams.slice(0, 3)));
    await waitSteady(h, ["stream-srv-1", "stream-srv-2", "stream-srv-3"]);
    const m3 = await mapTracks(h, tracks);

    await h.reload({ ...h.settings, ...settings(streams) });
    await waitSteady(
        h,
        streams.map((s) => s.name),
    );
    const m4 = await mapTracks(h, tracks);

    const removed = "stream-srv-2"; // the middle of the list
    const without = streams.filter((s) => s.name !== removed);
    await h.reload({ ...h.settings, ...settings(without) });
    await waitSteady(
        h,
        without.map((s) => s.name),
    );
    const mRemoved = await mapTracks(h, tracks);
    await h.stop();

    const movedOnAdd = tracks.filter((t) => m3.get(t) !== m4.get(t));
    const notToNew = movedOnAdd.filter((t) => m4.get(t) !== "stream-srv-4").length;
    const unrelated = tracks.filter((t) => m4.get(t) !== removed);
    const movedUnrelated = unrelated.filter((t) => m4.get(t) !== mRemoved.get(t)).length;
    const r: HashResult = {
        servers: 3,
        tracks: trackCount,
        moved_on_add: round(movedOnAdd.length / trackCount, 4),
        ideal_on_add: 0.25,
        moved_on_add_count: movedOnAdd.length,
        moved_on_add_not_to_new: notToNew,
        moved_unrelated_on_remove: round(movedUnrelated / Math.max(1, unrelated.length), 4),
        moved_unrelated_on_remove_count: movedUnrelated,
        removed_server: removed,
        spread_3: spread(m3),
        spread_4: spread(m4),
    };
    log(
        `hash: moved on add ${r.moved_on_add} (ideal 0.25, ${notToNew} not to the new server); unrelated moved on removing ${removed}: ${movedUnrelated}/${unrelated.length}`,
    );
    log(`hash: spread 3 ${JSON.stringify(r.spread_3)} 4 ${JSON.stringify(r.spread_4)}`);
    return r;
}
