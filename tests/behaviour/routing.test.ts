/*
 * Routing between the pools, forwarded headers, and the loopback-only
 * stats/metrics listener.
 */
import {
    backendOf,
    cleanupAll,
    echo,
    EchoBody,
    get,
    openWebSocket,
    rawRequest,
    request,
    REQUEST_PROBE,
    requireBinary,
    startLab,
} from "../support";

jest.setTimeout(60_000);

const describeWithHaproxy = requireBinary("haproxy");

describeWithHaproxy("routing and stats", () => {
    afterEach(cleanupAll);

    test("/stream/... goes to stream_pool, everything else (WebSocket upgrades included) to api_pool; backends see X-Forwarded-For/-Proto", async () => {
        const lab = await startLab({ api: 2, stream: 2, settings: { healthCheckIntervalMs: 1000 } });
        const apiNames = lab.api.map((b) => b.name);
        const streamNames = lab.stream.map((b) => b.name);
        const port = lab.hp.httpPort;

        const toStream = ["/stream/42/playlist.m3u8", "/stream/6f1c2b/seg-00001.ts?token=x", "/stream/7/"];
        const toApi = ["/", "/api/v1/tracks", "/api/v1/stream/42", "/streaming/42", "/stream", "/streams/42/x", "/ws"];
        for (const path of toStream) {
            const res = await get(port, path);
            expect({ path, status: res.status }).toEqual({ path, status: 200 });
            expect(streamNames).toContain(backendOf(res));
            expect(echo(res).path).toBe(path);
        }
        for (const path of toApi) {
            const res = await get(port, path);
            expect({ path, status: res.status }).toEqual({ path, status: 200 });
            expect(apiNames).toContain(backendOf(res));
            expect(echo(res).path).toBe(path);
        }

        // Forwarded headers, on both pools; a client-supplied X-Forwarded-Proto is overwritten.
        for (const path of ["/api/v1/me", "/stream/42/playlist.m3u8"]) {
            const plain = echo(await get(port, path));
            expect(plain.headers["x-forwarded-for"]).toBe("127.0.0.1");
            expect(plain.headers["x-forwarded-proto"]).toBe("http");
            const spoofed = echo(await get(port, path, { "x-forwarded-proto": "https", "x-forwarded-for": "198.51.100.7" }));
            expect(spoofed.headers["x-forwarded-proto"]).toBe("http");
            // The client's own X-Forwarded-For is dropped: the backend sees the real peer only, not "198.51.100.7, 127.0.0.1".
            expect(spoofed.headers["x-forwarded-for"]).toBe("127.0.0.1");
        }

        // WebSocket upgrades go to api_pool, on any path outside the stream prefix; the upgrade carries the headers too.
        for (const path of ["/ws", "/api/v1/chat/ws"]) {
            const ws = await openWebSocket(port, path);
            expect(apiNames).toContain(ws.headers["x-backend"]);
            await ws.echo("ping");
            const seen = await new Promise<EchoBody>((resolve) => {
                ws.ws.once("message", (data) => resolve(JSON.parse(data.toString()) as EchoBody));
                ws.ws.send(REQUEST_PROBE);
            });
            expect(seen.path).toBe(path);
            expect(seen.headers["x-forwarded-for"]).toBe("127.0.0.1");
            expect(seen.headers["x-forwarded-proto"]).toBe("http");
            ws.close();
        }
        for (const b of lab.stream) expect(b.openWebSockets()).toBe(0);
    });

    test("client-sent forwarding headers never reach a backend, and an Upgrade other than websocket (h2c) is refused with 400 before any backend sees it", async () => {
        const lab = await startLab({ api: 2, stream: 1, settings: { healthCheckIntervalMs: 1000 } });
        const port = lab.hp.httpPort;
        const seen = echo(
            await get(port, "/api/v1/me", {
                "x-forwarded-for": "6.6.6.6",
                forwarded: "for=6.6.6.6;proto=https",
                "x-real-ip": "6.6.6.6",
            }),
        ).headers;
        expect({ xff: seen["x-forwarded-for"], forwarded: seen.forwarded, realIp: seen["x-real-ip"] }).toEqual({
            xff: "127.0.0.1",
            forwarded: undefined,
            realIp: undefined,
        });

        const served = () => [...lab.api, ...lab.stream].reduce((n, b) => n + b.requests, 0);
        const before = served();
        for (const [upgrade, path] of [
            ["h2c", "/api/v1/me"],
            ["h2c", "/stream/42/playlist.m3u8"],
            ["TLS/1.2", "/"],
        ]) {
            const res = await get(port, path, {
                connection: "Upgrade, HTTP2-Settings",
                upgrade,
                "http2-settings": "AAMAAABkAARAAAAAAAIAAAAA",
            });
            expect({ upgrade, path, status: res.status }).toEqual({ upgrade, path, status: 400 });
        }
        expect(served()).toBe(before);
        // WebSocket upgrades still pass.
        const ws = await openWebSocket(port, "/ws");
        await ws.echo("still-open");
        ws.ws.close();
    });

    test("a NUL or other control character in a header is refused with 400 at the edge, never sent (and retried) to the servers that would reject it", async () => {
        const lab = await startLab({ api: 4, stream: 1, settings: { healthCheckIntervalMs: 1000 } });
        const rejected = () => lab.api.reduce((n, b) => n + b.rejected, 0);
        for (const [label, value] of [
            ["NUL", "a\x00b"],
            ["SOH", "a\x01b"],
            ["ESC", "a\x1bb"],
            ["DEL", "a\x7fb"],
        ]) {
            const answer = await rawRequest(
                lab.hp.httpPort,
                `GET /api/v1/me HTTP/1.1\r\nHost: veza.localhost\r\nX-Note: ${value}\r\nConnection: close\r\n\r\n`,
            );
            // Before the rule: 502 after every server of the pool had closed on the request.
            expect({ label, status: answer.split("\r\n")[0], rejectedByServers: rejected() }).toEqual({
                label,
                status: "HTTP/1.1 400 Bad request",
                rejectedByServers: 0,
            });
        }
        // A tab and bytes above 0x7f (Latin-1 in an old client's header) are legal and still pass.
        const legal = await rawRequest(
            lab.hp.httpPort,
            "GET /api/v1/me HTTP/1.1\r\nHost: veza.localhost\r\nX-Note: a\tb \xe9\r\nConnection: close\r\n\r\n",
        );
        expect(legal.split("\r\n")[0]).toBe("HTTP/1.1 200 OK");
    });

    test("stats and /metrics answer only on 127.0.0.1:<statsPort>; /stats needs the password; /metrics is Prometheus text with per-server state", async () => {
        const lab = await startLab({
            api: 2,
            stream: 1,
            settings: { healthCheckIntervalMs: 1000, statsUser: "ops", statsPassword: "s3cret-Pass.word" },
        });
        const { hp } = lab;
        const basic = (user: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}` });

        const anonymous = await get(hp.statsPort, "/stats");
        expect(anonymous.status).toBe(401);
        expect(String(anonymous.headers["www-authenticate"])).toContain('realm="veza-haproxy"');
        expect((await get(hp.statsPort, "/stats", basic("ops", "wrong-password"))).status).toBe(401);
        expect((await get(hp.statsPort, "/stats", basic("admin", "s3cret-Pass.word"))).status).toBe(401);
        const stats = await get(hp.statsPort, "/stats", basic("ops", "s3cret-Pass.word"));
        expect(stats.status).toBe(200);
        expect(stats.headers["content-type"]).toMatch(/^text\/html/);
        expect(stats.body).toContain("api_pool");
        expect(stats.body).toContain("backend-api-1");
        const csv = await get(hp.statsPort, "/stats;csv", basic("ops", "s3cret-Pass.word"));
        expect(csv.body).toMatch(/^# pxname,svname,/);

        expect((await hp.admin("set server api_pool/backend-api-2 state maint")).trim()).toBe("");
        const metrics = await get(hp.statsPort, "/metrics");
        expect(metrics.status).toBe(200);
        expect(metrics.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
        expect(metrics.body).toContain("# TYPE haproxy_server_status gauge");
        expect(metrics.body).toContain('haproxy_server_status{proxy="api_pool",server="backend-api-1",state="UP"} 1');
        expect(metrics.body).toContain('haproxy_server_status{proxy="api_pool",server="backend-api-2",state="MAINT"} 1');
        expect(metrics.body).toContain('haproxy_server_status{proxy="api_pool",server="backend-api-2",state="UP"} 0');
        expect(metrics.body).toContain('haproxy_server_status{proxy="stream_pool",server="stream-srv-1",state="UP"} 1');

        // Not on another loopback address: the listener is bound to 127.0.0.1 only.
        for (const host of ["127.0.0.2", "127.1.2.3"]) {
            const err = await request({ host, port: hp.statsPort, path: "/metrics", timeoutMs: 3000 }).then(
                (res) => `answered HTTP ${res.status}`,
                (e: NodeJS.ErrnoException) => e.code,
            );
            expect({ host, result: err }).toEqual({ host, result: "ECONNREFUSED" });
        }
        // Not on the public listener: /stats and /metrics there are ordinary api_pool requests.
        for (const path of ["/stats", "/metrics", "/stats;csv"]) {
            const res = await get(hp.httpPort, path, basic("ops", "s3cret-Pass.word"));
            expect(res.status).toBe(200);
            expect(lab.api.map((b) => b.name)).toContain(backendOf(res));
            expect(echo(res).path).toBe(path);
            expect(res.body).not.toContain("haproxy_");
        }
    });
});
