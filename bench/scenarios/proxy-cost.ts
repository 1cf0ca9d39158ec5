import { freePort, get, onCleanup, setCookies } from "../../tests/support";
import { benchCertificate, productSettings, renderProductCopy, startNginx, startSeedLiteral } from "../lib/contenders";
import { coreBusyMs, groupsCpuMs } from "../lib/cpu";
import { runH2load } from "../lib/h2load";
import { runSTime } from "../lib/s-time";
import { fillPlaceholders, LiteralHaproxy, readBenchFile } from "../lib/literal";
import { startNginxProcess } from "../lib/nginx";
import { CpuPlan, cpuPlan, pinnedBinary, withOwnCpus } from "../lib/pin";
import { stopGroup, tempDir, removeTempDir } from "../lib/procs";
import { log, median, round } from "../lib/stats";
import { applyVariant } from "../lib/variants";
import { toolVersion } from "../lib/versions";
import { runWrk } from "../lib/wrk";

/*
 * The proxy's own CPU per request (user + system of its process group, from
 * /proc, divided by the requests the client completed), where nothing else
 * shares its core: the proxy is pinned to one core, the load generator and a
 * lean fixed-cost backend (one nginx worker answering 200 from memory) to the
 * others. Rows:
 *   http       HTTP/1.1 keep-alive (wrk)
 *   https      HTTP/1.1 keep-alive over TLS (wrk)
 *   h2         HTTP/2 over TLS (h2load, ALPN h2)
 *   handshake  a new TLS connection per request with a full handshake
 *              (openssl s_time -new, 8 at once): CPU per handshake, handshakes/s
 *   resumed    a new TLS connection per request, the session resumed (wrk
 *              with "Connection: close": its SSL_clear keeps the session and
 *              both servers keep a session cache)
 * Contenders: the product's rendered config, the seed's literal config and
 * nginx with the same pools, forwarded headers, keep-alive upstreams,
 * certificate and TLS versions. Clients send the sticky cookie back, as
 * browsers do. Rounds alternate the contenders' order; medians and ranges.
 */

export type Row = "http" | "https" | "h2" | "handshake" | "resumed";
export const ROWS: Row[] = ["http", "https", "h2", "handshake", "resumed"];

export interface Stat {
    median: number;
    min: number;
    max: number;
}

export interface RowResult {
    cpu_us: Stat;
    /** The proxy core's busy time per request (/proc/stat, softirq included): a cross-check of cpu_us. */
    core_us: Stat;
    per_s: Stat;
    errors: number;
    runs: { cpu_us: number; core_us: number; per_s: number; requests: number }[];
}

export interface ContenderCost {
    label: string;
    /** Threads (HAProxy's nbthread) or worker processes the proxy ran: 1 when pinned. */
    threads: number;
    rows: Partial<Record<Row, RowResult>>;
    /** Why a row was not run for this contender. */
    not_run?: Partial<Record<Row, string>>;
}

export interface ProxyCostResult {
    haproxy_version: string;
    nginx_version: string;
    cpus: CpuPlan;
    load: { seconds: number; rounds: number; connections: number; h2: { connections: number; streams: number }; path: string };
    backend: string;
    contenders: Record<string, ContenderCost>;
    /** Medians of proxy CPU µs per request (per handshake in tls_handshake). */
    cpu_us_per_request: Record<"http" | "https" | "h2", Record<string, number | null>>;
    tls_handshake: { product_per_s: number; nginx_per_s: number; seed_literal_per_s: number | null; cpu_us: Record<string, number | null> };
    /** Per-round ratios' medians (both runs of a round are adjacent in time). */
    ratios: Record<string, number>;
}

export interface Running {
    httpPort: number;
    httpsPort?: number;
    h2: boolean;
    pgids: number[];
    /** "name=value" of the sticky cookie this contender sets, sent back on every request. */
    cookie?: string;
    /** HAProxy's current worker (the master CLI's "show proc"); absent for nginx. */
    workerPid?: () => Promise<number>;
    threads: number;
    stop(): Promise<void>;
}

