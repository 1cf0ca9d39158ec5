import { readdirSync, readFileSync } from "fs";

/*
 * CPU accounting from /proc, so a run can say where the CPU went (load
 * generator, proxy, backends) per request. On a shared 2-core machine
 * requests/s is noisy; CPU time per request is much steadier and explains the
 * throughput ratios.
 */

const TICKS_PER_SECOND = 100; // Linux USER_HZ (getconf CLK_TCK) on x86_64

/** utime+stime (ms) of every live process whose process group is `pgid`. */
export function groupCpuMs(pgid: number): number {
    let ticks = 0;
    for (const entry of readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        let stat: string;
        try {
            stat = readFileSync(`/proc/${entry}/stat`, "utf8");
        } catch {
            continue;
        }
        // Fields after "(comm)": state ppid pgrp ... utime(14) stime(15), 1-based overall.
        const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        if (Number(rest[2]) !== pgid) continue;
        ticks += Number(rest[11]) + Number(rest[12]);
    }
    return (ticks * 1000) / TICKS_PER_SECOND;
}

export function groupsCpuMs(pgids: number[]): number {
    return pgids.reduce((sum, pgid) => sum + groupCpuMs(pgid), 0);
}

/** The tick counters of /proc/stat's `cpu` (whole machine) or `cpuN` line: user nice system idle iowait irq softirq steal ... */
function procStatTicks(name: string): number[] {
    const line = readFileSync("/proc/stat", "utf8")
        .split("\n")
        .find((l) => l.startsWith(`${name} `));
    if (line === undefined) throw new Error(`/proc/stat has no ${name} line`);
    return line.trim().split(/\s+/).slice(1).map(Number);
}

/** Busy and total CPU time (ms) of the whole machine, from /proc/stat. */
export function machineCpuMs(): { busy: number; total: number } {
    const v = procStatTicks("cpu");
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = v[3] + v[4];
    return { busy: ((total - idle) * 1000) / TICKS_PER_SECOND, total: (total * 1000) / TICKS_PER_SECOND };
}

/**
 * Busy time (ms) of one core from /proc/stat: user, nice, system, irq and
 * softirq, so also the network work the kernel accounts to no process.
 */
export function coreBusyMs(core: number): number {
    const v = procStatTicks(`cpu${core}`);
    return ((v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * 1000) / TICKS_PER_SECOND;
}
