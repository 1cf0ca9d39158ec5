import { spawnSync } from "child_process";
import { chmodSync, readdirSync, readFileSync, writeFileSync } from "fs";
import * as path from "path";
import { findBinary } from "../../tests/support";
import { checkCpuList, CpuPlan, cpuPlan, onCpus, withOwnCpus } from "../lib/pin";
import { spawnGroup, stopGroup, tempDir } from "../lib/procs";
import { log, round } from "../lib/stats";
import { toolVersion } from "../lib/versions";
import { contenders, ProxyCostOptions, Row, Running, startLeanBackend } from "./proxy-cost";

/*
 * Instructions per request (BENCH_ONLY=instructions): the cost scenario's
 * HAProxy contenders (the product, its BENCH_COST_VARIANTS, the seed literal)
 * under valgrind's callgrind, on one core (so nbthread 1; children traced:
 * the master re-executes itself, which would leave valgrind). After a warm-up,
 * the worker's counters are zeroed, h2load sends exactly `requests` requests,
 * and the counters are dumped: instructions per request, and how many of
 * them memcpy/memmove executed (the L7 retries' buffer copy lands there).
 * Counts repeat on a noisy shared VM where CPU time does not: this confirms
 * what the CPU-time rows attribute. nginx is not run (its cost is the CPU
 * rows' business; this compares HAProxy configs).
 */

export const INSTRUCTION_ROWS: Row[] = ["http", "https", "h2"];

export interface InstructionsResult {
    haproxy_version: string;
    requests: number;
    /** row → contender → instructions per request, and those in memcpy/memmove. */
    per_request: Partial<Record<Row, Record<string, { ir: number; memcpy_ir: number }>>>;
}

/** haproxy under callgrind on `cpus`, dumps in `dir`: a wrapper the contenders start as their haproxy. */
function callgrindHaproxy(cpus: string, dir: string): string {
    const valgrind = findBinary("valgrind");
    const haproxy = findBinary("haproxy");
    if (valgrind === undefined) throw new Error("valgrind not found: apt-get install -y valgrind");
    if (haproxy === undefined) throw new Error("haproxy not found");
    for (const p of [valgrind, haproxy, dir])
        if (!/^\/[A-Za-z0-9._/-]+$/.test(p)) throw new Error(`a path this wrapper will not quote: ${p}`);
    // run-with-haproxy-root.sh puts a chroot script first on PATH: valgrind would need to run inside that
    // root (installed there, /proc mounted), which the runner does not provide. Said, not half-measured.
    if (readFileSync(haproxy).subarray(0, 4).toString("latin1") !== "\x7fELF")
        throw new Error(
            `${haproxy} is not the haproxy binary (a wrapper script?): the instructions scenario runs this machine's own haproxy only`,
        );
    const [cmd, args] = onCpus(checkCpuList(cpus), valgrind, [
        "--tool=callgrind",
        "-q",
        "--trace-children=yes",
        `--callgrind-out-file=${dir}/cg.%p`,
        haproxy,
    ]);
    const wrapper = path.join(dir, "haproxy");
    writeFileSync(wrapper, `#!/bin/sh\nexec ${[findBinary(cmd) ?? cmd, ...args].join(" ")} "$@"\n`);
    chmodSync(wrapper, 0o755);
    return wrapper;
}

/** callgrind_control on a running process: -z zeroes its counters, -d dumps them. */
function control(flag: "-z" | "-d", pid: number): void {
    const r = spawnSync("callgrind_control", [flag, String(pid)], { encoding: "utf8", timeout: 60_000 });
    if (r.status !== 0 || !/OK/.test(r.stdout)) throw new Error(`callgrind_control ${flag} ${pid}: ${r.stdout}${r.stderr}`);
}

