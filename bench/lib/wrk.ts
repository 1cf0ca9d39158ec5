import * as path from "path";
import { spawnGroup, stopGroup } from "./procs";

export const WRK_SCRIPT = path.join(__dirname, "..", "wrk-report.lua");

export interface WrkOptions {
    url: string;
    threads: number;
    connections: number;
    durationSec: number;
    /** Inspect every response and count non-2xx exactly (slower; for reload/failover). */
    countStatus?: boolean;
    /** wrk's per-request timeout; a request slower than this counts as a timeout error. */
    timeoutSec?: number;
    headers?: string[];
}

export interface WrkResult {
    requests: number;
    durationSec: number;
    rps: number;
    bytes: number;
    errors: { connect: number; read: number; write: number; status: number; timeout: number };
    /** connect + read + write + timeout: requests that got no HTTP answer. */
    socketErrors: number;
    /** Exact non-2xx count when countStatus was on, else wrk's own status>=400 count. */
    non2xx: number;
    ok2xx: number;
    latencyMs: { mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
    raw: string;
}

/** Parses the WRK_JSON line that bench/wrk-report.lua prints in done(). */
export function parseWrkOutput(stdout: string): WrkResult {
    const line = stdout.split("\n").find((l) => l.startsWith("WRK_JSON "));
    if (line === undefined) throw new Error(`wrk printed no WRK_JSON line:\n${stdout}`);
    const j = JSON.parse(line.slice("WRK_JSON ".length));
    const e = j.errors;
    const durationSec = j.duration_us / 1e6;
    const ms = (us: number) => us / 1000;
    return {
        requests: j.requests,
        durationSec,
        rps: j.requests / durationSec,
        bytes: j.bytes,
        errors: e,
        socketErrors: e.connect + e.read + e.write + e.timeout,
        non2xx: j.counted ? j.non2xx : e.status,
        ok2xx: j.counted ? j.ok2xx : j.requests - e.status,
        latencyMs: {
            mean: ms(j.latency_us.mean),
            p50: ms(j.latency_us.p50),
            p90: ms(j.latency_us.p90),
            p99: ms(j.latency_us.p99),
            p999: ms(j.latency_us.p999),
            max: ms(j.latency_us.max),
        },
        raw: stdout,
    };
}

/** Runs wrk (own process group, always stopped) and returns its parsed report. */
export async function runWrk(o: WrkOptions): Promise<WrkResult> {
    const url = new URL(o.url);
    if (url.hostname !== "127.0.0.1") throw new Error(`bench traffic goes to 127.0.0.1 only, not ${url.hostname}`);
    const args = [
        `-t${o.threads}`,
        `-c${o.connections}`,
        `-d${o.durationSec}s`,
        `--timeout`,
        `${o.timeoutSec ?? 5}s`,
        "-s",
        WRK_SCRIPT,
    ];
    for (const h of o.headers ?? []) args.push("-H", h);
    args.push(o.url);
    const env = { ...process.env, WRK_COUNT_STATUS: o.countStatus ? "1" : "0" };
    const p = spawnGroup("wrk", args, { env });
    const guard = setTimeout(() => void stopGroup(p, 500), (o.durationSec + 30) * 1000);
    try {
        const code = await p.exited;
        if (code !== 0) throw new Error(`wrk exited ${code}: ${p.stderr()}\n${p.stdout()}`);
        return parseWrkOutput(p.stdout());
    } finally {
        clearTimeout(guard);
        await stopGroup(p, 100);
    }
}
