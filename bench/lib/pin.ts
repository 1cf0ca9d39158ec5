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
    if (!/^[0-9]+(-[0-9]+)?$/.test(cpus)) throw new Error(`cpu list must be N or N-M, got ${JSON.stringify(cpus)}`);
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
