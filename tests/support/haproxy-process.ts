import { ChildProcess, spawn } from "child_process";
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "fs";
import { createConnection } from "net";
import { tmpdir } from "os";
import * as path from "path";
import { renderHaproxyConfig } from "../../components/render";
import { HaproxySettings } from "../../components/settings";
import { onCleanup } from "./cleanup";
import { freePort } from "./ports";
import { findBinary } from "./requirements";
import { sleep, waitFor, WaitOptions, within } from "./time";

/*
 * Runs the REAL rendered haproxy.cfg, unprivileged, on 127.0.0.1: only the
 * process-level settings (ports, socket/state paths, chroot/user/group, log
 * target) are filled in; the rendered text is never edited.
 */

/** Default stats password when the test gives none (validation requires one). */
export const TEST_STATS_PASSWORD = "veza-test-stats-pw";

/** `show servers state` op states (srv_op_state). */
export const OP_STATE = { STOPPED: 0, STARTING: 1, RUNNING: 2, STOPPING: 3 } as const;
/** `show servers state` admin-state bits (srv_admin_state). */
export const ADMIN_STATE = { FMAINT: 0x01, IMAINT: 0x02, CMAINT: 0x04, FDRAIN: 0x08, IDRAIN: 0x10, RMAINT: 0x20, HMAINT: 0x40 } as const;

export interface ServerState {
    backend: string;
    server: string;
    /** 0 STOPPED (DOWN), 1 STARTING (up, in slowstart), 2 RUNNING (UP), 3 STOPPING. */
    opState: number;
    /** Bit field, see ADMIN_STATE (0 = ready, 0x08 = drained from the CLI, 0x01 = maint from the CLI). */
    adminState: number;
    /** User-set weight (srv_uweight) and initial weight (srv_iweight). */
    uweight: number;
    iweight: number;
    id: number;
    address: string;
    /** Every column of the line, by header name (be_id, srv_check_health, ...). */
    raw: Record<string, string>;
}

/** One `show stat` CSV row, by column name (pxname, svname, status, weight, wretr, wredis, ...). */
export type StatRow = Record<string, string>;

export interface StartOptions {
    /** haproxy binary; default: found on $PATH or in /usr/sbin. */
    haproxyBin?: string;
    /** How long to wait for the admin socket. Default 10 s. */
    startTimeoutMs?: number;
}

export interface HaproxyProcess {
    readonly httpPort: number;
    readonly httpsPort?: number;
    readonly statsPort: number;
    /** Temp dir holding haproxy.cfg, sockets and the state file; removed by stop(). */
    readonly dir: string;
    readonly configPath: string;
    /** The master CLI socket (-S). */
    readonly masterSocket: string;
    /** Master process pid (also the process group id). */
    readonly pid: number;
    /** The full settings the current config was rendered from (process-level fields filled in). */
    readonly settings: HaproxySettings;
    /** The current rendered haproxy.cfg text. */
    readonly config: string;
    /** Completed reloads. */
    readonly reloads: number;
    /** One runtime-API command on the admin socket; resolves with the whole answer. */
    admin(cmd: string): Promise<string>;
    /** One command on the master CLI socket. */
    master(cmd: string): Promise<string>;
    serversState(): Promise<ServerState[]>;
    /** One server's state; throws when the server is not in the running config. */
    serverState(backend: string, server: string): Promise<ServerState>;
    stat(): Promise<StatRow[]>;
    /** One `show stat` row (svname "BACKEND" / "FRONTEND" for the aggregates). */
    statRow(pxname: string, svname: string): Promise<StatRow>;
    /** Current worker pid according to the master (`show proc`). */
    workerPid(): Promise<number>;
    /** The kit's waitFor (tests/support/time.ts), at hand on the process a test polls. */
    waitFor<T>(predicate: () => T | Promise<T>, opts: WaitOptions): Promise<NonNullable<T>>;
    /** Re-render (same ports/paths), save server state like _container-save-state.sh, reload through the master, wait for the new worker. */
    reload(newSettings?: HaproxySettings): Promise<void>;
    /** Last part of haproxy's stdout+stderr, for diagnostics. */
    output(): string;
    stop(): Promise<void>;
}

