/**
 * Observing the HAProxy container of the lab: admin socket, master CLI,
 * config file hash, and a client loop that counts every request's outcome.
 * Only talks to the local Incus daemon and the lab's 198.18.0.x addresses.
 */
import * as http from "node:http";
import { NODE_METRICS_PATH } from "../components/container-paths";
import { DEFAULT_SETTINGS } from "../components/settings";
import { get, parseShowProc, sleep, waitFor } from "../tests/support";
import { execIn, execInOk, incusOk } from "./lab";

export const ADMIN_SOCKET = "/run/haproxy/admin.sock";
export const MASTER_SOCKET = "/run/haproxy-master.sock";
export const CONFIG_PATH = "/etc/haproxy/haproxy.cfg";

/** One runtime API command through `socat` inside the container. */
export async function admin(container: string, cmd: string, socket = ADMIN_SOCKET): Promise<string> {
    return execInOk(container, ["socat", "-t", "2", "stdio", `UNIX-CONNECT:${socket}`], `${cmd}\n`, 15_000);
}

/**
 * One scrape of the node metrics (/veza-metrics) through the container's stats
 * listener, served by its systemd socket unit: the whole HTTP answer.
 */
export async function scrapeNodeMetrics(container: string): Promise<string> {
    return execInOk(
        container,
        ["socat", "-t", "5", "stdio", `TCP:127.0.0.1:${DEFAULT_SETTINGS.statsPort}`],
        `GET ${NODE_METRICS_PATH} HTTP/1.0\r\n\r\n`,
        15_000,
    );
}

export interface ProcInfo {
    master: number;
    /** How many times the master has reloaded since it started. */
    masterReloads: number;
    /** The current worker (not the old ones still finishing sessions). */
    worker: number;
    oldWorkers: number[];
}

/** `show proc` on the master CLI, read by the test kit's one parser. */
export async function showProc(container: string): Promise<ProcInfo> {
    const out = await admin(container, "show proc", MASTER_SOCKET);
    const info = parseShowProc(out);
    if (!info.masterPid || !info.current || !(info.masterReloads >= 0)) throw new Error(`could not parse show proc:\n${out}`);
    return { master: info.masterPid, masterReloads: info.masterReloads, worker: info.current, oldWorkers: info.oldWorkers };
}

export interface ServerStat {
    pool: string;
    server: string;
    /** "UP", "DOWN", "DRAIN", "MAINT", "UP 1/3", ... */
    status: string;
    /** Cumulated sessions (stot). */
    total: number;
}

