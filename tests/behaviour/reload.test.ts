/*
 * Seamless reload through the master CLI under steady traffic, with the
 * server states saved first (like templates/_container-save-state.sh) and loaded
 * back through server-state-file.
 */
import { Agent } from "http";
import {
    ADMIN_STATE,
    backendOf,
    cleanupAll,
    FakeBackend,
    keepAliveAgent,
    Lab,
    request,
    requireBinary,
    startBackend,
    startLab,
} from "../support";

jest.setTimeout(120_000);

const describeWithHaproxy = requireBinary("haproxy");
const RELOADS = 20;

interface Failure {
    loop: string;
    reused: boolean;
    error: string;
}

interface ReloadRun {
    ok: number;
    keepAliveOk: number;
    newConnOk: number;
    failures: Failure[];
    reloadMs: number[];
    drainedAdminStates: number[];
    drainedRequestsDuringRun: number;
    servedBy: Set<string>;
}

describeWithHaproxy("seamless reload through the master CLI under steady traffic", () => {
    let lab: Lab;
    let run: ReloadRun;
    const agents: Agent[] = [];

    beforeAll(async () => {
        lab = await startLab({ api: 3, stream: 1, settings: { healthCheckIntervalMs: 500 } });
        const { hp } = lab;
        const api: FakeBackend[] = [...lab.api];
        const drained = api[0];
        expect((await hp.admin(`set server api_pool/${drained.name} state drain`)).trim()).toBe("");

        run = {
            ok: 0,
            keepAliveOk: 0,
            newConnOk: 0,
            failures: [],
            reloadMs: [],
            drainedAdminStates: [],
            drainedRequestsDuringRun: 0,
            servedBy: new Set(),
        };
        let stop = false;
        const loop = async (name: string, agent: Agent | false, pathFor: (i: number) => string, postEvery = 0): Promise<void> => {
            for (let i = 0; !stop; i++) {
                const post = postEvery > 0 && i % postEvery === 0;
                try {
                    const res = await request({
                        port: hp.httpPort,
                        path: pathFor(i),
                        agent,
                        method: post ? "POST" : "GET",
                        body: post ? JSON.stringify({ i }) : undefined,
                        headers: post ? { "content-type": "application/json" } : undefined,
                        timeoutMs: 10_000,
                    });
                    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
                    run.ok++;
                    if (agent) run.keepAliveOk++;
                    else run.newConnOk++;
                    run.servedBy.add(backendOf(res) as string);
                } catch (err) {
                    run.failures.push({
                        loop: name,
                        reused: Boolean((err as { reusedSocket?: boolean }).reusedSocket),
                        error: String(err),
                    });
                }
            }
        };
        const loops: Promise<void>[] = [];
        for (let k = 0; k < 3; k++) {
            const agent = keepAliveAgent(1);
            agents.push(agent);
            loops.push(loop(`keep-alive-${k}`, agent, (i) => `/api/v1/feed?k=${k}&i=${i}`, 5));
            loops.push(loop(`new-conn-${k}`, false, (i) => `/api/v1/feed?n=${k}&i=${i}`));
        }
        const streamAgent = keepAliveAgent(1);
        agents.push(streamAgent);
        loops.push(loop("keep-alive-stream", streamAgent, (i) => `/stream/track-${i % 50}/seg-${i}.ts`));

        const drainedBefore = drained.requests;
        try {
            // Let traffic flow before the first reload.
            await hp.waitFor(() => run.ok >= 50, { what: "50 requests served before the first reload" });
            for (let r = 1; r <= RELOADS; r++) {
                api.push(await startBackend({ name: `backend-api-${api.length + 1}` }));
                const started = Date.now();
                await hp.reload({ ...hp.settings, ...lab.settingsFor(api, lab.stream) });
                run.reloadMs.push(Date.now() - started);
                run.drainedAdminStates.push((await hp.serverState("api_pool", drained.name)).adminState);
                const okBefore = run.ok;
                await hp.waitFor(() => run.ok >= okBefore + 20, { what: `20 requests served after reload ${r}` });
            }
        } finally {
            stop = true;
            await Promise.all(loops);
        }
        run.drainedRequestsDuringRun = drained.requests - drainedBefore;
        const keepAliveFailures = run.failures.filter((f) => f.loop.startsWith("keep-alive")).length;
        const total = run.ok + run.failures.length;
        console.log(
            `${RELOADS} reloads (${run.reloadMs.join("/")} ms each) under traffic: ${total} requests, ${run.failures.length} failed ` +
                `(new connections: ${run.newConnOk} ok / ${run.failures.length - keepAliveFailures} failed; keep-alive: ${run.keepAliveOk} ok / ${keepAliveFailures} failed, ` +
                `${run.failures.filter((f) => f.reused).length} of the failures on a reused connection)` +
                (run.failures.length ? `; first: ${run.failures[0].error}` : ""),
        );
    });

    afterAll(async () => {
        for (const agent of agents) agent.destroy();
        await cleanupAll();
    });

    test("the servers added by the reloads take traffic", () => {
        expect(lab.hp.reloads).toBe(RELOADS);
        expect(run.servedBy).toContain(`backend-api-${3 + RELOADS}`);
    });

    test("new connections: zero failed requests across 20 reloads", () => {
        expect(run.newConnOk).toBeGreaterThan(0);
        expect(run.failures.filter((f) => f.loop.startsWith("new-conn"))).toEqual([]);
    });

    // Rests on `option idle-close-on-response` in the rendered defaults: without it the old worker
    // closes idle keep-alive connections at once, and a request sent on one at that moment dies
    // with ECONNRESET before HAProxy read it.
    test("keep-alive connections: zero failed requests across 20 reloads", () => {
        expect(run.keepAliveOk).toBeGreaterThan(0);
        expect(run.failures.filter((f) => f.loop.startsWith("keep-alive"))).toEqual([]);
    });

    test("a server drained before the reloads is still draining after each one (server-state-file) and gets no cookie-less traffic", () => {
        expect(run.drainedAdminStates).toHaveLength(RELOADS);
        for (const state of run.drainedAdminStates) expect(state & ADMIN_STATE.FDRAIN).toBe(ADMIN_STATE.FDRAIN);
        expect(run.drainedRequestsDuringRun).toBe(0);
    });
});