/**
 * Processes not stopped yet, for the exit safety net at the bottom only: it
 * must kill synchronously, so it cannot go through the (async) cleanup registry.
 */
const running = new Set<HaproxyProcess>();

/**
 * Sends one command to a UNIX stream socket and reads until the peer closes.
 * A refused or missing socket (the master re-executing during a reload, a
 * worker re-binding the admin socket) is retried for `connectRetryMs`: the
 * command was never sent, so retrying is safe.
 */
export async function socketCommand(socketPath: string, cmd: string, timeoutMs = 5000, connectRetryMs = 5000): Promise<string> {
    const started = Date.now();
    for (;;) {
        try {
            return await socketCommandOnce(socketPath, cmd, timeoutMs);
        } catch (err) {
            const code = (err as NodeJS.ErrnoException).code;
            if ((code !== "ECONNREFUSED" && code !== "ENOENT") || Date.now() - started > connectRetryMs) throw err;
            await sleep(20);
        }
    }
}

function socketCommandOnce(socketPath: string, cmd: string, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        // Half-open: the master CLI answers once our side is shut for writing (like socat on EOF).
        const conn = createConnection({ path: socketPath, allowHalfOpen: true });
        const timer = setTimeout(() => {
            conn.destroy();
            reject(new Error(`no answer on ${socketPath} to ${JSON.stringify(cmd)} within ${timeoutMs} ms`));
        }, timeoutMs);
        conn.on("connect", () => conn.end(cmd.endsWith("\n") ? cmd : `${cmd}\n`));
        conn.on("data", (chunk) => chunks.push(chunk));
        conn.on("end", () => conn.destroy());
        conn.on("error", (err) => {
            clearTimeout(timer);
            reject(err);
        });
        conn.on("close", () => {
            clearTimeout(timer);
            resolve(Buffer.concat(chunks).toString("utf8"));
        });
    });
}