/** The newest dump of `pid` in `dir`: its total instructions, and those in memcpy/memmove. */
export function readDump(dir: string, pid: number): { ir: number; memcpyIr: number } {
    const dumps = readdirSync(dir)
        .filter((f) => f.startsWith(`cg.${pid}.`))
        .sort((a, b) => Number(a.split(".").pop()) - Number(b.split(".").pop()));
    if (dumps.length === 0) throw new Error(`no callgrind dump of ${pid} in ${dir}`);
    const file = path.join(dir, dumps[dumps.length - 1]);
    const totals = /^totals: (\d+)/m.exec(readFileSync(file, "utf8"));
    if (!totals) throw new Error(`${file} has no totals line`);
    const annotate = spawnSync("callgrind_annotate", ["--threshold=100", "--auto=no", file], { encoding: "utf8", maxBuffer: 64 << 20 });
    let memcpyIr = 0;
    for (const line of annotate.stdout.split("\n")) {
        const m = /^\s*([\d,]+) \([\d. ]+%\)\s+\S*:(\S*(?:memcpy|memmove)\S*)/.exec(line);
        if (m) memcpyIr += Number(m[1].replace(/,/g, ""));
    }
    return { ir: Number(totals[1]), memcpyIr };
}

/** Exactly `requests` requests (HTTP/1.1 over `scheme`, or HTTP/2), 4 connections; fails on any that is not a 2xx. */
async function sendExactly(row: Row, c: Running, o: ProxyCostOptions, plan: CpuPlan, requests: number): Promise<void> {
    const port = row === "http" ? c.httpPort : (c.httpsPort as number);
    const url = `${row === "http" ? "http" : "https"}://127.0.0.1:${port}${o.path}`;
    const args = [`-n${requests}`, "-c4", row === "h2" ? "-m8" : "-m1", ...(row === "h2" ? [] : ["--h1"])];
    if (c.cookie !== undefined) args.push("-H", `cookie: ${c.cookie}`);
    const p = spawnGroup(...onCpus(plan.load, "h2load", [...args, url]));
    const code = await p.exited;
    const done = /(\d+) succeeded/.exec(p.stdout());
    const ok = /status codes: (\d+) 2xx/.exec(p.stdout());
    if (code !== 0 || Number(done?.[1]) !== requests || Number(ok?.[1]) !== requests) {
        await stopGroup(p, 100);
        throw new Error(`h2load ${row} on ${url}: not ${requests} 2xx answers:\n${p.stdout()}${p.stderr()}`);
    }
}

export async function measureInstructions(o: ProxyCostOptions & { requests: number }): Promise<InstructionsResult> {
    const plan = cpuPlan();
    return withOwnCpus(plan.load, () => measurePinned(o, plan));
}

async function measurePinned(o: ProxyCostOptions & { requests: number }, plan: CpuPlan): Promise<InstructionsResult> {
    const dir = tempDir("callgrind");
    const backend = await startLeanBackend(plan.load);
    const perRequest: InstructionsResult["per_request"] = {};
    try {
        const list = contenders(backend.ports, plan, { ...o, haproxyBin: callgrindHaproxy(plan.proxy, dir) }).filter(
            (c) => c.key !== "nginx",
        );
        for (const c of list) {
            const running = await c.start();
            try {
                const worker = await (running.workerPid as () => Promise<number>)();
                for (const row of INSTRUCTION_ROWS) {
                    if (row === "h2" && !running.h2) continue;
                    await sendExactly(row, running, o, plan, 200);
                    control("-z", worker);
                    await sendExactly(row, running, o, plan, o.requests);
                    control("-d", worker);
                    const { ir, memcpyIr } = readDump(dir, worker);
                    (perRequest[row] ??= {})[c.key] = { ir: Math.round(ir / o.requests), memcpy_ir: Math.round(memcpyIr / o.requests) };
                    log(
                        `instructions ${row} ${c.key}: ${round(ir / o.requests, 0)} per request, ${round(memcpyIr / o.requests, 0)} in memcpy/memmove`,
                    );
                }
            } finally {
                await running.stop();
            }
        }
    } finally {
        await backend.stop();
    }
    return { haproxy_version: toolVersion("haproxy", ["-v"]), requests: o.requests, per_request: perRequest };
}
