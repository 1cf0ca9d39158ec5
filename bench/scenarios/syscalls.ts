import { spawn } from "child_process";
import { readdirSync, readFileSync } from "fs";
import { findBinary } from "../../tests/support";
import { CpuPlan, cpuPlan, withOwnCpus } from "../lib/pin";
import { log, round } from "../lib/stats";
import { toolVersion } from "../lib/versions";
import { contenders, measureOnce, ProxyCostOptions, Row, Running, startLeanBackend } from "./proxy-cost";

/*
 * Syscalls per request (BENCH_ONLY=syscalls): the proxy-cost scenario's
 * contenders and load (pinned proxy, lean backend, sticky cookie), one run
 * per contender and row with strace counting every syscall of the proxy's
 * processes and threads (strace -f -c), divided by the requests the client
 * completed. Counts, not times: strace slows the proxy, never what it asks
 * the kernel for. This is where "each TLS record takes two recv calls" and
 * "HTTP/2 responses are sent one by one" are measured, per HAProxy release.
 */

export const SYSCALL_ROWS: Row[] = ["https", "h2"];

export interface SyscallsResult {
    haproxy_version: string;
    nginx_version: string;
    load: { seconds: number; connections: number; h2: { connections: number; streams: number }; path: string };
    /** row → contender → syscall → calls per request (EAGAIN and other errors included). */
    per_request: Partial<Record<Row, Record<string, Record<string, number>>>>;
    requests: Partial<Record<Row, Record<string, number>>>;
}

/** Every pid whose process group is one of `pgids` (the proxy's master and workers, or nginx's). */
function groupPids(pgids: number[]): number[] {
    const pids: number[] = [];
    for (const entry of readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        try {
            // Field 5 of /proc/<pid>/stat, after the ")" that ends the command name.
            const fields = readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1].split(" ");
            if (pgids.includes(Number(fields[2]))) pids.push(Number(entry));
        } catch {
            // gone meanwhile
        }
    }
    return pids;
}

/** strace -c's summary table: syscall → calls. */
export function parseStraceSummary(text: string): Record<string, number> {
    const calls: Record<string, number> = {};
    for (const line of text.split("\n")) {
        // "% time     seconds  usecs/call     calls    errors syscall", errors may be blank.
        const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?([a-z_0-9]+)\s*$/.exec(line);
        if (m && m[2] !== "total") calls[m[2]] = (calls[m[2]] ?? 0) + Number(m[1]);
    }
    return calls;
}

/** Runs `load` with strace attached to `pids` (threads followed); the syscall counts once it detached. */
async function traced<T>(pids: number[], load: () => Promise<T>): Promise<{ result: T; calls: Record<string, number> }> {
    const strace = findBinary("strace");
    if (strace === undefined) throw new Error("strace not found: apt-get install -y strace");
    const child = spawn(strace, ["-f", "-c", "-q", ...pids.flatMap((p) => ["-p", String(p)])], { stdio: ["ignore", "ignore", "pipe"] });
    let summary = "";
    child.stderr.on("data", (chunk: Buffer) => (summary += chunk.toString()));
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    // strace attaches before the load starts: it says nothing with -q, so give it a moment.
    await new Promise((resolve) => setTimeout(resolve, 500));
    try {
        const result = await load();
        child.kill("SIGINT");
        await exited;
        return { result, calls: parseStraceSummary(summary) };
    } finally {
        if (child.exitCode === null) child.kill("SIGKILL");
    }
}

export async function measureSyscalls(o: ProxyCostOptions): Promise<SyscallsResult> {
    const plan = cpuPlan();
    return withOwnCpus(plan.load, () => measurePinned(o, plan));
}

async function measurePinned(o: ProxyCostOptions, plan: CpuPlan): Promise<SyscallsResult> {
    const backend = await startLeanBackend(plan.load);
    const perRequest: SyscallsResult["per_request"] = {};
    const requests: SyscallsResult["requests"] = {};
    try {
        for (const c of contenders(backend.ports, plan, o)) {
            const running: Running = await c.start();
            try {
                for (const row of SYSCALL_ROWS) {
                    if (row === "h2" && !running.h2) continue;
                    await measureOnce(row, running, o, plan, 1);
                    const { result, calls } = await traced(groupPids(running.pgids), () => measureOnce(row, running, o, plan, o.seconds));
                    (perRequest[row] ??= {})[c.key] = Object.fromEntries(
                        Object.entries(calls)
                            .filter(([, n]) => n / result.requests >= 0.01)
                            .map(([name, n]) => [name, round(n / result.requests, 2)]),
                    );
                    (requests[row] ??= {})[c.key] = result.requests;
                    log(`syscalls ${row} ${c.key}: ${JSON.stringify(perRequest[row]?.[c.key])} per request (${result.requests} requests)`);
                }
            } finally {
                await running.stop();
            }
        }
    } finally {
        await backend.stop();
    }
    return {
        haproxy_version: toolVersion("haproxy", ["-v"]),
        nginx_version: toolVersion("nginx", ["-v"]),
        load: { seconds: o.seconds, connections: o.connections, h2: o.h2, path: o.path },
        per_request: perRequest,
        requests,
    };
}