export interface CostContender {
    key: string;
    label: string;
    start(): Promise<Running>;
}

export interface ProxyCostOptions {
    rounds: number;
    seconds: number;
    connections: number;
    h2: { connections: number; streams: number };
    path: string;
    /** Extra contenders: the product with these bench/lib/variants.ts edits (experiments). */
    variants: string[];
    /** The rows to run (default all): experiments may run only the rows they change. */
    rows?: Row[];
    /** The haproxy to run (a wrapper script); default: haproxy pinned to the proxy's core. */
    haproxyBin?: string;
}

const stat = (xs: number[]): Stat => ({ median: round(median(xs), 2), min: round(Math.min(...xs), 2), max: round(Math.max(...xs), 2) });

/** The lean backend: one pinned nginx worker on the four pool ports. */
export async function startLeanBackend(cpus: string): Promise<{ ports: number[]; stop(): Promise<void> }> {
    const dir = tempDir("lean");
    const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
    const config = fillPlaceholders(readBenchFile("lean-backend.conf"), {
        DIR: dir,
        API_1_PORT: ports[0],
        API_2_PORT: ports[1],
        STREAM_1_PORT: ports[2],
        STREAM_2_PORT: ports[3],
    });
    const proc = await startNginxProcess(dir, config, ports, pinnedBinary("nginx", cpus));
    const stop = async () => {
        await stopGroup(proc, 2000);
        removeTempDir(dir);
    };
    onCleanup(stop);
    return { ports, stop };
}

/** The sticky cookie a contender sets on a first request ("name=value"), if any. */
async function stickyCookie(port: number, urlPath: string): Promise<string | undefined> {
    const first = setCookies((await get(port, urlPath, undefined, { agent: false })).headers)[0];
    return first === undefined ? undefined : `${first.name}=${first.value}`;
}

/** HAProxy's thread count from its admin socket ("show info" Nbthread). */
async function haproxyThreads(h: LiteralHaproxy): Promise<number> {
    const m = /^Nbthread: (\d+)$/m.exec(await h.admin("show info"));
    if (!m) throw new Error("show info has no Nbthread line");
    return Number(m[1]);
}

export function contenders(backendPorts: number[], plan: CpuPlan, o: ProxyCostOptions): CostContender[] {
    const named = (name: string, i: number) => ({ name, port: backendPorts[i] });
    const api = [named("backend-api-1", 0), named("backend-api-2", 1)];
    const stream = [named("stream-srv-1", 2), named("stream-srv-2", 3)];
    const cert = benchCertificate();
    const haproxyBin = o.haproxyBin ?? pinnedBinary("haproxy", plan.proxy);
    const literal = async (h: LiteralHaproxy): Promise<Running> => ({
        httpPort: h.httpPort,
        httpsPort: h.httpsPort,
        h2: false,
        pgids: [h.pgid],
        cookie: await stickyCookie(h.httpPort, o.path),
        threads: await haproxyThreads(h),
        workerPid: () => h.workerPid(),
        stop: () => h.stop(),
    });
    const product = (variant: string | undefined) => async (): Promise<Running> => {
        const dir = tempDir("product");
        const httpsPort = await freePort();
        const copy = await renderProductCopy(
            dir,
            productSettings(api, stream, { tlsCertPath: cert.pemPath, listenHttps: httpsPort, httpsRedirect: false }),
        );
        const config = variant === undefined ? copy.config : applyVariant(variant, copy.config);
        const h = await LiteralHaproxy.start(config, {
            httpPort: copy.httpPort,
            httpsPort,
            dir,
            adminSocket: copy.adminSocket,
            bin: haproxyBin,
        });
        onCleanup(() => h.stop());
        return { ...(await literal(h)), h2: true };
    };
    return [
        { key: "product", label: "product haproxy.cfg", start: product(undefined) },
        ...o.variants.map((v) => ({ key: `product+${v}`, label: `product + ${v} (experiment)`, start: product(v) })),
        {
            key: "seed_literal",
            label: "seed literal haproxy.cfg",
            start: async () => literal(await startSeedLiteral(api, stream, 5000, { bin: haproxyBin })),
        },
        {
            key: "nginx",
            label: "nginx",
            start: async () => {
                const n = await startNginx(api, stream, { bin: pinnedBinary("nginx", plan.proxy), workers: 1 });
                return { httpPort: n.httpPort, httpsPort: n.httpsPort, h2: true, pgids: [n.pgid], threads: 1, stop: () => n.stop() };
            },
        },
    ];
}