export function parseServersState(text: string): ServerState[] {
    const lines = text
        .split("\n")
        .map((line) => line.trim())
        .filter((line) => line !== "");
    const headerLine = lines.find((line) => line.startsWith("# be_id"));
    if (headerLine === undefined) throw new Error(`unexpected "show servers state" answer: ${JSON.stringify(text.slice(0, 300))}`);
    const header = headerLine.replace(/^#\s*/, "").split(/\s+/);
    const out: ServerState[] = [];
    for (const line of lines) {
        if (line.startsWith("#") || /^\d+$/.test(line)) continue;
        const cols = line.split(/\s+/);
        const raw: Record<string, string> = {};
        header.forEach((name, i) => (raw[name] = cols[i] ?? ""));
        out.push({
            backend: raw.be_name,
            server: raw.srv_name,
            opState: Number(raw.srv_op_state),
            adminState: Number(raw.srv_admin_state),
            uweight: Number(raw.srv_uweight),
            iweight: Number(raw.srv_iweight),
            id: Number(raw.srv_id),
            address: raw.srv_addr,
            raw,
        });
    }
    return out;
}

export function parseStat(text: string): StatRow[] {
    const lines = text.split("\n").filter((line) => line.trim() !== "");
    const headerLine = lines.find((line) => line.startsWith("# pxname"));
    if (headerLine === undefined) throw new Error(`unexpected "show stat" answer: ${JSON.stringify(text.slice(0, 300))}`);
    const header = headerLine.replace(/^#\s*/, "").split(",");
    return lines
        .filter((line) => !line.startsWith("#"))
        .map((line) => {
            const cols = line.split(",");
            const row: StatRow = {};
            header.forEach((name, i) => {
                if (name !== "") row[name] = cols[i] ?? "";
            });
            return row;
        });
}

export interface ProcInfo {
    masterPid: number;
    masterFailedReloads: number;
    masterReloads: number;
    /** The serving worker: the one that has lived through the fewest reloads (0 when none is listed). */
    current: number;
    /** Every other worker: old ones still finishing their sessions. */
    oldWorkers: number[];
}

/*
 * `show proc` on the master CLI (2.6):
 *   #<PID>          <type>          <reloads>       <uptime>        <version>
 *   4242            master          1 [failed: 0]   0d00h00m01s     2.6.12-1+deb12u4
 *   # workers
 *   4250            worker          0               0d00h00m00s     2.6.12-1+deb12u4
 *   # old workers
 *   4243            worker          1               0d00h00m01s     2.6.12-1+deb12u4
 * The section a worker is listed in is not enough: on 3.1+ the serving
 * worker moves under "# old workers" after a failed reload (src/mworker.c,
 * cli_io_handler_show_proc), so the current one is found by its reload count,
 * as the config step's master_state does.
 */
export function parseShowProc(text: string): ProcInfo {
    const info: ProcInfo = { masterPid: 0, masterFailedReloads: 0, masterReloads: -1, current: 0, oldWorkers: [] };
    const workers: { pid: number; reloads: number }[] = [];
    for (const line of text.split("\n")) {
        const cols = line.trim().split(/\s+/);
        if (cols.length < 3 || !/^\d+$/.test(cols[0])) continue;
        if (cols[1] === "master") {
            info.masterPid = Number(cols[0]);
            info.masterReloads = Number(cols[2]);
            const failed = /failed:\s*(\d+)/.exec(line);
            if (failed) info.masterFailedReloads = Number(failed[1]);
        } else if (cols[1] === "worker" && /^\d+$/.test(cols[2])) {
            workers.push({ pid: Number(cols[0]), reloads: Number(cols[2]) });
        }
    }
    let current: { pid: number; reloads: number } | undefined;
    for (const w of workers) if (current === undefined || w.reloads < current.reloads) current = w;
    info.current = current?.pid ?? 0;
    info.oldWorkers = workers.filter((w) => w !== current).map((w) => w.pid);
    return info;
}

const PROCESS_FIELDS = [
    "bindAddress",
    "listenHttp",
    "listenHttps",
    "statsPort",
    "adminSocketPath",
    "serverStateFile",
    "chrootDir",
    "runAsUser",
    "runAsGroup",
    "logTarget",
    "statsPassword",
] as const;

function isBindError(text: string): boolean {
    return /cannot bind socket|Address already in use/i.test(text);
}

class Haproxy implements HaproxyProcess {
    httpPort = 0;
    httpsPort?: number;
    statsPort = 0;
    readonly configPath: string;
    readonly masterSocket: string;
    settings!: HaproxySettings;
    config = "";
    reloads = 0;
    private child: ChildProcess | undefined;
    private exited: Promise<void> = Promise.resolve();
    private exitInfo: string | undefined;
    private out = "";
    private stopped = false;

    constructor(
        readonly dir: string,
        private readonly bin: string,
    ) {
        this.configPath = path.join(dir, "haproxy.cfg");
        this.masterSocket = path.join(dir, "master.sock");
    }

    get pid(): number {
        return this.child?.pid ?? -1;
    }

    output(): string {
        return this.out;
    }

    private record(chunk: Buffer): void {
        this.out = (this.out + chunk.toString("utf8")).slice(-16_000);
    }

    /** Fills process-level fields: given ones win, then the running ones (reload), then test defaults. */
    async resolveSettings(given: HaproxySettings, previous?: HaproxySettings): Promise<HaproxySettings> {
        const s: HaproxySettings = { ...given };
        const prev = previous ?? ({} as Partial<HaproxySettings>);
        for (const field of PROCESS_FIELDS) {
            if (s[field] === undefined && prev[field] !== undefined) (s as unknown as Record<string, unknown>)[field] = prev[field];
        }
        s.bindAddress ??= "127.0.0.1";
        s.adminSocketPath ??= path.join(this.dir, "admin.sock");
        s.serverStateFile ??= path.join(this.dir, "server-state");
        s.chrootDir ??= "";
        s.runAsUser ??= "";
        s.runAsGroup ??= "";
        s.logTarget ??= "none";
        s.statsPassword ??= TEST_STATS_PASSWORD;
        s.listenHttp ??= await freePort();
        s.statsPort ??= await freePort();
        if (s.tlsCertPath) s.listenHttps ??= await freePort();
        return s;
    }

    private adopt(s: HaproxySettings): void {
        this.settings = s;
        this.httpPort = s.listenHttp as number;
        this.statsPort = s.statsPort as number;
        this.httpsPort = s.tlsCertPath ? (s.listenHttps as number) : undefined;
        this.config = renderHaproxyConfig(s);
        writeFileSync(this.configPath, this.config);
    }

    async start(settings: HaproxySettings, timeoutMs: number): Promise<void> {
        this.adopt(settings);
        const child = spawn(this.bin, ["-W", "-db", "-S", this.masterSocket, "-f", this.configPath], {
            cwd: this.dir,
            detached: true, // own process group: stop() kills master + every worker, old ones included
            stdio: ["ignore", "pipe", "pipe"],
        });
        this.child = child;
        child.stdout?.on("data", (chunk: Buffer) => this.record(chunk));
        child.stderr?.on("data", (chunk: Buffer) => this.record(chunk));
        this.exited = new Promise((resolve) => {
            child.on("exit", (code, signal) => {
                this.exitInfo = `exited with code ${code} signal ${signal}`;
                resolve();
            });
            child.on("error", (err) => {
                this.exitInfo = `failed to spawn ${this.bin}: ${err.message}`;
                resolve();
            });
        });
        await this.waitFor(
            async () => {
                if (this.exitInfo !== undefined) {
                    throw new FatalStartError(`haproxy ${this.exitInfo} before its admin socket answered:\n${this.out}`);
                }
                return /Pid:/.test(await socketCommand(this.settings.adminSocketPath as string, "show info", 5000, 0));
            },
            { timeoutMs, what: `haproxy admin socket ${this.settings.adminSocketPath} to answer`, intervalMs: 20 },
        ).catch((err) => {
            if (err instanceof FatalStartError) throw err;
            throw new Error(`${err.message}\nhaproxy output:\n${this.out}`);
        });
    }

    admin(cmd: string): Promise<string> {
        return socketCommand(this.settings.adminSocketPath as string, cmd);
    }

    master(cmd: string): Promise<string> {
        return socketCommand(this.masterSocket, cmd);
    }

    async serversState(): Promise<ServerState[]> {
        return parseServersState(await this.admin("show servers state"));
    }

    async serverState(backend: string, server: string): Promise<ServerState> {
        const found = (await this.serversState()).find((s) => s.backend === backend && s.server === server);
        if (found === undefined) throw new Error(`server ${backend}/${server} not in "show servers state"`);
        return found;
    }

    async stat(): Promise<StatRow[]> {
        return parseStat(await this.admin("show stat"));
    }

    async statRow(pxname: string, svname: string): Promise<StatRow> {
        const row = (await this.stat()).find((r) => r.pxname === pxname && r.svname === svname);
        if (row === undefined) throw new Error(`no "show stat" row ${pxname}/${svname}`);
        return row;
    }

    async workerPid(): Promise<number> {
        const info = parseShowProc(await this.master("show proc"));
        if (info.current === 0) throw new Error("master lists no current worker");
        return info.current;
    }

    waitFor<T>(predicate: () => T | Promise<T>, opts: WaitOptions): Promise<NonNullable<T>> {
        return waitFor(predicate, opts);
    }

    /** What the product's reload hook (templates/_container-save-state.sh) does: `show servers state` > serverStateFile. */
    private async saveServerState(): Promise<void> {
        const stateFile = this.settings.serverStateFile as string;
        const state = await this.admin("show servers state");
        if (!/^# be_id/m.test(state)) throw new Error(`"show servers state" gave no state table: ${JSON.stringify(state.slice(0, 200))}`);
        const tmp = `${stateFile}.tmp.${process.pid}`;
        writeFileSync(tmp, state);
        renameSync(tmp, stateFile);
    }

    async reload(newSettings?: HaproxySettings): Promise<void> {
        const next = await this.resolveSettings(newSettings ?? this.settings, this.settings);
        const before = parseShowProc(await this.master("show proc"));
        const oldWorker = before.current;
        this.adopt(next);
        await this.saveServerState();
        // The master re-executes itself on "reload" and drops this connection: an empty answer is normal.
        await this.master("reload").catch(() => "");
        let newWorker = 0;
        await this.waitFor(
            async () => {
                if (this.exitInfo !== undefined) throw new FatalStartError(`haproxy ${this.exitInfo} during reload:\n${this.out}`);
                const info = parseShowProc(await this.master("show proc"));
                if (info.masterFailedReloads > before.masterFailedReloads) {
                    throw new FatalStartError(
                        `reload #${this.reloads + 1} failed (master "show proc": failed ${info.masterFailedReloads}):\n${this.out}`,
                    );
                }
                if (info.masterReloads <= before.masterReloads) return false;
                if (info.current === 0 || info.current === oldWorker) return false;
                newWorker = info.current;
                // Serving: the admin socket now belongs to the new worker.
                const pid = /^Pid: (\d+)/m.exec(await this.admin("show info"));
                return pid !== null && Number(pid[1]) === newWorker;
            },
            {
                timeoutMs: 15_000,
                what: `reload #${this.reloads + 1}: a new worker (old pid ${oldWorker}) answering the admin socket`,
                intervalMs: 20,
            },
        ).catch((err) => {
            if (err instanceof FatalStartError) throw err;
            throw new Error(`${err.message}\nhaproxy output:\n${this.out}`);
        });
        this.reloads++;
    }

    async stop(): Promise<void> {
        if (this.stopped) return;
        this.stopped = true;
        running.delete(this);
        const pid = this.child?.pid;
        if (pid !== undefined && this.exitInfo === undefined) {
            killGroup(pid, "SIGTERM");
            const done = await within(
                this.exited.then(() => true),
                3000,
                false,
            );
            if (!done) {
                killGroup(pid, "SIGKILL");
                await this.exited;
            }
        }
        // Old workers lingering after reloads share the group: make sure none survive the master.
        if (pid !== undefined) killGroup(pid, "SIGKILL");
        rmSync(this.dir, { recursive: true, force: true });
    }
}

class FatalStartError extends Error {}

function killGroup(pid: number, signal: NodeJS.Signals): void {
    try {
        process.kill(-pid, signal);
    } catch {
        // already gone
    }
}

/** A temp dir whose path passes the renderer's path rules (A-Z a-z 0-9 . _ - segments). */
export function makeTempDir(prefix = "veza-hap-"): string {
    return mkdtempSync(path.join(tmpdir(), prefix));
}

/**
 * Renders `settings` (process-level fields filled for an unprivileged
 * loopback run), starts haproxy in master-worker mode and waits until its
 * admin socket answers. Registered for cleanupAll().
 */
export async function startHaproxy(settings: HaproxySettings, opts: StartOptions = {}): Promise<HaproxyProcess> {
    const bin = opts.haproxyBin ?? findBinary("haproxy");
    if (bin === undefined) throw new Error("haproxy not found: apt-get install -y haproxy");
    let lastError: unknown;
    // Ports picked here could be taken by someone else before haproxy binds them: retry with fresh ones.
    for (let attempt = 1; attempt <= 3; attempt++) {
        const dir = makeTempDir();
        const proc = new Haproxy(dir, bin);
        running.add(proc);
        try {
            const resolved = await proc.resolveSettings(settings);
            await proc.start(resolved, opts.startTimeoutMs ?? 10_000);
            onCleanup(() => proc.stop(), `haproxy in ${dir}`);
            return proc;
        } catch (err) {
            lastError = err;
            const text = `${String(err)}\n${proc.output()}`;
            await proc.stop();
            if (!isBindError(text)) break;
        }
    }
    throw lastError;
}

// Safety net if the test process exits without teardown (e.g. a crash): no orphaned haproxy.
process.once("exit", () => {
    for (const proc of running) {
        if (proc.pid > 0) killGroup(proc.pid, "SIGKILL");
        try {
            if (existsSync(proc.dir)) rmSync(proc.dir, { recursive: true, force: true });
        } catch {
            // best effort
        }
    }
});
