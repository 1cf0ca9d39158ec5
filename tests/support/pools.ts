import { HaproxySettings } from "../../components/settings";
import { FakeBackend, serverEntry, startBackend } from "./backend";
import { HaproxyProcess, startHaproxy } from "./haproxy-process";

export interface Lab {
    api: FakeBackend[];
    stream: FakeBackend[];
    hp: HaproxyProcess;
    /** apiServers/streamServers entries for a list of backends. */
    settingsFor(api: FakeBackend[], stream: FakeBackend[]): Pick<HaproxySettings, "apiServers" | "streamServers">;
}

/**
 * `apiCount` fake backend-api servers (backend-api-1..N) and `streamCount`
 * stream servers (stream-srv-1..M) on loopback, and a haproxy in front of
 * them rendered from `settings`.
 */
export async function startLab(
    apiCount: number,
    streamCount: number,
    settings: Partial<HaproxySettings> = {},
    healthPaths: { api?: string; stream?: string } = {},
): Promise<Lab> {
    const api: FakeBackend[] = [];
    const stream: FakeBackend[] = [];
    for (let i = 1; i <= apiCount; i++) api.push(await startBackend({ name: `backend-api-${i}`, healthPath: healthPaths.api }));
    for (let i = 1; i <= streamCount; i++) stream.push(await startBackend({ name: `stream-srv-${i}`, healthPath: healthPaths.stream }));
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
