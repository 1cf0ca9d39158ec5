import { BackendProcess } from "../lib/backends";
import { productSettings, startNginx, startProduct, startProductVariant, startSeedLiteral } from "../lib/contenders";
import { sleep } from "../../tests/support";
import { log, nowMs, round } from "../lib/stats";
import { startWrk } from "../lib/wrk";

export interface FailoverRun {
    requests: number;
    errors: number;
    non2xx: number;
    socket_errors: number;
    socket_errors_by_kind: { connect: number; read: number; write: number; timeout: number };
    /** From the kill to haproxy marking the server DOWN. */
    kill_to_down_ms: number;
    retries: number;
    redispatches: number;
}

export interface FailoverResult {
    requests: number;
    product_errors: number;
    seed_literal_errors: number;
    /** The product without L7 retries (the no-l7-retries variant): what the retries buy. */
    product_without_retries_errors?: number;
    check_interval_ms: number;
    product: FailoverRun;
    seed_literal: FailoverRun;
    product_without_retries?: FailoverRun;
    /**
     * nginx with its default proxy_next_upstream (error timeout: a GET whose
     * server fails is passed to the next one) and no active health checks
     * (open-source nginx has none): its errors over the product's window from
     * the kill to DOWN, plus the same drain.
     */
    nginx_errors?: number;
    nginx?: FailoverRun;
}

export interface Target {
    httpPort: number;
    /** HAProxy's stats; absent for a proxy without health checks (nginx), which is given a fixed window instead. */
    stat?(): Promise<Record<string, string>[]>;
}

async function statusOf(t: Target, backend: string, server: string): Promise<Record<string, string>> {
    if (t.stat === undefined) throw new Error("statusOf: this target has no stats");
    const row = (await t.stat()).find((r) => r.pxname === backend && r.svname === server);
    if (row === undefined) throw new Error(`no stat row ${backend}/${server}`);
    return row;
}

/**
 * Under steady wrk load, kill backend-api-1 outright (FakeBackend.kill: every
 * socket destroyed, listener closed) right after a health check found it UP,
 * and count every client-visible error (non-2xx + socket errors) until haproxy
 * marks it DOWN, plus a drain period so requests stuck in connect retries to
 * the dead server (the seed's 3 retries x 1 s turn-around) are counted too.
 */
export async function oneFailover(
    t: Target,
    victim: BackendProcess,
    o: { threads: number; connections: number; drainMs: number; windowMs?: number },
): Promise<FailoverRun> {
    await victim.restart().catch(() => undefined); // a previous run may have killed it
    // Wait until both api servers are UP (a restarted one needs `rise` checks).
    const deadline = Date.now() + 30000;
    while (
        t.stat !== undefined &&
        ((await statusOf(t, "api_pool", "backend-api-1")).status !== "UP" ||
            (await statusOf(t, "api_pool", "backend-api-2")).status !== "UP")
    ) {
        if (Date.now() > deadline) throw new Error("api servers not UP before the failover run");
        await sleep(100);
    }
    const wrk = startWrk({
        url: `http://127.0.0.1:${t.httpPort}/api/v1/bench`,
        threads: o.threads,
        connections: o.connections,
        durationSec: 120,
        countStatus: true,
        timeoutSec: 10,
    });
    let killToDown: number;
    try {
        await sleep(1500);
        // Kill right after a health check went through, so the window until DOWN is the full fall x inter
        // (a proxy without health checks sends none: it gets the fixed window).
        const checks = await victim.healthChecks();
        while (t.stat !== undefined && (await victim.healthChecks()) === checks) await sleep(10);
        const t0 = nowMs();
        await victim.kill();
        while (t.stat === undefined && nowMs() - t0 < (o.windowMs ?? 0)) await sleep(20);
        for (; t.stat !== undefined;) {
            const row = await statusOf(t, "api_pool", "backend-api-1");
            if (row.status.startsWith("DOWN")) break;
            if (nowMs() - t0 > 60000) throw new Error("backend-api-1 never marked DOWN");
            await sleep(20);
        }
        killToDown = nowMs() - t0;
        await sleep(o.drainMs);
    } finally {
        wrk.interrupt();
    }
    const res = await wrk.done;
    const after = t.stat === undefined ? {} : await statusOf(t, "api_pool", "BACKEND");
    return {
        requests: res.requests,
        errors: res.non2xx + res.socketErrors,
        non2xx: res.non2xx,
        socket_errors: res.socketErrors,
        socket_errors_by_kind: { connect: res.errors.connect, read: res.errors.read, write: res.errors.write, timeout: res.errors.timeout },
        kill_to_down_ms: round(killToDown, 0),
        retries: Number(after.wretr || 0),
        redispatches: Number(after.wredis || 0),
    };
}

export async function measureFailover(
    backends: { api: BackendProcess[]; stream: BackendProcess[] },
    o: { threads: number; connections: number; checkIntervalMs: number },
): Promise<FailoverResult> {
    const [a1, a2] = backends.api;
    const drainMs = 4000;
    const settings = productSettings([a1, a2], backends.stream, { healthCheckIntervalMs: o.checkIntervalMs });
    /** One contender's failover run, the contender stopped whatever happens. */
    const run = async <T extends Target & { stop(): Promise<unknown> }>(
        what: string,
        started: T,
        window?: number,
    ): Promise<FailoverRun> => {
        let r: FailoverRun;
        try {
            r = await oneFailover(started, a1, { ...o, drainMs, windowMs: window });
        } finally {
            await started.stop();
        }
        log(
            `failover ${what}: ${r.errors} errors in ${r.requests} requests, ` +
                (window === undefined
                    ? `DOWN after ${r.kill_to_down_ms} ms, ${r.retries} retries, ${r.redispatches} redispatches`
                    : `over the product's ${r.kill_to_down_ms} ms window`),
        );
        return r;
    };
    const p = await run("product", await startProduct(settings));
    const s = await run("seed literal", await startSeedLiteral([a1, a2], backends.stream, o.checkIntervalMs));
    const n = await run("product without L7 retries", await startProductVariant(settings, "no-l7-retries"));
    const nginx = await startNginx([a1, a2], backends.stream);
    const x = await run(
        "nginx (proxy_next_upstream error timeout)",
        { httpPort: nginx.httpPort, stop: () => nginx.stop() },
        p.kill_to_down_ms,
    );
    await a1.restart().catch(() => undefined);
    return {
        requests: p.requests + s.requests + n.requests + x.requests,
        product_errors: p.errors,
        seed_literal_errors: s.errors,
        product_without_retries_errors: n.errors,
        check_interval_ms: o.checkIntervalMs,
        product: p,
        seed_literal: s,
        product_without_retries: n,
        nginx_errors: x.errors,
        nginx: x,
    };
}
