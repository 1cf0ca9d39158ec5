import { ChildProcess, spawn, SpawnOptions } from "child_process";
import { mkdtempSync, rmSync } from "fs";
import * as os from "os";
import * as path from "path";
import { cleanupAll as runCleanups } from "../../tests/support";

/*
 * Everything the bench starts goes through here: each child runs in its own
 * process group (detached), so stopping it kills the whole group (nginx
 * workers, haproxy master + workers, wrk), and `cleanupAll` (run from
 * run.ts's finally, on exit and on SIGINT/SIGTERM) stops whatever is left.
 * Only processes the bench itself started are ever signalled. Objects with a
 * stop() register it with the test kit's onCleanup (its one registry).
 */

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

export interface Spawned {
    child: ChildProcess;
    stdout: () => string;
    stderr: () => string;
    /** Resolves with the exit code (null when killed by a signal). */
    exited: Promise<number | null>;
}

/** Starts `cmd` in its own process group, collecting its output (last 256 KiB). */
export function spawnGroup(cmd: string, args: string[], options: SpawnOptions = {}, ipc = false): Spawned {
    const stdio: SpawnOptions["stdio"] = ipc ? ["ignore", "pipe", "pipe", "ipc"] : ["ignore", "pipe", "pipe"];
    const child = spawn(cmd, args, { ...options, detached: true, stdio });
    children.add(child);
    let out = "";
    let err = "";
    const keep = (s: string) => (s.length > 262144 ? s.slice(-262144) : s);
    child.stdout?.on("data", (d: Buffer) => (out = keep(out + d.toString())));
    child.stderr?.on("data", (d: Buffer) => (err = keep(err + d.toString())));
    const exited = new Promise<number | null>((resolve) => {
        child.on("exit", (code) => {
            children.delete(child);
            resolve(code);
        });
        child.on("error", (e) => {
            children.delete(child);
            err += String(e);
            resolve(-1);
        });
    });
    return { child, stdout: () => out, stderr: () => err, exited };
}

/** Signals the child's whole process group (never anything else). */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals = "SIGKILL"): void {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) {
        // Leader gone: its group may still hold workers (nginx, haproxy).
        if (child.pid !== undefined) {
            try {
                process.kill(-child.pid, signal);
            } catch {
                /* group empty */
            }
        }
        return;
    }
    try {
        process.kill(-child.pid, signal);
    } catch {
        try {
            child.kill(signal);
        } catch {
            /* already gone */
        }
    }
}

/** SIGTERM the group, then SIGKILL after `graceMs` if it is still there. */
export async function stopGroup(s: Spawned, graceMs = 2000): Promise<void> {
    killGroup(s.child, "SIGTERM");
    const timer = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), graceMs));
    if ((await Promise.race([s.exited, timer])) === "timeout") killGroup(s.child, "SIGKILL");
    await Promise.race([s.exited, new Promise((r) => setTimeout(r, 1000))]);
    killGroup(s.child, "SIGKILL"); // stragglers of the group, if any
}

export function tempDir(prefix: string): string {
    const dir = mkdtempSync(path.join(os.tmpdir(), `veza-bench-${prefix}-`));
    tempDirs.add(dir);
    return dir;
}

export function removeTempDir(dir: string): void {
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
}

function killRemainingSync(): void {
    for (const child of [...children]) killGroup(child, "SIGKILL");
    for (const dir of [...tempDirs]) {
        try {
            rmSync(dir, { recursive: true, force: true });
        } catch {
            /* best effort */
        }
    }
    tempDirs.clear();
}

/** The kit's registered cleanups (last registered first), then every process group and temp dir still left. */
export async function cleanupAll(): Promise<void> {
    // The kit runs every cleanup even when one fails; the bench reports the failures and keeps stopping.
    await runCleanups().catch((err: unknown) => process.stderr.write(`bench: ${String(err)}\n`));
    killRemainingSync();
}

let installed = false;

export function installExitHandlers(): void {
    if (installed) return;
    installed = true;
    process.on("exit", killRemainingSync);
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
        process.on(sig, () => {
            process.stderr.write(`\nbench: ${sig}, stopping everything it started...\n`);
            void cleanupAll().finally(() => process.exit(130));
        });
    }
}