/** Why `row` cannot run against `c`, or undefined when it can. */
function unsupported(row: Row, c: Running): string | undefined {
    if (row !== "http" && c.httpsPort === undefined) return "no HTTPS listener";
    if (row === "h2" && !c.h2) return "its HTTPS bind offers no ALPN h2 (HTTP/1.1 only)";
    return undefined;
}

export async function measureOnce(row: Row, c: Running, o: ProxyCostOptions, plan: CpuPlan, seconds: number) {
    // Lower case: HTTP/2 (h2load) wants it so, HTTP/1.1 does not mind.
    const headers = c.cookie === undefined ? [] : [`cookie: ${c.cookie}`];
    const cpu0 = groupsCpuMs(c.pgids);
    const core0 = coreBusyMs(Number(plan.proxy));
    let requests: number;
    let perS: number;
    let errors: number;
    if (row === "handshake") {
        const r = await runSTime({ port: c.httpsPort as number, path: o.path, seconds, clients: 8, cpus: plan.load });
        requests = r.connections;
        perS = r.perS;
        // s_time checks no status: an answer shorter than a 200's headers is counted as an error run.
        errors = r.bytesPerConnection < 100 ? r.connections : 0;
    } else if (row === "h2") {
        const r = await runH2load({
            url: `https://127.0.0.1:${c.httpsPort}${o.path}`,
            connections: o.h2.connections,
            streams: o.h2.streams,
            durationSec: seconds,
            headers,
            cpus: plan.load,
        });
        requests = r.requests;
        perS = r.rps;
        errors = r.failed + r.errored + r.timeout + (r.requests - r.status2xx);
    } else {
        const scheme = row === "http" ? "http" : "https";
        const port = row === "http" ? c.httpPort : c.httpsPort;
        const r = await runWrk({
            url: `${scheme}://127.0.0.1:${port}${o.path}`,
            threads: 1,
            connections: o.connections,
            durationSec: seconds,
            headers: row === "resumed" ? [...headers, "Connection: close"] : headers,
            cpus: plan.load,
        });
        requests = r.requests;
        perS = r.rps;
        errors = r.socketErrors + r.non2xx;
    }
    // A run that completed nothing measured nothing (e.g. HTTP/2 with tune.bufsize below its 16 KB frames).
    if (requests === 0) throw new Error(`${row}: no request completed through port ${row === "http" ? c.httpPort : c.httpsPort}`);
    const cpuUs = ((groupsCpuMs(c.pgids) - cpu0) * 1000) / requests;
    const coreUs = ((coreBusyMs(Number(plan.proxy)) - core0) * 1000) / requests;
    return { cpu_us: round(cpuUs, 2), core_us: round(coreUs, 2), per_s: Math.round(perS), requests, errors };
}

export async function measureProxyCost(o: ProxyCostOptions): Promise<ProxyCostResult> {
    const plan = cpuPlan();
    // The bench's own Node threads leave the proxy's core too.
    return withOwnCpus(plan.load, () => measurePinned(o, plan));
}

