import { spawnSync } from "child_process";
import { chmodSync, writeFileSync } from "fs";
import * as os from "os";
import * as path from "path";
import { findBinary } from "../../tests/support";
import { tempDir } from "./procs";

/*
 * CPU pinning for the proxy-cost scenario. The proxy under test gets a core
 * of its own and everything else (load generator, lean backend) the others,
 * so the proxy's CPU per request is not mixed with theirs and a proxy that
 * sizes itself from its CPU set (HAProxy's nbthread, one nginx worker) runs
 * the same single-core shape for every contender.
 */

export interface CpuPlan {
    /** The proxy's core. */
    proxy: string;
    /** Load generator and lean backend: every other core. */
    load: string;
}

/** A taskset CPU list as the bench writes them ("1", "1-3"); anything else is refused before it reaches a command. */
export function checkCpuList(cpus: string): string {
    if (!/^[0-9]+(-[0-9]+)?$/.test(cpus)) throw new Error(`cpu list must be N or N-M, got ${JSON.stringify(cpus)}`);
    return cpus;
}

/** `cmd args` to spawn, under `taskset -c cpus` when cpus is given. */
export function onCpus(cpus: string | undefined, cmd: string, args: string[]): [string, string[]] {
    return cpus === undefined ? [cmd, args] : ["taskset", ["-c", checkCpuList(cpus), cmd, ...args]];
}

/**
 * Runs `fn` with this (bench) process's threads on `cpus`, then gives them
 * their CPU set back: children spawned meanwhile inherit it, later ones must
 * not.
 */
export async function withOwnCpus<T>(cpus: string, fn: () => Promise<T>): Promise<T> {
    const mask = /: ([0-9a-f]+)\s*$/.exec(spawnSync("taskset", ["-p", String(process.pid)], { encoding: "utf8" }).stdout)?.[1];
    if (mask === undefined) throw new Error("taskset -p printed no affinity mask");
    const setAffinity = (args: string[]) => {
        const r = spawnSync("taskset", ["-a", "-p", ...args, String(process.pid)], { encoding: "utf8" });
        if (r.status !== 0) throw new Error(`taskset ${args.join(" ")}: ${r.stderr}`);
    };
    setAffinity(["-c", checkCpuList(cpus)]);
    try {
        return await fn();
    } finally {
        setAffinity([mask]);
    }
}

export function cpuPlan(cpus = os.cpus().length): CpuPlan {
    if (cpus < 2)
        throw new Error(`the proxy-cost scenario needs 2 cores (the proxy on one, load and backend on the rest); this machine has ${cpus}`);
    return { proxy: "0", load: cpus === 2 ? "1" : `1-${cpus - 1}` };
}

/**
 * A wrapper script that execs `name` (found on PATH, so the chrooted HAProxy
 * 3.0 of run-with-haproxy-root.sh too) under `taskset -c cpus`. exec keeps
 * the pid: the caller's process group and /proc accounting see the real
 * process, which inherits the CPU set, as its workers and threads do.
 */
export function pinnedBinary(name: string, cpus: string): string {
    checkCpuList(cpus);
    const taskset = findBinary("taskset");
    if (taskset === undefined) throw new Error("taskset not found: apt-get install -y util-linux");
    const bin = findBinary(name);
    if (bin === undefined) throw new Error(`${name} not found`);
    if (!/^\/[A-Za-z0-9._/-]+$/.test(bin)) throw new Error(`${name} lives at a path this wrapper will not quote: ${bin}`);
    const wrapper = path.join(tempDir(`pin-${name}`), name);
    writeFileSync(wrapper, `#!/bin/sh\nexec ${taskset} -c ${cpus} ${bin} "$@"\n`);
    chmodSync(wrapper, 0o755);
    return wrapper;
}
