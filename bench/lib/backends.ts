import * as path from "path";
import { spawnGroup, Spawned, stopGroup } from "./procs";

const HOST = path.join(__dirname, "..", "backend-host.ts");

/**
 * A FakeBackend (tests/support/backend.ts) running in its own Node process
 * (bench/backend-host.ts), controlled over IPC. Same fake upstream as the
 * tests, but with its own event loop, so two backends really are two.
 */
export class BackendProcess {
    private nextId = 1;
    private readonly pending = new Map<number, (m: Record<string, unknown>) => void>();

    private constructor(
        readonly name: string,
        readonly port: number,
        private readonly proc: Spawned,
    ) {
        proc.child.on("message", (m: Record<string, unknown>) => {
            const resolve = this.pending.get(m.id as number);
            if (resolve) {
                this.pending.delete(m.id as number);
                resolve(m);
            }
        });
    }

    static async start(name: string, port = 0): Promise<BackendProcess> {
        const proc = spawnGroup(
            process.execPath,
            ["-r", "ts-node/register/transpile-only", HOST, name, String(port)],
            {
                cwd: path.join(__dirname, "..", ".."),
                env: { ...process.env, TS_NODE_PROJECT: path.join(__dirname, "..", "..", "tsconfig.json") },
            },
            true,
        );
        const ready = await new Promise<number>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`backend ${name} not ready in 30 s: ${proc.stderr()}`)), 30000);
            proc.child.on("message", (m: Record<string, unknown>) => {
                if (m.ready) {
                    clearTimeout(timer);
                    resolve(m.port as number);
                }
            });
            void proc.exited.then((code) => {
                clearTimeout(timer);
                reject(new Error(`backend ${name} exited ${code}: ${proc.stderr()}`));
            });
        });
        return new BackendProcess(name, ready, proc);
    }

    private command(cmd: string, extra: object = {}): Promise<Record<string, unknown>> {
        const id = this.nextId++;
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`backend ${this.name}: no answer to ${cmd}`)), 10000);
            this.pending.set(id, (m) => {
                clearTimeout(timer);
                if (m.ok) resolve(m);
                else reject(new Error(`backend ${this.name} ${cmd}: ${m.error}`));
            });
            this.proc.child.send({ id, cmd, ...extra });
        });
    }

    /** Process group id (the leader's pid): for CPU accounting. */
    get pgid(): number {
        return this.proc.child.pid ?? -1;
    }

    /** FakeBackend.kill(): every socket destroyed at once, listener closed. */
    async kill(): Promise<void> {
        await this.command("kill");
    }

    async restart(): Promise<void> {
        await this.command("restart");
    }

    /** Health checks this backend has answered so far. */
    async healthChecks(): Promise<number> {
        return (await this.command("stats")).healthChecks as number;
    }

    async requests(): Promise<number> {
        return (await this.command("stats")).requests as number;
    }

    async stop(): Promise<void> {
        if (this.proc.child.exitCode === null) {
            await Promise.race([this.command("close").catch(() => undefined), new Promise((r) => setTimeout(r, 2000))]);
        }
        await stopGroup(this.proc, 1000);
    }
}
