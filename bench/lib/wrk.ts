import * as path from "path";
import { checkCpuList } from "./pin";
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
    /** Run wrk under `taskset -c cpus` (lib/pin.ts's cpuPlan().load). */
    cpus?: string;
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
    /** wrk's own CPU time (user + system), ms. */
    cpuMs: number;
    raw: string;
}

function seconds(t: string): number {
    const m = /^(\d+)m([\d.]+)s$/.exec(t);
    return m ? Number(m[1]) * 60 + Number(m[2]) : NaN;
}

/** Children's user+system time from bash `times` (second line after WRK_TIMES), ms. */
function parseTimes(stdout: string): number {
    const lines = stdout.split("\n");
    const at = lines.indexOf("WRK_TIMES");
    if (at === -1 || lines[at + 2] === undefined) return NaN;
    const [user, sys] = lines[at + 2].trim().split(/\s+/);
    return (seconds(user) + seconds(sys)) * 1000;
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
        cpuMs: parseTimes(stdout),
        raw: stdout,
    };
}

export interface RunningWrk {
    done: Promise<WrkResult>;
    /** SIGINT: wrk stops early and still prints its report (and runs done()). */
    interrupt(): void;
}

/** Starts wrk (own process group, always stopped); `done` resolves with its parsed report. */
export function startWrk(o: WrkOptions): RunningWrk {
    const url = new URL(o.url);
    if (url.hostname !== "127.0.0.1") throw new Error(`bench traffic goes to 127.0.0.1 only, not ${url.hostname}`);
    const args = [`-t${o.threads}`, `-c${o.connections}`, `-d${o.durationSec}s`, `--timeout`, `${o.timeoutSec ?? 5}s`, "-s", WRK_SCRIPT];
    for (const h of o.headers ?? []) args.push("-H", h);
    args.push(o.url);
    if (o.cpus !== undefined) checkCpuList(o.cpus);
    const env = { ...process.env, WRK_COUNT_STATUS: o.countStatus ? "1" : "0", WRK_CPUS: o.cpus ?? "" };
    // bash's `times` reports wrk's user+system CPU once it has exited.
    const run = o.cpus === undefined ? 'wrk "$@"' : 'taskset -c "$WRK_CPUS" wrk "$@"';
    const p = spawnGroup("bash", ["-c", `${run}; rc=$?; echo WRK_TIMES; times; exit $rc`, "wrk", ...args], { env });
    const guard = setTimeout(() => void stopGroup(p, 500), (o.durationSec + 30) * 1000);
    const done = (async () => {
        try {
            const code = await p.exited;
            if (code !== 0) throw new Error(`wrk exited ${code}: ${p.stderr()}\n${p.stdout()}`);
            return parseWrkOutput(p.stdout());
        } finally {
            clearTimeout(guard);
            await stopGroup(p, 100);
        }
    })();
    return {
        done,
        interrupt: () => {
            // SIGINT to the group: wrk stops and reports; bash sees wrk exit normally and goes on to `times`.
            if (p.child.exitCode === null && p.child.pid !== undefined) {
                try {
                    process.kill(-p.child.pid, "SIGINT");
                } catch {
                    /* gone */
                }
            }
        },
    };
}

export function runWrk(o: WrkOptions): Promise<WrkResult> {
    return startWrk(o).done;
}
