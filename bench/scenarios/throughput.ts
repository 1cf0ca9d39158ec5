import { groupsCpuMs, machineCpuMs } from "../lib/cpu";
import { log, median, round } from "../lib/stats";
import { runWrk, WrkResult } from "../lib/wrk";

export type ContenderKey = "direct" | "product" | "seed_literal" | "nginx";

export interface Contender {
    /** A ContenderKey in `npm run bench`; any unique name in bench/tune.ts. */
    key: string;
    label: string;
    port: number;
    /** Process groups of the proxy (haproxy master + workers, nginx master + workers). */
    proxyPgids: number[];
    /** Process groups of the backends this contender's requests reach. */
    backendPgids: number[];
}

export interface RunSample {
    rps: number;
    p50_ms: number;
    p99_ms: number;
    errors: number;
    /** CPU time per request, µs: load generator, proxy, backends. */
    cpu_us_per_req: { wrk: number; proxy: number; backends: number };
    /** Share of the whole machine's CPU that was busy during the run (0-1), everyone's processes included. */
    machine_busy: number;
}

/** A contender's medians over its runs, with the runs themselves. */
export interface ContenderSummary extends RunSample {
    label: string;
    runs: RunSample[];
}

export interface ThroughputOptions {
    rounds: number;
    seconds: number;
    threads: number;
    connections: number;
    path: string;
    warmupSeconds: number;
}

async function oneRun(c: Contender, o: ThroughputOptions, seconds: number): Promise<{ res: WrkResult; sample: RunSample }> {
    const proxy0 = groupsCpuMs(c.proxyPgids);
    const back0 = groupsCpuMs(c.backendPgids);
    const m0 = machineCpuMs();
    const res = await runWrk({
        url: `http://127.0.0.1:${c.port}${o.path}`,
        threads: o.threads,
        connections: o.connections,
        durationSec: seconds,
    });
    const m1 = machineCpuMs();
    const perReq = (ms: number) => round((ms * 1000) / Math.max(1, res.requests), 2);
    const sample: RunSample = {
        rps: Math.round(res.rps),
        p50_ms: res.latencyMs.p50,
        p99_ms: res.latencyMs.p99,
        errors: res.socketErrors + res.non2xx,
        cpu_us_per_req: {
            wrk: perReq(res.cpuMs),
            proxy: perReq(groupsCpuMs(c.proxyPgids) - proxy0),
            backends: perReq(groupsCpuMs(c.backendPgids) - back0),
        },
        machine_busy: round((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total), 3),
    };
    return { res, sample };
}

/**
 * wrk against every contender, alternating run by run (the starting contender
 * rotates each round so none always runs first), `rounds` runs each after a
 * short warm-up; medians per contender.
 */
export async function measureThroughput(contenders: Contender[], o: ThroughputOptions): Promise<Map<string, ContenderSummary>> {
    for (const c of contenders) await oneRun(c, o, o.warmupSeconds);
    const samples = new Map<string, RunSample[]>(contenders.map((c) => [c.key, []]));
    for (let r = 0; r < o.rounds; r++) {
        for (let i = 0; i < contenders.length; i++) {
            const c = contenders[(i + r) % contenders.length];
            const { sample } = await oneRun(c, o, o.seconds);
            samples.get(c.key)?.push(sample);
            log(
                `throughput round ${r + 1}/${o.rounds} ${c.label}: ${sample.rps} rps, p99 ${sample.p99_ms} ms, ` +
                    `cpu/req wrk ${sample.cpu_us_per_req.wrk} proxy ${sample.cpu_us_per_req.proxy} backends ${sample.cpu_us_per_req.backends} µs, ` +
                    `machine busy ${Math.round(sample.machine_busy * 100)}%${sample.errors ? `, ERRORS ${sample.errors}` : ""}`,
            );
        }
    }
    const out = new Map<string, ContenderSummary>();
    for (const c of contenders) {
        const runs = samples.get(c.key) ?? [];
        const med = (f: (s: RunSample) => number) => median(runs.map(f));
        out.set(c.key, {
            label: c.label,
            rps: Math.round(med((s) => s.rps)),
            p50_ms: round(
                med((s) => s.p50_ms),
                3,
            ),
            p99_ms: round(
                med((s) => s.p99_ms),
                3,
            ),
            errors: runs.reduce((sum, s) => sum + s.errors, 0),
            cpu_us_per_req: {
                wrk: round(
                    med((s) => s.cpu_us_per_req.wrk),
                    2,
                ),
                proxy: round(
                    med((s) => s.cpu_us_per_req.proxy),
                    2,
                ),
                backends: round(
                    med((s) => s.cpu_us_per_req.backends),
                    2,
                ),
            },
            machine_busy: round(
                med((s) => s.machine_busy),
                3,
            ),
            runs,
        });
    }
    return out;
}
