/*
 * stream_pool track affinity: `balance hash path,field(N,/)` + `hash-type
 * consistent`, servers placed on the ring by ids derived from their names.
 */
import { Agent } from "http";
import {
    backendOf,
    cleanupAll,
    echo,
    FakeBackend,
    keepAliveAgent,
    Lab,
    pool,
    request,
    requireBinary,
    startBackend,
    startLab,
    trackId,
} from "../support";

jest.setTimeout(90_000);

const describeWithHaproxy = requireBinary("haproxy");
const TRACKS = 1000;

type Placement = Map<string, string>;

function counts(placement: Placement): Record<string, number> {
    const out: Record<string, number> = {};
    for (const server of placement.values()) out[server] = (out[server] ?? 0) + 1;
    return out;
}

describeWithHaproxy("stream_pool", () => {
    let lab: Lab;
    let agent: Agent;

    afterAll(async () => {
        agent?.destroy();
        await cleanupAll();
    });

    /** Which server each of the 1,000 tracks lands on (playlist request). */
    async function placement(): Promise<Placement> {
        const out: Placement = new Map();
        await pool(TRACKS, 16, async (i) => {
            const res = await request({ port: lab.hp.httpPort, path: `/stream/${trackId(i)}/playlist.m3u8`, agent });
            expect(res.status).toBe(200);
            expect(echo(res).track).toBe(trackId(i));
            out.set(trackId(i), backendOf(res) as string);
        });
        return out;
    }

    /** Reload with `servers` (in that order) and a fresh client agent. */
    async function useServers(servers: FakeBackend[]): Promise<void> {
        await lab.hp.reload({ ...lab.hp.settings, ...lab.settingsFor(lab.api, servers) });
        agent?.destroy();
        agent = keepAliveAgent(16);
    }

    test("one track always reaches one server; 1,000 tracks spread evenly; adding a server moves ~1/4, removing one moves only its own tracks", async () => {
        lab = await startLab({ api: 1, stream: 3, settings: { healthCheckIntervalMs: 1000 } });
        agent = keepAliveAgent(16);
        const [s1, s2, s3] = lab.stream;
        const names = lab.stream.map((b) => b.name).sort();

        // Affinity: playlist, segments, any query string.
        for (let t = 0; t < 60; t++) {
            const id = trackId(t);
            const paths = [
                `/stream/${id}/playlist.m3u8`,
                `/stream/${id}/seg-00001.ts`,
                `/stream/${id}/seg-00002.ts?token=abc&expires=123`,
                `/stream/${id}/720p/seg-00003.m4s?start=10.5`,
                `/stream/${id}/playlist.m3u8?user=${t}&session=${t * 7}`,
            ];
            const servers = new Set<string>();
            for (const path of paths) servers.add(backendOf(await request({ port: lab.hp.httpPort, path, agent })) as string);
            expect([...servers]).toHaveLength(1);
        }

        const three = await placement();
        const even = TRACKS / 3;
        console.log(`1,000 tracks over 3 servers: ${JSON.stringify(counts(three))} (even = ${even.toFixed(0)}, allowed ±25%)`);
        expect(Object.keys(counts(three)).sort()).toEqual(names);
        for (const n of Object.values(counts(three))) {
            expect(n).toBeGreaterThanOrEqual(even * 0.75);
            expect(n).toBeLessThanOrEqual(even * 1.25);
        }

        // The ring does not depend on list order.
        await useServers([s3, s1, s2]);
        const reordered = await placement();
        const movedOnReorder = [...three].filter(([t, s]) => reordered.get(t) !== s).length;
        console.log(`same 3 servers listed in another order: ${movedOnReorder} tracks moved`);
        expect(movedOnReorder).toBe(0);

        // A 4th server, inserted in the middle of the list.
        const s4 = await startBackend({ name: "stream-srv-4" });
        await useServers([s1, s4, s2, s3]);
        const four = await placement();
        const movedOnAdd = [...three].filter(([t, s]) => four.get(t) !== s);
        const movedNotToNew = movedOnAdd.filter(([t]) => four.get(t) !== s4.name).length;
        const addFraction = movedOnAdd.length / TRACKS;
        console.log(
            `adding ${s4.name}: ${(addFraction * 100).toFixed(1)}% of tracks moved (ideal 25%), ${movedNotToNew} of them not to the new server; ` +
                `now ${JSON.stringify(counts(four))}`,
        );
        expect(addFraction).toBeGreaterThanOrEqual(0.15);
        expect(addFraction).toBeLessThanOrEqual(0.35);
        expect(movedNotToNew).toBe(0);

        // Remove one from the middle of [s1, s2, s3, s4].
        await useServers([s1, s3, s4]);
        const removed = await placement();
        const movedOnRemove = [...four].filter(([t, s]) => removed.get(t) !== s);
        const unrelated = movedOnRemove.filter(([t]) => four.get(t) !== s2.name).length;
        const ownTracks = [...four.values()].filter((s) => s === s2.name).length;
        console.log(
            `removing ${s2.name} (middle of the list): ${movedOnRemove.length} tracks moved (${((movedOnRemove.length / TRACKS) * 100).toFixed(1)}%), ` +
                `all ${ownTracks} of its own: ${movedOnRemove.length - unrelated}, others: ${unrelated}`,
        );
        expect(unrelated).toBe(0);
        expect(movedOnRemove.length).toBe(ownTracks);
        expect([...removed.values()]).not.toContain(s2.name);
    });
});
