import { execFile } from "child_process";
import { readFileSync, writeFileSync } from "fs";
import * as net from "net";
import * as path from "path";
import { parseShowProc, sleep, socketCommand } from "../../tests/support";
import { spawnGroup, Spawned, stopGroup, tempDir, removeTempDir } from "./procs";

/** Replaces every {{NAME}} in `text`; throws if one is left unfilled. */
export function fillPlaceholders(text: string, values: Record<string, string | number>): string {
    const out = text.replace(/\{\{([A-Z0-9_]+)\}\}/g, (whole, name: string) => (name in values ? String(values[name]) : whole));
    const left = out.match(/\{\{[A-Z0-9_]+\}\}/g);
    if (left) throw new Error(`unfilled placeholders: ${[...new Set(left)].join(", ")}`);
    return out;
}

export function readBenchFile(name: string): string {
    return readFileSync(path.join(__dirname, "..", name), "utf8");
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
export async function waitForPort(port: number, timeoutMs = 10000, alive?: () => boolean): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
        if (alive && !alive()) throw new Error(`process died before listening on ${port}`);
        const ok = await new Promise<boolean>((resolve) => {
            const s = net.connect({ host: "127.0.0.1", port });
            s.once("connect", () => {
                s.destroy();
                resolve(true);
            });
            s.once("error", () => resolve(false));
        });
        if (ok) return;
        await sleep(50);
    }
    throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/** One command on an admin / master CLI socket: the shared harness's client. */
export { socketCommand };

export function execFileP(cmd: string, args: string[], timeoutMs = 120000): Promise<{ stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
        execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
            if (err) reject(Object.assign(err, { stdout, stderr }));
            else resolve({ stdout, stderr });
        });
    });
}

/**
 * A haproxy started from a literal config text (the seed's config, or a tuned
 * copy of the product's): master-worker in the foreground, own process group,
 * own temp dir with the admin and master sockets.
 */
export class LiteralHaproxy {
    private constructor(
        readonly dir: string,
        readonly cfgPath: string,
        readonly httpPort: number,
        readonly adminSocket: string,
        readonly masterSocket: string,
        private readonly proc: Spawned,
        /** The HTTPS bind's port, when the config has one (the caller chose it). */
        readonly httpsPort?: number,
    ) {}

    /** `bin`: the haproxy to run (default: the one on PATH), e.g. a pinned wrapper from lib/pin.ts. */
    static async start(
        config: string,
        opts: { httpPort: number; httpsPort?: number; dir?: string; adminSocket?: string; bin?: string },
    ): Promise<LiteralHaproxy> {
        const dir = opts.dir ?? tempDir("haproxy");
        const bin = opts.bin ?? "haproxy";
        const cfgPath = path.join(dir, "haproxy.cfg");
        writeFileSync(cfgPath, config);
        await execFileP(bin, ["-c", "-q", "-f", cfgPath]).catch((e) => {
            throw new Error(`haproxy -c rejected ${cfgPath}:\n${e.stderr ?? e}`);
        });
        const masterSocket = path.join(dir, "master.sock");
        const proc = spawnGroup(bin, ["-W", "-db", "-f", cfgPath, "-S", masterSocket], { cwd: dir });
        const h = new LiteralHaproxy(
            dir,
            cfgPath,
            opts.httpPort,
            opts.adminSocket ?? path.join(dir, "admin.sock"),
            masterSocket,
            proc,
            opts.httpsPort,
        );
        try {
            await waitForPort(opts.httpPort, 10000, () => proc.child.exitCode === null);
        } catch (e) {
            await stopGroup(proc, 200);
            throw new Error(`${e}\nhaproxy stderr:\n${proc.stderr()}`, { cause: e });
        }
        return h;
    }

    /** Process group id (the leader's pid): for CPU accounting. */
    get pgid(): number {
        return this.proc.child.pid ?? -1;
    }

    admin(command: string): Promise<string> {
        return socketCommand(this.adminSocket, command);
    }

    /** Current worker pid from the master CLI's "show proc", read by the test kit's parser (right on 3.1+ too). */
    async workerPid(): Promise<number> {
        const text = await socketCommand(this.masterSocket, "show proc");
        const current = parseShowProc(text).current;
        if (current === 0) throw new Error(`no current worker in "show proc": ${text}`);
        return current;
    }

    /**
     * Reload through the master CLI (optionally with a new config text written
     * first), after saving server state to `stateFile` if given; resolves once
     * a new worker answers the admin socket.
     */
    async reload(opts: { config?: string; stateFile?: string } = {}): Promise<void> {
        const before = await this.workerPid();
        if (opts.config !== undefined) writeFileSync(this.cfgPath, opts.config);
        if (opts.stateFile !== undefined) writeFileSync(opts.stateFile, await this.admin("show servers state"));
        await socketCommand(this.masterSocket, "reload").catch(() => "");
        const deadline = Date.now() + 15000;
        for (;;) {
            try {
                const now = await this.workerPid();
                const info = await this.admin("show info");
                if (now !== before && new RegExp(`^Pid: ${now}$`, "m").test(info)) return;
            } catch {
                /* master re-executing */
            }
            if (Date.now() > deadline) throw new Error(`reload: no new worker after 15 s\n${this.proc.stderr()}`);
            await sleep(20);
        }
    }

    /** "show stat" as rows keyed by column name. */
    async stat(): Promise<Record<string, string>[]> {
        const text = await this.admin("show stat");
        const lines = text.split("\n").filter((l) => l.trim() !== "");
        const header = lines[0].replace(/^# /, "").split(",");
        return lines.slice(1).map((l) => {
            const cells = l.split(",");
            const row: Record<string, string> = {};
            header.forEach((h, i) => (row[h] = cells[i] ?? ""));
            return row;
        });
    }

    async serverStatus(backend: string, server: string): Promise<string> {
        const row = (await this.stat()).find((r) => r.pxname === backend && r.svname === server);
        return row?.status ?? "MISSING";
    }

    stderr(): string {
        return this.proc.stderr();
    }

    async stop(removeDir = true): Promise<void> {
        await stopGroup(this.proc, 2000);
        if (removeDir) removeTempDir(this.dir);
    }
}
