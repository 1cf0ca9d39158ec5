/*
 * Per-client rate limits on the real rendered config: clients are
 * told apart by their loopback source address (127.0.0.2, .3, ...), as
 * different hosts would be. A refused request is answered 429 with
 * Retry-After by HAProxy itself, never reaches a server, and is counted on
 * the veza_rate_limited line of the stats and /metrics. Behind trusted
 * proxies the client is the address the proxy reports, and nobody else can
 * choose it.
 */
import {
    cleanupAll,
    echo,
    FakeBackend,
    get,
    HttpResponse,
    keepAliveAgent,
    manyNetworks,
    request,
    requireBinary,
    startLab,
} from "../support";

jest.setTimeout(60_000);

const describeWithHaproxy = requireBinary("haproxy");

const served = (backends: FakeBackend[]) => backends.reduce((n, b) => n + b.requests, 0);

/** `count` requests one after the other from `source`; their statuses, and the Retry-After of each 429. */
async function burst(port: number, source: string, count: number, headers?: Record<string, string>): Promise<HttpResponse[]> {
    const answers: HttpResponse[] = [];
    for (let i = 0; i < count; i++) answers.push(await request({ port, path: "/api/v1/me", localAddress: source, headers }));
    return answers;
}

const statuses = (answers: HttpResponse[]) => answers.map((a) => a.status);

