/*
 * Where HAProxy puts each track, pinned per release. 100 tracks over
 * stream-srv-1..3 (ids derived from their names, so the ring is the same in
 * every run) are compared with the golden placement of the running HAProxy's
 * major.minor: tests/behaviour/golden/chash-placement-<major.minor>.json.
 *
 * Why per release: HAProxy 3.0 changed how a server's ring points are
 * computed. 2.6 hashes `puid * SRV_EWGHT_RANGE + node` (src/lb_chash.c);
 * from 3.0 (haproxy/haproxy faa8c3e02, "Deterministic node hashes based on
 * server address") the default `hash-key id` hashed the id twice,
 * `full_hash(full_hash(puid) + node)`, until 03e9a5a1e74b "BUG/MAJOR:
 * lb-chash: fix key calculation when using default hash-key id" (3.3-dev10,
 * marked for backport to 3.0) went back to 2.x's placement. So an upgrade
 * from Debian 12 to Debian 13 moves many tracks once (docs/haproxy-config.md,
 * "Upgrading HAProxy moves tracks once"), and a HAProxy that takes the fix moves them back: this test fails
 * then, naming how many moved, instead of letting it pass unseen.
 *
 * A release without a golden file fails (under CI and elsewhere): record one
 * with UPDATE_GOLDEN=1 and say in docs/haproxy-config.md how far it moves
 * tracks (docs.test checks its count against the golden files).
 */
import { existsSync, readFileSync, readdirSync, writeFileSync } from "fs";
import * as path from "path";
import { backendOf, cleanupAll, haproxyVersion, keepAliveAgent, Lab, request, requireBinary, startLab, trackId } from "../support";

jest.setTimeout(60_000);

const describeWithHaproxy = requireBinary("haproxy");
const TRACKS = 100;
const GOLDEN_DIR = path.join(__dirname, "golden");
const goldenFile = (release: string) => path.join(GOLDEN_DIR, `chash-placement-${release}.json`);

/** Tracks (by index) whose server differs between two placements. */
function moved(a: string[], b: string[]): number {
    return a.filter((server, i) => b[i] !== server).length;
}

describeWithHaproxy("stream_pool placement per HAProxy release", () => {
    let lab: Lab;
    afterAll(() => cleanupAll());

    test("100 tracks over 3 servers land exactly where this release's golden placement says", async () => {
        const version = haproxyVersion();
        const release = version.split(".").slice(0, 2).join(".");
        // CI runs this suite once per release and names the one it means (.ci/run).
        expect(release).toBe(process.env.VEZA_EXPECT_HAPROXY ?? release);
        lab = await startLab({ api: 1, stream: 3, settings: { healthCheckIntervalMs: 1000 } });
        const agent = keepAliveAgent(8);
        const placement: string[] = [];
        try {
            for (let i = 0; i < TRACKS; i++) {
                const res = await request({ port: lab.hp.httpPort, path: `/stream/${trackId(i)}/playlist.m3u8`, agent });
                expect(res.status).toBe(200);
                placement.push(backendOf(res) as string);
            }
        } finally {
            agent.destroy();
        }
        const file = goldenFile(release);
        if (process.env.UPDATE_GOLDEN === "1") writeFileSync(file, `${JSON.stringify({ haproxy: version, tracks: placement }, null, 1)}\n`);
        if (!existsSync(file)) {
            throw new Error(
                `no golden placement for HAProxy ${release} (${file}): record it with UPDATE_GOLDEN=1 and say in docs/haproxy-config.md how many tracks it moves from the other releases`,
            );
        }
        const golden = (JSON.parse(readFileSync(file, "utf8")) as { tracks: string[] }).tracks;
        for (const other of readdirSync(GOLDEN_DIR).filter(
            (f) => /^chash-placement-.*\.json$/.test(f) && path.join(GOLDEN_DIR, f) !== file,
        )) {
            const theirs = (JSON.parse(readFileSync(path.join(GOLDEN_DIR, other), "utf8")) as { tracks: string[] }).tracks;
            console.log(`HAProxy ${version}: ${moved(placement, theirs)} of ${TRACKS} tracks land elsewhere than in ${other}`);
        }
        expect({ release, moved: moved(placement, golden) }).toEqual({ release, moved: 0 });
        expect(placement).toEqual(golden);
    });
});