/** `show stat`, servers only, keyed "pool/server". */
export async function serverStats(container: string): Promise<Map<string, ServerStat>> {
    const out = await admin(container, "show stat");
    const lines = out.split("\n").filter((l) => l.trim() !== "");
    const header = lines[0].replace(/^#\s*/, "").split(",");
    const col = (name: string) => {
        const i = header.indexOf(name);
        if (i < 0) throw new Error(`show stat has no ${name} column: ${lines[0]}`);
        return i;
    };
    const [px, sv, status, stot] = [col("pxname"), col("svname"), col("status"), col("stot")];
    const result = new Map<string, ServerStat>();
    for (const line of lines.slice(1)) {
        const f = line.split(",");
        if (f[sv] === "FRONTEND" || f[sv] === "BACKEND") continue;
        result.set(`${f[px]}/${f[sv]}`, { pool: f[px], server: f[sv], status: f[status], total: Number(f[stot]) });
    }
    return result;
}

export interface ServerState {
    pool: string;
    server: string;
    /** srv_op_state: 0 stopped (DOWN), 1 starting, 2 running (UP), 3 stopping. */
    opState: number;
    /** srv_admin_state bit field: 0x01 forced maint, 0x08 forced drain, 0x20 resolution maint... */
    adminState: number;
    address: string;
}

/** `show servers state`, keyed "pool/server". */
export async function serversState(container: string): Promise<Map<string, ServerState>> {
    const out = await admin(container, "show servers state");
    const result = new Map<string, ServerState>();
    for (const line of out.split("\n")) {
        const f = line.trim().split(/\s+/);
        if (f.length < 7 || !/^\d+$/.test(f[0])) continue;
        result.set(`${f[1]}/${f[3]}`, { pool: f[1], server: f[3], address: f[4], opState: Number(f[5]), adminState: Number(f[6]) });
    }
    return result;
}

export const ADMIN_FORCED_DRAIN = 0x08;

/** sha256 of the running config file inside the container. */
export async function configSha(container: string): Promise<string> {
    const out = await execInOk(container, ["sha256sum", CONFIG_PATH]);
    return out.split(/\s+/)[0];
}

/** Instance identity that changes only when the container is re-created. */
export async function instanceIdentity(container: string): Promise<{ createdAt: string; uuid: string }> {
    const r = await execIn(container, ["true"]);
    if (r.code !== 0) throw new Error(`${container} not running: ${r.stderr}`);
    const info = JSON.parse(await incusOk(["query", `/1.0/instances/${container}`])) as {
        created_at: string;
        config: Record<string, string>;
    };
    return { createdAt: info.created_at, uuid: info.config["volatile.uuid"] ?? "" };
}

export interface TrafficResult {
    requests: number;
    failures: number;
    /** First few failures, for the assertion message. */
    errors: string[];
    byBackend: Record<string, number>;
    ms: number;
}

/**
 * A client loop from the host: `concurrency` workers each send GET requests
 * (fresh connection each, so every request goes through accept) until
 * `stop()` is called AND at least `minRequests` were sent. A failure is a
 * connection error, a timeout or a status other than 200.
 */
const activeLoops = new Set<TrafficLoop>();

/** Abort every loop still running (afterEach: a failed assertion must not leave a loop behind). */
export async function abortAllTraffic(): Promise<void> {
    await Promise.all([...activeLoops].map((loop) => loop.abort()));
}

export class TrafficLoop {
    private running = true;
    private result: TrafficResult = { requests: 0, failures: 0, errors: [], byBackend: {}, ms: 0 };
    private readonly workers: Promise<void>[];
    private readonly started = Date.now();
    /** Backend names seen since the last `markSeen` reset (for "did traffic reach X"). */
    private seen = new Set<string>();

    private readonly agent?: http.Agent;

    /**
     * `keepAlive`: reuse connections (like browsers and API clients do), so a
     * reload meets requests on idle connections owned by the old worker;
     * otherwise every request opens a new connection.
     */
    constructor(
        private readonly baseUrl: string,
        private minRequests = 500,
        concurrency = 4,
        keepAlive = false,
    ) {
        if (keepAlive) this.agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
        this.workers = Array.from({ length: concurrency }, (_, w) => this.worker(w));
        activeLoops.add(this);
    }

    private async worker(w: number): Promise<void> {
        let i = 0;
        while (this.running || this.result.requests < this.minRequests) {
            const path = `/api/v1/items?w=${w}&i=${i++}`;
            this.result.requests++;
            try {
                const r = await get(this.baseUrl, path, undefined, { timeoutMs: 5_000, agent: this.agent });
                const backend = String(r.headers["x-backend"] ?? "?");
                if (r.status !== 200) {
                    this.fail(`${this.baseUrl}${path}: status ${r.status} from ${backend}: ${r.body.slice(0, 200)}`);
                } else {
                    this.result.byBackend[backend] = (this.result.byBackend[backend] ?? 0) + 1;
                    this.seen.add(backend);
                }
            } catch (e) {
                // The kit's client names the request in its error ("GET http://198.18.0.10:80/api/...: ...").
                this.fail((e as Error).message);
                await sleep(20);
            }
        }
    }

    private fail(msg: string): void {
        this.result.failures++;
        if (this.result.errors.length < 10) this.result.errors.push(msg);
    }

    get requests(): number {
        return this.result.requests;
    }

    /** Backends that answered since the last call to resetSeen(). */
    hasSeen(backend: string): boolean {
        return this.seen.has(backend);
    }

    resetSeen(): void {
        this.seen = new Set();
    }

    /** Stop now, whatever the request count. */
    async abort(): Promise<void> {
        this.minRequests = 0;
        await this.stop();
    }

    async stop(): Promise<TrafficResult> {
        this.running = false;
        await Promise.all(this.workers);
        this.agent?.destroy();
        activeLoops.delete(this);
        this.result.ms = Date.now() - this.started;
        return { ...this.result, byBackend: { ...this.result.byBackend }, errors: [...this.result.errors] };
    }
}

/**
 * A loop on new connections and a keep-alive loop against `baseUrl` (each
 * sends at least `minRequests` before it stops), returned once both are
 * flowing: the pair every "no failed request while ..." test runs.
 */
export async function startTrafficPair(baseUrl: string, minRequests: number): Promise<{ fresh: TrafficLoop; keepAlive: TrafficLoop }> {
    const fresh = new TrafficLoop(baseUrl, minRequests);
    const keepAlive = new TrafficLoop(baseUrl, minRequests, 4, true);
    await waitFor(async () => fresh.requests > 50 && keepAlive.requests > 50, {
        what: "traffic flowing",
        timeoutMs: 10_000,
        intervalMs: 50,
    });
    return { fresh, keepAlive };
}

/** A loop's result in one line for the note book: requests, failures, time, the first errors. */
export function trafficSummary(r: TrafficResult): string {
    return `${r.requests} requests / ${r.failures} failures in ${r.ms} ms${r.errors.length ? ` ${JSON.stringify(r.errors.slice(0, 3))}` : ""}`;
}