describeWithHaproxy("per-client rate limits", () => {
    afterEach(cleanupAll);

    test("past `requests` in the period a client gets 429 with Retry-After, which no server sees and the stats and /metrics count; another client and an allowlisted one are unaffected", async () => {
        const lab = await startLab({
            api: 2,
            stream: 1,
            settings: { healthCheckIntervalMs: 1000, rateLimit: { requests: 5, periodSeconds: 30, allowlist: ["127.0.0.4"] } },
        });
        const port = lab.hp.httpPort;
        const before = served(lab.api);

        const limited = await burst(port, "127.0.0.2", 8);
        expect(statuses(limited)).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
        expect(limited[5].headers["retry-after"]).toBe("30");
        expect(limited[5].body).toBe("too many requests from this address");
        expect(statuses(await burst(port, "127.0.0.3", 3))).toEqual([200, 200, 200]);
        expect(statuses(await burst(port, "127.0.0.4", 12))).toEqual(new Array(12).fill(200));
        // The stream pool is limited alike: it is the client's budget, not a pool's.
        expect((await request({ port, path: "/stream/42/playlist.m3u8", localAddress: "127.0.0.2" })).status).toBe(429);

        expect(served(lab.api) - before).toBe(5 + 3 + 12);
        expect(served(lab.stream)).toBe(0);
        expect((await lab.hp.statRow("veza_rate_limited", "BACKEND")).hrsp_4xx).toBe("4");
        const metrics = (await get(lab.hp.statsPort, "/metrics")).body;
        expect(metrics).toContain('haproxy_backend_http_responses_total{proxy="veza_rate_limited",code="4xx"} 4\n');
        console.log(
            `rate limit: 127.0.0.2 refused 4 of 9, 127.0.0.3 0 of 3, allowlisted 127.0.0.4 0 of 12; servers saw ${served(lab.api) - before}`,
        );
    });

    test("behind a trusted proxy each client it reports has its own budget and the backend sees the proxy's X-Forwarded-For; from anyone else X-Forwarded-For is dropped and cannot dodge the limit", async () => {
        const lab = await startLab({
            api: 2,
            stream: 1,
            settings: { healthCheckIntervalMs: 1000, trustedProxies: ["127.0.0.9"], rateLimit: { requests: 3, periodSeconds: 30 } },
        });
        const port = lab.hp.httpPort;

        // The proxy's header is kept and the proxy appended: what the backend trusts is the proxy's word.
        const seen = echo(
            await request({ port, path: "/api/v1/me", localAddress: "127.0.0.9", headers: { "x-forwarded-for": "198.51.100.1" } }),
        );
        expect(seen.headers["x-forwarded-for"]).toBe("198.51.100.1, 127.0.0.9");
        // A client that wrote its own entry ahead of the proxy's is counted by the address the proxy saw.
        const behind = (client: string, n: number) => burst(port, "127.0.0.9", n, { "x-forwarded-for": `6.6.6.6, ${client}` });
        expect(statuses(await behind("198.51.100.1", 3))).toEqual([200, 200, 429]);
        expect(statuses(await behind("198.51.100.2", 3))).toEqual([200, 200, 200]);

        // Not a trusted proxy: its X-Forwarded-For is dropped, and a new one per request buys nothing.
        const spoofer = await Promise.all(
            [1, 2, 3, 4, 5].map(async (i) =>
                request({ port, path: "/api/v1/me", localAddress: "127.0.0.2", headers: { "x-forwarded-for": `203.0.113.${i}` } }),
            ),
        );
        expect(statuses(spoofer).sort()).toEqual([200, 200, 200, 429, 429]);
        const ok = spoofer.find((a) => a.status === 200) as HttpResponse;
        expect(echo(ok).headers["x-forwarded-for"]).toBe("127.0.0.2");
    });

    test("lists longer than one config line (1,000 trusted proxies, 1,000 allowlist entries) hold to their last entry: its X-Forwarded-For is kept, a proxy named in it is looked behind, the allowlisted client is never limited, per request or per connection", async () => {
        const lab = await startLab({
            api: 2,
            stream: 1,
            settings: {
                healthCheckIntervalMs: 1000,
                trustedProxies: [...manyNetworks(998, 30), "127.0.0.8", "127.0.0.9"],
                rateLimit: {
                    requests: 2,
                    periodSeconds: 30,
                    maxConcurrentPerClient: 1,
                    allowlist: [...manyNetworks(999, 31), "127.0.0.4"],
                },
            },
        });
        const port = lab.hp.httpPort;

        const seen = echo(
            await request({ port, path: "/api/v1/me", localAddress: "127.0.0.9", headers: { "x-forwarded-for": "198.51.100.1" } }),
        );
        expect(seen.headers["x-forwarded-for"]).toBe("198.51.100.1, 127.0.0.9");
        // 127.0.0.8 in the header is a trusted proxy too: the client is the entry left of it.
        const behind = (client: string, n: number) => burst(port, "127.0.0.9", n, { "x-forwarded-for": `6.6.6.6, ${client}, 127.0.0.8` });
        expect(statuses(await behind("198.51.100.7", 3))).toEqual([200, 200, 429]);
        expect(statuses(await behind("198.51.100.8", 2))).toEqual([200, 200]);

        expect(statuses(await burst(port, "127.0.0.4", 6))).toEqual(new Array(6).fill(200));
        // Three connections held at once from the allowlisted client, where one is the limit.
        const agent = keepAliveAgent(3);
        try {
            const held = await Promise.all([0, 1, 2].map(() => request({ port, path: "/api/v1/me", localAddress: "127.0.0.4", agent })));
            expect(statuses(held)).toEqual([200, 200, 200]);
        } finally {
            agent.destroy();
        }
        expect((await lab.hp.statRow("veza_http", "FRONTEND")).dcon).toBe("0");
    });

    test("a client holding maxConcurrentPerClient connections has one more closed as it is accepted, counted as a denied connection; other clients are unaffected, and a closed connection frees its slot", async () => {
        const lab = await startLab({
            api: 2,
            stream: 1,
            settings: { healthCheckIntervalMs: 1000, rateLimit: { requests: 1000, periodSeconds: 10, maxConcurrentPerClient: 2 } },
        });
        const port = lab.hp.httpPort;
        // Two keep-alive connections from 127.0.0.5, left open and idle after their request.
        const agent = keepAliveAgent(2);
        const held = await Promise.all([0, 1].map(() => request({ port, path: "/api/v1/me", localAddress: "127.0.0.5", agent })));
        expect(statuses(held)).toEqual([200, 200]);

        // Closed before a byte of the request is read: no answer at all.
        const third = await request({ port, path: "/api/v1/me", localAddress: "127.0.0.5" }).then(
            (res) => `answered ${res.status}`,
            (error: NodeJS.ErrnoException) => error.code,
        );
        expect(["ECONNRESET", "EPIPE"]).toContain(third);
        expect((await lab.hp.statRow("veza_http", "FRONTEND")).dcon).toBe("1");
        expect((await request({ port, path: "/api/v1/me", localAddress: "127.0.0.6" })).status).toBe(200);

        agent.destroy();
        const after = await lab.hp.waitFor(
            async () => {
                const res = await request({ port, path: "/api/v1/me", localAddress: "127.0.0.5" });
                return res.status === 200 ? res : undefined;
            },
            { timeoutMs: 5_000, what: "127.0.0.5 served again once its connections closed" },
        );
        expect(after.status).toBe(200);
    });
});
