/*
 * api_pool: round-robin, sticky cookie (insert indirect nocache httponly),
 * WebSocket stickiness and tunnel timeout, drain through the admin socket
 * (the cookie over TLS is in tls.test.ts).
 */
import { cookieValue } from "../../components/identity";
import {
    ADMIN_STATE,
    backendOf,
    cleanupAll,
    echo,
    get,
    keepAliveAgent,
    Lab,
    openWebSocket,
    request,
    requireBinary,
    setCookie,
    sleep,
    startLab,
    within,
} from "../support";

jest.setTimeout(60_000);

const COOKIE = "VEZA_SERVERID";
const describeWithHaproxy = requireBinary("haproxy");

/** Cookie value for each api server, as the config pins it (opaque hash of the name). */
function cookiesOf(lab: Lab): Map<string, string> {
    return new Map(lab.api.map((b) => [b.name, cookieValue("api_pool", b.name, "")]));
}

describeWithHaproxy("api_pool", () => {
    afterEach(cleanupAll);

    // serverConnectionReuse "always" (http-reuse always): with HAProxy's
    // default "safe", every client connection's first request opens its own
    // server connection, so a client per request (a new TLS handshake each)
    // costs a backend connect each; "aggressive" only reuses connections that
    // carried two requests, which one-request clients never make.
    test.each([
        ["always", (n: number) => expect(n).toBeLessThanOrEqual(2)],
        ["safe", (n: number) => expect(n).toBe(20)],
    ] as const)("serverConnectionReuse %s: 20 clients, each on its own connection, one after another", async (reuse, expectConnections) => {
        const lab = await startLab({ api: 1, stream: 1, settings: { serverConnectionReuse: reuse } });
        for (let i = 0; i < 20; i++) {
            const res = await get(lab.hp.httpPort, `/api/v1/feed?i=${i}`, { connection: "close" }, { agent: false });
            expect(res.status).toBe(200);
        }
        expect(lab.api[0].requests).toBe(20);
        expectConnections(lab.api[0].requestConnections);
    });

    test("without a cookie, requests alternate round-robin and each response sets the sticky cookie (HttpOnly, no Secure over HTTP)", async () => {
        const lab = await startLab({ api: 3, stream: 1, settings: { healthCheckIntervalMs: 200 } });
        const names = lab.api.map((b) => b.name).sort();
        const served: string[] = [];
        for (let i = 0; i < 9; i++) {
            const res = await get(lab.hp.httpPort, `/api/v1/tracks?i=${i}`);
            expect(res.status).toBe(200);
            const backend = backendOf(res) as string;
            served.push(backend);
            const cookie = setCookie(res, COOKIE);
            expect(cookie).toBeDefined();
            // The value is the server's opaque id, not its name.
            expect(cookie!.value).toBe(cookieValue("api_pool", backend, ""));
            expect(cookie!.value).not.toContain("backend");
            expect(cookie!.attributes).toHaveProperty("httponly");
            expect(cookie!.attributes).not.toHaveProperty("secure");
            expect(cookie!.attributes.path).toBe("/");
        }
        console.log(`round-robin order: ${served.join(" ")}`);
        // Every window of 3 consecutive requests hits all 3 servers, and the cycle repeats.
        for (let i = 0; i + 3 <= served.length; i++) expect([...served.slice(i, i + 3)].sort()).toEqual(names);
        for (let i = 3; i < served.length; i++) expect(served[i]).toBe(served[i - 3]);
    });

    test("with the sticky cookie, 100 requests all reach the pinned server, which never sees the cookie (indirect)", async () => {
        const lab = await startLab({ api: 3, stream: 1, settings: { healthCheckIntervalMs: 200 } });
        const agent = keepAliveAgent(4);
        try {
            for (const [name, value] of cookiesOf(lab)) {
                const before = lab.api.map((b) => b.requests);
                for (let i = 0; i < 100; i++) {
                    const res = await request({
                        port: lab.hp.httpPort,
                        path: `/api/v1/me?i=${i}`,
                        headers: { cookie: `${COOKIE}=${value}; session=abc123` },
                        agent: i % 2 === 0 ? agent : false,
                    });
                    expect(res.status).toBe(200);
                    expect(backendOf(res)).toBe(name);
                    // Valid cookie: nothing to re-insert.
                    expect(res.headers["set-cookie"]).toBeUndefined();
                    // indirect: the sticky cookie is stripped, the application's cookies are kept.
                    expect(echo(res).headers.cookie).toBe("session=abc123");
                }
                const after = lab.api.map((b) => b.requests);
                lab.api.forEach((b, i) => expect(after[i] - before[i]).toBe(b.name === name ? 100 : 0));
            }
            // Only the sticky cookie: the backend gets no Cookie header at all.
            const [name, value] = [...cookiesOf(lab)][1];
            const res = await get(lab.hp.httpPort, "/api/v1/me", { cookie: `${COOKIE}=${value}` });
            expect(backendOf(res)).toBe(name);
            expect(JSON.stringify(echo(res).headers)).not.toContain(COOKIE);
        } finally {
            agent.destroy();
        }
    });

    test("a WebSocket upgrade with the sticky cookie lands on the server that served the HTTP requests and outlives the client/server timeouts", async () => {
        const lab = await startLab({
            api: 3,
            stream: 1,
            settings: {
                healthCheckIntervalMs: 200,
                timeoutClientMs: 500,
                timeoutServerMs: 500,
                timeoutTunnelMs: 60_000,
            },
        });
        const first = await get(lab.hp.httpPort, "/api/v1/login", {});
        const pinned = backendOf(first) as string;
        const cookie = setCookie(first, COOKIE)!;
        for (let i = 0; i < 5; i++) {
            const res = await get(lab.hp.httpPort, `/api/v1/me?i=${i}`, { cookie: `${COOKIE}=${cookie.value}` });
            expect(backendOf(res)).toBe(pinned);
        }
        const target = lab.api.find((b) => b.name === pinned)!;
        const ws = await openWebSocket(lab.hp.httpPort, "/ws", { headers: { cookie: `${COOKIE}=${cookie.value}` } });
        expect(ws.headers["x-backend"]).toBe(pinned);
        expect(ws.headers["set-cookie"]).toBeUndefined();
        expect(target.openWebSockets()).toBe(1);

        // Messages every 300 ms for 2 s ...
        const started = Date.now();
        let sent = 0;
        while (Date.now() - started < 2000) {
            await ws.echo(`tick-${sent++}`);
            await sleep(300);
        }
        // ... then 1.5 s of silence: three times timeout client/server, far below timeout tunnel.
        await sleep(1500);
        expect(ws.isOpen()).toBe(true);
        await ws.echo("after-idle");
        console.log(`WebSocket on ${pinned}: ${sent} echoes over ${Date.now() - started} ms incl. a 1.5 s idle gap, still open`);
        expect(ws.isOpen()).toBe(true);
        expect(target.openWebSockets()).toBe(1);
        ws.close();
    });

    // The control for the test above: the idle gap is what timeoutTunnelMs governs.
    test("a WebSocket idle for longer than timeoutTunnelMs is closed", async () => {
        const lab = await startLab({ api: 2, stream: 1, settings: { timeoutClientMs: 500, timeoutServerMs: 500, timeoutTunnelMs: 700 } });
        const ws = await openWebSocket(lab.hp.httpPort, "/ws");
        await ws.echo("hello");
        const code = await within(ws.closed, 5000, "still open");
        expect(code).not.toBe("still open");
    });

    test("a server drained through the admin socket gets no new cookie-less traffic but keeps its sticky clients; ready brings it back", async () => {
        const lab = await startLab({ api: 3, stream: 1, settings: { healthCheckIntervalMs: 200 } });
        const [, drained] = lab.api;
        const cookie = cookiesOf(lab).get(drained.name)!;
        expect((await lab.hp.admin(`set server api_pool/${drained.name} state drain`)).trim()).toBe("");
        const state = await lab.hp.serverState("api_pool", drained.name);
        expect(state.adminState & ADMIN_STATE.FDRAIN).toBe(ADMIN_STATE.FDRAIN);

        const counts = async (n: number, headers?: Record<string, string>): Promise<Record<string, number>> => {
            const out: Record<string, number> = {};
            for (let i = 0; i < n; i++) {
                const res = await get(lab.hp.httpPort, `/api/v1/feed?i=${i}`, headers);
                expect(res.status).toBe(200);
                const name = backendOf(res) as string;
                out[name] = (out[name] ?? 0) + 1;
            }
            return out;
        };
        const whileDrained = await counts(30);
        expect(whileDrained[drained.name]).toBeUndefined();
        expect(Object.keys(whileDrained).sort()).toEqual(
            lab.api
                .filter((b) => b !== drained)
                .map((b) => b.name)
                .sort(),
        );
        const pinned = await counts(10, { cookie: `${COOKIE}=${cookie}` });
        expect(pinned).toEqual({ [drained.name]: 10 });

        expect((await lab.hp.admin(`set server api_pool/${drained.name} state ready`)).trim()).toBe("");
        expect((await lab.hp.serverState("api_pool", drained.name)).adminState).toBe(0);
        const afterReady = await counts(30);
        console.log(
            `drained: ${JSON.stringify(whileDrained)}, pinned: ${JSON.stringify(pinned)}, after ready: ${JSON.stringify(afterReady)}`,
        );
        for (const b of lab.api) expect(afterReady[b.name]).toBeGreaterThanOrEqual(5);
    });
});