async function measurePinned(o: ProxyCostOptions, plan: CpuPlan): Promise<ProxyCostResult> {
    const backend = await startLeanBackend(plan.load);
    const list = contenders(backend.ports, plan, o);
    const running = new Map<string, Running>();
    const results: Record<string, ContenderCost> = {};
    try {
        for (const c of list) {
            const r = await c.start();
            running.set(c.key, r);
            results[c.key] = { label: c.label, threads: r.threads, rows: {} };
            log(`proxy cost: ${c.key} started (${r.threads} thread(s) on core ${plan.proxy}, cookie ${r.cookie ?? "none"})`);
        }
        for (const row of o.rows ?? ROWS) {
            const here = list.filter((c) => {
                const why = unsupported(row, running.get(c.key) as Running);
                if (why !== undefined) (results[c.key].not_run ??= {})[row] = why;
                return why === undefined;
            });
            // Warm-up: connections pools, TLS caches and page faults happen before any measured run.
            for (const c of here) await measureOnce(row, running.get(c.key) as Running, o, plan, 1);
            const runs = new Map(here.map((c) => [c.key, [] as RowResult["runs"]]));
            const errors = new Map(here.map((c) => [c.key, 0]));
            for (let r = 0; r < o.rounds; r++) {
                for (let i = 0; i < here.length; i++) {
                    const c = here[(i + r) % here.length];
                    const m = await measureOnce(row, running.get(c.key) as Running, o, plan, o.seconds);
                    runs.get(c.key)?.push({ cpu_us: m.cpu_us, core_us: m.core_us, per_s: m.per_s, requests: m.requests });
                    errors.set(c.key, (errors.get(c.key) ?? 0) + m.errors);
                    log(
                        `proxy cost ${row} round ${r + 1}/${o.rounds} ${c.key}: ${m.cpu_us} µs (core ${m.core_us}), ${m.per_s}/s, ${m.errors} errors`,
                    );
                }
            }
            for (const c of here) {
                const rs = runs.get(c.key) ?? [];
                results[c.key].rows[row] = {
                    cpu_us: stat(rs.map((x) => x.cpu_us)),
                    core_us: stat(rs.map((x) => x.core_us)),
                    per_s: stat(rs.map((x) => x.per_s)),
                    errors: errors.get(c.key) ?? 0,
                    runs: rs,
                };
            }
        }
    } finally {
        for (const r of running.values()) await r.stop();
        await backend.stop();
    }
    const cpu = (key: string, row: Row) => results[key]?.rows[row]?.cpu_us.median ?? null;
    const perRow = (row: Row) => Object.fromEntries(Object.keys(results).map((k) => [k, cpu(k, row)]));
    const paired = (a: string, b: string, row: Row, f: (x: RowResult["runs"][number]) => number) => {
        const ra = results[a]?.rows[row]?.runs;
        const rb = results[b]?.rows[row]?.runs;
        if (!ra || !rb) return undefined;
        return round(median(ra.map((x, i) => f(x) / f(rb[i]))), 3);
    };
    const ratios: Record<string, number> = {};
    for (const key of Object.keys(results).filter((k) => k.startsWith("product"))) {
        for (const row of ROWS) {
            for (const other of key === "product" ? ["nginx", "seed_literal"] : ["product", "nginx", "seed_literal"]) {
                const r = paired(key, other, row, (x) => x.cpu_us);
                if (r !== undefined) ratios[`${row}.${key}_vs_${other}`] = r;
            }
        }
    }
    return {
        haproxy_version: toolVersion("haproxy", ["-v"]),
        nginx_version: toolVersion("nginx", ["-v"]),
        cpus: plan,
        load: { seconds: o.seconds, rounds: o.rounds, connections: o.connections, h2: o.h2, path: o.path },
        backend: "nginx, 1 worker, return 200 (bench/lean-backend.conf), on the load cores",
        contenders: results,
        cpu_us_per_request: { http: perRow("http"), https: perRow("https"), h2: perRow("h2") },
        tls_handshake: {
            product_per_s: results.product?.rows.handshake?.per_s.median ?? 0,
            nginx_per_s: results.nginx?.rows.handshake?.per_s.median ?? 0,
            seed_literal_per_s: results.seed_literal?.rows.handshake?.per_s.median ?? null,
            cpu_us: perRow("handshake"),
        },
        ratios,
    };
}
