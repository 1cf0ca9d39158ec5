/*
 * Failover: active health checks (fall/rise, path, method), on-marked-down
 * shutdown-sessions, retry + redispatch when a backend dies between checks,
 * slowstart.
 */
import { cookieValue } from "../../components/identity";
import {
    backendOf,
    cleanupAll,
    forceHealthUp,
    get,
    HealthCheckRecord,
    keepAliveAgent,
    OP_STATE,
    OpenWebSocket,
    openWebSocket,
    pool,
    request,
    requireBinary,
    setCookie,
    startLab,
    within,
} from "../support";

jest.setTimeout(60_000);

const COOKIE = "VEZA_SERVERID";
const describeWithHaproxy = requireBinary("haproxy");

const failed = (checks: HealthCheckRecord[]) => checks.filter((c) => c.status !== 200).length;
const passed = (checks: HealthCheckRecord[]) => checks.filter((c) => c.status === 200).length;

describeWithHaproxy("health checks and failover", () => {
    afterEach(cleanupAll);

    test("a server is DOWN after exactly `fall` failed checks and UP again after `rise` good ones; checks are GET on the configured paths", async () => {
        const fall = 3;
        const rise = 2;
        const apiHealthPath = "/internal/api-health";
        const streamHealthPath = "/internal/stream-health";
        const lab = await startLab({
            api: 3,
            stream: 1,
            settings: { healthCheckIntervalMs: 300, healthCheckFall: fall, healthCheckRise: rise, apiHealthPath, streamHealthPath },
            healthPaths: { api: apiHealthPath, stream: streamHealthPath },
        });
        const { hp } = lab;
        const target = lab.api[1];
        const state = () => hp.serverState("api_pool", target.name);

        // Fully UP first (status "UP", not "UP 1/3"): from startup HAProxy needs only one failure.
        await hp.waitFor(async () => (await hp.statRow("api_pool", target.name)).status === "UP" && target.healthChecks.length >= 2, {
            what: `${target.name} fully UP after passing checks`,
        });

        const flip = target.healthChecks.length;
        const flippedAt = Date.now();
        target.setHealthy(false);
        // One check short of `fall`: still UP.
        await hp.waitFor(() => failed(target.healthChecks.slice(flip)) >= fall - 1, {
            what: `${fall - 1} failed checks served`,
            intervalMs: 5,
        });
        const beforeLast = await state();
        const failedWhenStillUp = failed(target.healthChecks.slice(flip));
        await hp.waitFor(async () => (await state()).opState === OP_STATE.STOPPED, { what: `${target.name} DOWN`, intervalMs: 10 });
        const downAt = Date.now();
        const failedAtDown = failed(target.healthChecks.slice(flip));

        // DOWN: no traffic reaches it.
        const before = target.requests;
        for (let i = 0; i < 6; i++) expect(backendOf(await get(hp.httpPort, "/api/v1/x"))).not.toBe(target.name);
        expect(target.requests).toBe(before);

        const unflip = target.healthChecks.length;
        target.setHealthy(true);
        await hp.waitFor(() => passed(target.healthChecks.slice(unflip)) >= rise - 1, {
            what: `${rise - 1} passed checks served`,
            intervalMs: 5,
        });
        const beforeRise = await state();
        const passedWhenStillDown = passed(target.healthChecks.slice(unflip));
        await hp.waitFor(async () => (await state()).opState !== OP_STATE.STOPPED, { what: `${target.name} UP again`, intervalMs: 10 });
        const passedAtUp = passed(target.healthChecks.slice(unflip));

        console.log(
            `fall=${fall}: ${failedAtDown} failed checks served when DOWN was seen (${downAt - flippedAt} ms after the flip, ` +
                `${failedWhenStillUp} failed and still UP before); rise=${rise}: ${passedAtUp} passed checks when UP was seen`,
        );
        expect(failedWhenStillUp).toBe(fall - 1);
        expect(beforeLast.opState).not.toBe(OP_STATE.STOPPED);
        // Exactly `fall`, plus at most the next check if it was answered before the poll saw DOWN.
        expect(failedAtDown).toBeGreaterThanOrEqual(fall);
        expect(failedAtDown).toBeLessThanOrEqual(fall + 1);
        expect(passedWhenStillDown).toBe(rise - 1);
        expect(beforeRise.opState).toBe(OP_STATE.STOPPED);
        expect(passedAtUp).toBeGreaterThanOrEqual(rise);
        expect(passedAtUp).toBeLessThanOrEqual(rise + 1);

        // Every check on every server: GET on the configured path, nothing else hit the backends.
        for (const b of lab.api) {
            expect(b.healthChecks.length).toBeGreaterThan(0);
            for (const c of b.healthChecks) expect({ method: c.method, path: c.path }).toEqual({ method: "GET", path: apiHealthPath });
        }
        for (const b of lab.stream) {
            expect(b.healthChecks.length).toBeGreaterThan(0);
            for (const c of b.healthChecks) expect({ method: c.method, path: c.path }).toEqual({ method: "GET", path: streamHealthPath });
            expect(b.requests).toBe(0);
        }
        expect(target.requests).toBe(0);
    });

    test("a server marked DOWN has its WebSockets cut (on-marked-down shutdown-sessions); reconnecting with its cookie lands elsewhere with a new cookie", async () => {
        const lab = await startLab({
            api: 3,
            stream: 1,
            settings: { healthCheckIntervalMs: 200, healthCheckFall: 2, healthCheckRise: 2, timeoutTunnelMs: 60_000 },
        });
        const { hp } = lab;
        await forceHealthUp(
            hp,
            "api_pool",
            lab.api.map((b) => b.name),
        );
        const [other, target] = lab.api;
        const oldCookie = cookieValue("api_pool", target.name, "");
        const cookieHeader = { cookie: `${COOKIE}=${oldCookie}` };

        const onTarget: OpenWebSocket[] = [];
        for (let i = 0; i < 2; i++) {
            const ws = await openWebSocket(hp.httpPort, "/ws", { headers: cookieHeader });
            expect(ws.headers["x-backend"]).toBe(target.name);
            await ws.echo(`hello-${i}`);
            onTarget.push(ws);
        }
        const bystander = await openWebSocket(hp.httpPort, "/ws", {
            headers: { cookie: `${COOKIE}=${cookieValue("api_pool", other.name, "")}` },
        });
        expect(bystander.headers["x-backend"]).toBe(other.name);
        expect(target.openWebSockets()).toBe(2);

        const flippedAt = Date.now();
        target.setHealthy(false);
        await hp.waitFor(async () => (await hp.serverState("api_pool", target.name)).opState === OP_STATE.STOPPED, {
            what: `${target.name} marked DOWN`,
            intervalMs: 10,
        });
        const downAt = Date.now();
        // The backend process is alive and never closed them: HAProxy cut them.
        const codes = await Promise.all(onTarget.map((ws) => within(ws.closed, 5000, "still open")));
        const closedAt = Date.now();
        expect(codes).not.toContain("still open");
        await hp.waitFor(() => target.openWebSockets() === 0, { what: `${target.name} to see its WebSockets closed` });
        console.log(
            `DOWN ${downAt - flippedAt} ms after the flip; both WebSockets closed ${closedAt - downAt} ms after DOWN was seen (codes ${codes.join(", ")})`,
        );

        // Sessions on healthy servers are untouched.
        expect(bystander.isOpen()).toBe(true);
        await bystander.echo("still here");

        // Reconnect with the dead pin: re-balanced, and re-pinned with a fresh cookie.
        const again = await openWebSocket(hp.httpPort, "/ws", { headers: cookieHeader });
        const landed = again.headers["x-backend"] as string;
        expect(landed).not.toBe(target.name);
        expect(lab.api.map((b) => b.name)).toContain(landed);
        const fresh = setCookie(again, COOKIE);
        expect(fresh).toBeDefined();
        expect(fresh!.value).toBe(cookieValue("api_pool", landed, ""));
        expect(fresh!.value).not.toBe(oldCookie);
        await again.echo("reconnected");
        // Plain HTTP with the dead pin behaves the same.
        const res = await get(hp.httpPort, "/api/v1/me", cookieHeader);
        expect(res.status).toBe(200);
        expect(backendOf(res)).not.toBe(target.name);
        expect(setCookie(res, COOKIE)?.value).toBe(cookieValue("api_pool", backendOf(res) as string, ""));
    });

    test("a backend killed between health checks costs no failed GET (retry + redispatch)", async () => {
        const lab = await startLab({ api: 3, stream: 1, settings: { healthCheckIntervalMs: 10_000, healthCheckFall: 3 } });
        const { hp } = lab;
        // Fully UP so that a check failing during the burst (at most one in 10 s) cannot mark it DOWN.
        await forceHealthUp(
            hp,
            "api_pool",
            lab.api.map((b) => b.name),
        );
        const target = lab.api[1];
        const pinned = { cookie: `${COOKIE}=${cookieValue("api_pool", target.name, "")}` };
        const agent = keepAliveAgent(6);
        try {
            // Warm up: idle server-side connections to every backend, keep-alive client connections.
            await pool(30, 6, (i) => request({ port: hp.httpPort, path: `/api/v1/warm?i=${i}`, agent }));
            expect(target.requests).toBeGreaterThan(0);

            await target.kill();
            const results = await pool(90, 6, async (i) => {
                const kind = i % 3;
                try {
                    const res =
                        kind === 0
                            ? await request({ port: hp.httpPort, path: `/api/v1/a?i=${i}` })
                            : kind === 1
                              ? await request({ port: hp.httpPort, path: `/api/v1/b?i=${i}`, agent })
                              : await request({ port: hp.httpPort, path: `/api/v1/c?i=${i}`, headers: pinned });
                    return { i, status: res.status, backend: backendOf(res) };
                } catch (err) {
                    return { i, status: 0, backend: String(err) };
                }
            });
            const stateAfter = await hp.serverState("api_pool", target.name);
            const be = await hp.statRow("api_pool", "BACKEND");
            const sv = await hp.statRow("api_pool", target.name);
            const failures = results.filter((r) => r.status !== 200);
            console.log(
                `burst of ${results.length} GETs after killing ${target.name}: ${failures.length} failed; ` +
                    `api_pool retries wretr=${be.wretr} redispatches wredis=${be.wredis} (on ${target.name}: wretr=${sv.wretr} wredis=${sv.wredis}); ` +
                    `${target.name} still ${stateAfter.opState === OP_STATE.STOPPED ? "DOWN" : "UP"} by the checks`,
            );
            expect(failures).toEqual([]);
            for (const r of results) expect(r.backend).not.toBe(target.name);
            // It was never marked DOWN: the retries did the work, not the health checks.
            expect(stateAfter.opState).not.toBe(OP_STATE.STOPPED);
            // Pinned requests all targeted the dead server: they had to be redispatched.
            expect(Number(be.wredis)).toBeGreaterThanOrEqual(results.filter((r) => r.i % 3 === 2).length);
        } finally {
            agent.destroy();
        }
    });

    test("a recovered server's effective weight ramps up over gracefulDrainSeconds (slowstart)", async () => {
        const slowstart = 4;
        const lab = await startLab({
            api: 3,
            stream: 1,
            settings: { healthCheckIntervalMs: 200, healthCheckFall: 2, healthCheckRise: 2, gracefulDrainSeconds: slowstart },
        });
        const { hp } = lab;
        const target = lab.api[2];
        await forceHealthUp(
            hp,
            "api_pool",
            lab.api.map((b) => b.name),
        );
        const full = Number((await hp.statRow("api_pool", target.name)).weight);
        expect(full).toBe(100);

        target.setHealthy(false);
        await hp.waitFor(async () => (await hp.serverState("api_pool", target.name)).opState === OP_STATE.STOPPED, {
            what: `${target.name} DOWN`,
        });
        target.setHealthy(true);
        await hp.waitFor(async () => (await hp.serverState("api_pool", target.name)).opState !== OP_STATE.STOPPED, {
            what: `${target.name} UP again`,
            intervalMs: 10,
        });
        const upAt = Date.now();
        const samples: Array<{ ms: number; weight: number; opState: number }> = [];
        await hp.waitFor(
            async () => {
                const [row, st] = await Promise.all([hp.statRow("api_pool", target.name), hp.serverState("api_pool", target.name)]);
                samples.push({ ms: Date.now() - upAt, weight: Number(row.weight), opState: st.opState });
                return Number(row.weight) === full && st.opState === OP_STATE.RUNNING;
            },
            { what: `${target.name} back to full weight ${full}`, timeoutMs: (slowstart + 10) * 1000, intervalMs: 100 },
        );
        const steps = [...new Set(samples.map((s) => s.weight))];
        console.log(
            `slowstart ${slowstart}s: weight ${steps.join(" -> ")} (full after ${samples[samples.length - 1].ms} ms, ${samples.length} samples)`,
        );
        expect(samples[0].weight).toBeLessThan(full / 2);
        expect(samples[0].opState).toBe(OP_STATE.STARTING);
        // A ramp, not a jump: at least two intermediate weights, never decreasing.
        expect(steps.filter((w) => w > samples[0].weight && w < full).length).toBeGreaterThanOrEqual(2);
        for (let i = 1; i < samples.length; i++) expect(samples[i].weight).toBeGreaterThanOrEqual(samples[i - 1].weight);
        expect(samples[samples.length - 1].weight).toBe(full);
    });
});
