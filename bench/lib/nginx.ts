import { writeFileSync } from "fs";
import * as os from "os";
import * as path from "path";
import { execFileP, fillPlaceholders, readBenchFile, waitForPort } from "./literal";
import { spawnGroup, Spawned, stopGroup, tempDir, removeTempDir } from "./procs";

export const NGINX_BIN = "/usr/sbin/nginx";

export interface NginxPorts {
    httpPort: number;
    api: [number, number];
    stream: [number, number];
    /** The HTTPS server: its port and the certificate and key files (the product's, for the TLS scenario). */
    https: { port: number; cert: string; key: string };
}

/**
 * nginx from a config text (made for `dir`, where it is written) in the
 * foreground, own process group, once `nginx -t` accepts it; resolves when
 * every port in `ports` accepts connections. The contender and the
 * proxy-cost scenario's lean backend both start this way.
 */
export async function startNginxProcess(dir: string, config: string, ports: number[], bin = NGINX_BIN): Promise<Spawned> {
    const conf = path.join(dir, "nginx.conf");
    writeFileSync(conf, config);
    // -p: prefix for relative paths; -e: error log before the config is read.
    const base = ["-p", dir, "-e", path.join(dir, "error.log"), "-c", conf];
    await execFileP(bin, [...base, "-t", "-q"]).catch((e) => {
        throw new Error(`nginx -t rejected ${conf}:\n${e.stderr ?? e}`);
    });
    const proc = spawnGroup(bin, base, { cwd: dir });
    try {
        for (const port of ports) await waitForPort(port, 10000, () => proc.child.exitCode === null);
    } catch (e) {
        await stopGroup(proc, 200);
        throw new Error(`${e}\nnginx stderr:\n${proc.stderr()}`, { cause: e });
    }
    return proc;
}

/** nginx from bench/nginx.conf in a temp dir, in the foreground, own process group. */
export class NginxContender {
    private constructor(
        readonly dir: string,
        readonly httpPort: number,
        readonly httpsPort: number,
        private readonly proc: Spawned,
    ) {}

    static render(dir: string, p: NginxPorts, workers = os.cpus().length): string {
        return fillPlaceholders(readBenchFile("nginx.conf"), {
            DIR: dir,
            WORKERS: workers,
            HTTP_PORT: p.httpPort,
            API_1_PORT: p.api[0],
            API_2_PORT: p.api[1],
            STREAM_1_PORT: p.stream[0],
            STREAM_2_PORT: p.stream[1],
            HTTPS_PORT: p.https.port,
            CERT: p.https.cert,
            KEY: p.https.key,
        });
    }

    /** `bin`: the nginx to run (default NGINX_BIN, or a pinned wrapper from lib/pin.ts); `workers`: default one per core. */
    static async start(p: NginxPorts, opts: { bin?: string; workers?: number } = {}): Promise<NginxContender> {
        const dir = tempDir("nginx");
        const proc = await startNginxProcess(dir, NginxContender.render(dir, p, opts.workers), [p.httpPort], opts.bin);
        return new NginxContender(dir, p.httpPort, p.https.port, proc);
    }

    /** Process group id (the leader's pid): for CPU accounting. */
    get pgid(): number {
        return this.proc.child.pid ?? -1;
    }

    async stop(): Promise<void> {
        await stopGroup(this.proc, 2000);
        removeTempDir(this.dir);
    }
}
