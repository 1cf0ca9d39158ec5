/*
 * `npm run bench`: performance of the product's haproxy.cfg on 127.0.0.1.
 *
 *   throughput  wrk keep-alive against one backend directly, the product's
 *               config, the seed's literal config and nginx (2 backends
 *               each), alternating run by run, medians
 *   reload      errors seen by a steady load during 50 re-render + reloads
 *   failover    errors while a killed api backend is still marked UP:
 *               the product, the seed literal, the product without L7
 *               retries, and nginx (proxy_next_upstream, its default)
 *   hash        1,000 track ids over 3 -> 4 -> 3 stream servers
 *   render      renderHaproxyConfig and `haproxy -c` for 10/100/1,000 servers
 *   change_to_serving_ms  config apply (render, check, save state, reload)
 *               to the first 200 from the added server
 *   vip_failover  a load balancer pair on the Incus lab (skipped without
 *               it): the VIP's move time and failed requests when the
 *               holder's container dies, and when its haproxy stops
 *   rate_limit_cost  proxy CPU per request with rateLimit off and on
 *               (limits out of reach), alternating run by run
 *
 *   instructions  (BENCH_ONLY only, slow) HAProxy's instructions per request
 *               under callgrind, and those in memcpy/memmove: the cost
 *               scenario's HAProxy contenders and variants, exact request counts
 *   syscalls    the proxy's syscalls per request under strace -f -c (HTTPS
 *               keep-alive, HTTP/2), the cost scenario's contenders and load
 *   cost        the headline: proxy CPU µs per request over HTTP/1.1,
 *               HTTPS and HTTP/2 and per new TLS connection (full and
 *               resumed handshakes), proxy pinned to its own core, lean
 *               fixed-cost backend; product, seed literal, nginx
 *
 * Writes bench/results.json, bench/results.md and bench/results.svg. Every
 * process it starts (haproxy, nginx, backends, wrk) runs in its own process
 * group and is stopped at the end, on failure and on Ctrl-C; temp dirs are
 * removed.
 *
 * Environment: BENCH_ROUNDS (5) BENCH_SECONDS (5) BENCH_CONNECTIONS (64)
 *   BENCH_WRK_THREADS (2) BENCH_RELOADS (50) BENCH_FAILOVER_INTER_MS (2000)
 *   BENCH_VIP_KILLS (5)
 *   BENCH_ONLY (comma list of: cost,syscalls,instructions,render,hash,change,throughput,reload,failover,vip,ratelimit)
 *   BENCH_COST_CONNECTIONS (32); BENCH_COST_VARIANTS=a,b: the proxy-cost
 *   scenario also runs the product with these bench/lib/variants.ts edits;
 *   BENCH_COST_ROWS=https,handshake: only these rows
 *   BENCH_STRICT=1: exit 1 when a target is missed.
 * `npm run bench:plot` (same as `npm run bench -- --plot`) redraws results.svg
 * and results.md from results.json. bench/README.md describes the whole bench.
 */
import { mkdirSync, readFileSync, writeFileSync } from "fs";
import * as os from "os";
import * as path from "path";
import { findBinary } from "../tests/support";
import { BACKENDS_WITH_SPARE, productSettings, startBackendProcesses, startNginx, startProduct, startSeedLiteral } from "./lib/contenders";
import { NGINX_BIN } from "./lib/nginx";
import { cleanupAll, installExitHandlers } from "./lib/procs";
import { log, median, round } from "./lib/stats";
import { renderPlot } from "./lib/plot";
import { renderCostPlot } from "./lib/cost-plot";
import { toolVersion } from "./lib/versions";
import { measureChangeToServing } from "./scenarios/change";
import { FailoverResult, measureFailover } from "./scenarios/failover";
import { HashResult, measureHash } from "./scenarios/hash";
import { measureReload, ReloadResult } from "./scenarios/reload";
import { measureRender, RenderResult } from "./scenarios/render";
import { Contender, ContenderSummary, measureThroughput } from "./scenarios/throughput";
import { measureRateLimitCost, RateLimitCostResult } from "./scenarios/rate-limit";
import { measureProxyCost, ProxyCostResult, Row, ROWS } from "./scenarios/proxy-cost";
import { INSTRUCTION_ROWS, InstructionsResult, measureInstructions } from "./scenarios/instructions";
import { measureSyscalls, SYSCALL_ROWS, SyscallsResult } from "./scenarios/syscalls";
import { measureVipFailover, VipFailoverResult } from "./scenarios/vip-failover";

const RESULTS_JSON = path.join(__dirname, "results.json");
const RESULTS_MD = path.join(__dirname, "results.md");
const RESULTS_SVG = path.join(__dirname, "results.svg");
const COST_SVG = path.join(__dirname, "proxy-cost.svg");

const env = (name: string, fallback: number) => {
    const v = Number(process.env[name] ?? fallback);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
    return v;
};

const cfg = {
    rounds: env("BENCH_ROUNDS", 5),
    seconds: env("BENCH_SECONDS", 5),
    connections: env("BENCH_CONNECTIONS", 64),
    threads: env("BENCH_WRK_THREADS", 2),
    reloads: env("BENCH_RELOADS", 50),
    failoverInterMs: env("BENCH_FAILOVER_INTER_MS", 2000),
    vipKills: env("BENCH_VIP_KILLS", 5),
    path: "/api/v1/bench",
    costConnections: env("BENCH_COST_CONNECTIONS", 32),
};
const COST_VARIANTS = (process.env.BENCH_COST_VARIANTS ?? "").split(",").filter(Boolean);
const COST_ROWS = process.env.BENCH_COST_ROWS === undefined ? undefined : (process.env.BENCH_COST_ROWS.split(",").filter(Boolean) as Row[]);
for (const row of COST_ROWS ?? [])
    if (!ROWS.includes(row)) throw new Error(`BENCH_COST_ROWS: unknown row ${row}; known: ${ROWS.join(", ")}`);
const ONLY = (process.env.BENCH_ONLY ?? "").split(",").filter(Boolean);
const wants = (s: string) => (ONLY.length === 0 && s !== "instructions") || ONLY.includes(s);

interface Throughput {
    direct_rps: number;
    product_rps: number;
    seed_literal_rps: number;
    nginx_rps: number;
    product_vs_direct: number;
    product_vs_nginx: number;
    p99_direct_ms: number;
    p99_product_ms: number;
    p99_seed_literal_ms: number;
    p99_nginx_ms: number;
    wrk: { threads: number; connections: number; seconds: number; runs_each: number; path: string };
    contenders: Record<string, ContenderSummary>;
    /** Median over rounds of the per-round ratio (runs of one round are adjacent in time: less exposed to drifting background load). */
    paired_ratios?: { product_vs_direct: number; product_vs_nginx: number; product_vs_seed_literal: number };
    /** Same contenders at light load (machine not saturated): the proxy hop's own latency. */
    light_load?: { threads: number; connections: number; seconds: number; runs_each: number; contenders: Record<string, ContenderSummary> };
}

interface Results {
    /** Headline: proxy CPU µs per request, from proxy_cost (this run's HAProxy). */
    cpu_us_per_request?: ProxyCostResult["cpu_us_per_request"];
    tls_handshake?: ProxyCostResult["tls_handshake"];
    proxy_cost?: ProxyCostResult;
    /** proxy_cost of each HAProxy version measured (a run on another release keeps the others'). */
    proxy_cost_by_haproxy?: Record<string, ProxyCostResult>;
    syscalls_by_haproxy?: Record<string, SyscallsResult>;
    instructions_by_haproxy?: Record<string, InstructionsResult>;
    throughput?: Throughput;
    reload?: ReloadResult;
    failover?: FailoverResult;
    hash?: HashResult;
    render?: RenderResult[];
    change_to_serving_ms?: number;
    change_to_serving?: object;
    vip_failover?: VipFailoverResult;
    rate_limit_cost?: RateLimitCostResult;
    targets?: Target[];
    meta: Record<string, unknown>;
}

interface Target {
    name: string;
    target: string;
    value: string;
    pass: boolean;
}

function meta(): Record<string, unknown> {
    return {
        date: new Date().toISOString(),
        command: "npm run bench",
        host: os.hostname(),
        cpus: os.cpus().length,
        cpu_model: os.cpus()[0]?.model ?? "",
        memory_gb: round(os.totalmem() / 2 ** 30, 1),
        loadavg_at_start: os.loadavg().map((l) => round(l, 2)),
        node: process.version,
        haproxy: toolVersion("haproxy", ["-v"]),
        nginx: toolVersion(NGINX_BIN, ["-v"]),
        wrk: toolVersion("wrk", ["-v"]),
        settings: cfg,
    };
}

function targets(r: Results): Target[] {
    const t: Target[] = [];
    const add = (name: string, target: string, value: number | undefined, pass: (v: number) => boolean) => {
        if (value === undefined) return;
        t.push({ name, target, value: String(value), pass: pass(value) });
    };
    // The performance goal: the proxy's own CPU per request at or below nginx's on every row, within 5% of the seed's over HTTP.
    const ratios = r.proxy_cost?.ratios ?? {};
    for (const row of ["http", "https", "h2", "handshake", "resumed"]) {
        add(`proxy CPU ${row}: product / nginx`, "<= 1.00", ratios[`${row}.product_vs_nginx`], (v) => v <= 1);
    }
    add("proxy CPU http: product / seed literal", "<= 1.05", ratios["http.product_vs_seed_literal"], (v) => v <= 1.05);
    const tp = r.throughput;
    add("throughput.product_vs_direct", ">= 0.80", tp?.product_vs_direct, (v) => v >= 0.8);
    add("throughput.product_vs_nginx", ">= 1.10", tp?.product_vs_nginx, (v) => v >= 1.1);
    if (tp) add("p99 product - p99 direct (ms)", "<= 1", round(tp.p99_product_ms - tp.p99_direct_ms, 3), (v) => v <= 1);
    add("reload.errors", "= 0", r.reload?.errors, (v) => v === 0);
    add("failover.product_errors", "= 0", r.failover?.product_errors, (v) => v === 0);
    add("failover.seed_literal_errors", "> 0", r.failover?.seed_literal_errors, (v) => v > 0);
    add("hash.moved_on_add", "0.15 - 0.35", r.hash?.moved_on_add, (v) => v >= 0.15 && v <= 0.35);
    add("hash.moved_unrelated_on_remove", "= 0", r.hash?.moved_unrelated_on_remove, (v) => v === 0);
    add("render_ms at 1,000 servers/pool", "< 100", r.render?.find((x) => x.servers === 1000)?.render_ms, (v) => v < 100);
    const vip = r.vip_failover;
    add("vip_failover.container_killed max move (ms)", "<= 3000", vip?.container_killed.move_ms.max, (v) => v <= 3000);
    add("vip_failover.haproxy_hung max move (ms)", "<= 3000", vip?.haproxy_hung.move_ms.max, (v) => v <= 3000);
    add("vip_failover.haproxy_stopped max move (ms)", "<= 3000", vip?.haproxy_stopped.move_ms.max, (v) => v <= 3000);
    add("vip_failover.container_killed retry-once client errors", "= 0", vip?.container_killed.failed_retry_once, (v) => v === 0);
    add("vip_failover.haproxy_hung retry-once client errors", "= 0", vip?.haproxy_hung.failed_retry_once, (v) => v === 0);
    add("vip_failover.haproxy_stopped retry-once client errors", "= 0", vip?.haproxy_stopped.failed_retry_once, (v) => v === 0);
    return t;
}

const ROW_LABELS: [row: Row, label: string][] = [
    ["http", "HTTP/1.1 keep-alive"],
    ["https", "HTTPS keep-alive (HTTP/1.1, TLS 1.3)"],
    ["h2", "HTTP/2 over TLS"],
    ["handshake", "new TLS connection, full handshake (µs each)"],
    ["resumed", "new TLS connection, session resumed (µs each)"],
];

/** The headline table of one HAProxy release's proxy-cost run, and its experiments. */
function costMarkdown(c: ProxyCostResult): string[] {
    const lines: string[] = [];
    const cell = (key: string, row: Row) => {
        const x = c.contenders[key]?.rows[row];
        return x ? `${x.cpu_us.median} (${x.cpu_us.min}–${x.cpu_us.max})` : "—";
    };
    const ratio = (name: string) => (c.ratios[name] === undefined ? "—" : `x${c.ratios[name]}`);
    lines.push(
        `${c.haproxy_version.replace(/ \d{4}\/\d{2}\/\d{2}$/, "")}, ${c.nginx_version}: proxy pinned to core ${c.cpus.proxy}, load and backend on ${c.cpus.load}; ` +
            `wrk -t1 -c${c.load.connections} (h2load -c${c.load.h2.connections} -m${c.load.h2.streams}), ${c.load.rounds} alternated runs of ${c.load.seconds} s, medians (min–max).`,
        "",
        "| proxy CPU µs per request | product | seed literal | nginx | product / nginx | product / seed |",
        "|---|---:|---:|---:|---:|---:|",
    );
    for (const [row, label] of ROW_LABELS) {
        lines.push(
            `| ${label} | ${cell("product", row)} | ${cell("seed_literal", row)} | ${cell("nginx", row)} | ${ratio(`${row}.product_vs_nginx`)} | ${ratio(`${row}.product_vs_seed_literal`)} |`,
        );
    }
    const hs = c.tls_handshake;
    lines.push(
        "",
        `Full TLS handshakes per second on the proxy's one core (8 s_time clients): product ${hs.product_per_s}, seed literal ${hs.seed_literal_per_s ?? "—"}, nginx ${hs.nginx_per_s}. ` +
            `Ratios are medians of per-round ratios (runs of one round are adjacent in time).`,
        "",
    );
    const variants = Object.keys(c.contenders).filter((k) => k.startsWith("product+"));
    if (variants.length > 0) {
        lines.push(
            "| experiment (same run) | HTTP/1.1 | HTTPS | HTTP/2 | full handshake | resumed |",
            "|---|---:|---:|---:|---:|---:|",
            `| product | ${ROW_LABELS.map(([row]) => cell("product", row)).join(" | ")} |`,
        );
        for (const v of variants) {
            lines.push(`| ${v} | ${ROW_LABELS.map(([row]) => `${cell(v, row)} ${ratio(`${row}.${v}_vs_product`)}`).join(" | ")} |`);
        }
        lines.push("");
    }
    return lines;
}

/** A later run of one scenario alone (BENCH_ONLY), kept in meta.partial_runs. */
interface PartialRun {
    date: string;
    loadavg_at_start: number[];
}

/** A by-release section's values in release order (2.6 before 3.0). */
function byRelease<T extends { haproxy_version: string }>(section: Record<string, T> | undefined): T[] {
    return Object.values(section ?? {}).sort((a, b) => a.haproxy_version.localeCompare(b.haproxy_version, "en", { numeric: true }));
}

/** proxy_cost_by_haproxy in release order. */
function costsByRelease(r: Results): ProxyCostResult[] {
    return byRelease(r.proxy_cost_by_haproxy);
}

/** One release's instructions per request: a column per HAProxy contender, the ratio to the seed literal beside each. */
function instructionsMarkdown(ins: InstructionsResult): string[] {
    const keys = [...new Set(INSTRUCTION_ROWS.flatMap((row) => Object.keys(ins.per_request[row] ?? {})))];
    const lines = [
        `${ins.haproxy_version.replace(/ \d{4}\/\d{2}\/\d{2}$/, "")}: instructions per request under callgrind (BENCH_ONLY=instructions: ` +
            `${ins.requests} requests after a warm-up, one core; in brackets those in memcpy/memmove; x: to the seed literal).`,
        "",
        `| instructions per request | ${keys.join(" | ")} |`,
        `|---|${keys.map(() => "---:").join("|")}|`,
    ];
    for (const row of INSTRUCTION_ROWS) {
        const at = ins.per_request[row] ?? {};
        const seed = at.seed_literal?.ir;
        const cell = (k: string) =>
            at[k] === undefined
                ? "—"
                : `${at[k].ir} (${at[k].memcpy_ir})${seed === undefined || k === "seed_literal" ? "" : ` x${round(at[k].ir / seed, 3)}`}`;
        lines.push(`| ${ROW_LABELS.find(([r]) => r === row)?.[1] ?? row} | ${keys.map(cell).join(" | ")} |`);
    }
    lines.push("");
    return lines;
}

/** The socket I/O calls shown per request, receives then sends; "all" counts every syscall strace saw. */
const IO_SYSCALLS = ["recvfrom", "read", "sendto", "write", "writev"];

/** The syscalls per request of one release: one row per load and contender, its socket I/O calls and all calls. */
function syscallsMarkdown(sys: SyscallsResult): string[] {
    const lines = [
        `${sys.haproxy_version.replace(/ \d{4}\/\d{2}\/\d{2}$/, "")}, ${sys.nginx_version}: the proxy's syscalls per request under \`strace -f -c\` ` +
            `(BENCH_ONLY=syscalls: the cost scenario's contenders and load, one run of ${sys.load.seconds} s each; counts, not times).`,
        "",
        `| syscalls per request | ${IO_SYSCALLS.join(" | ")} | all |`,
        `|---|${IO_SYSCALLS.map(() => "---:").join("|")}|---:|`,
    ];
    for (const row of SYSCALL_ROWS) {
        for (const [key, calls] of Object.entries(sys.per_request[row] ?? {})) {
            const all = round(
                Object.values(calls).reduce((a, b) => a + b, 0),
                2,
            );
            lines.push(
                `| ${ROW_LABELS.find(([r]) => r === row)?.[1] ?? row}: ${key} | ${IO_SYSCALLS.map((n) => calls[n] ?? "—").join(" | ")} | ${all} |`,
            );
        }
    }
    lines.push("");
    return lines;
}

const EXPERIMENTS_DIR = path.join(__dirname, "experiments");

/** bench/experiments/<date>.json: one proxy-cost run with variants, as measured (see its README). */
function writeExperiment(cost: ProxyCostResult, date: string): void {
    mkdirSync(EXPERIMENTS_DIR, { recursive: true });
    const env = ["BENCH_ONLY", "BENCH_ROUNDS", "BENCH_SECONDS", "BENCH_COST_ROWS", "BENCH_COST_VARIANTS", "BENCH_COST_CONNECTIONS"]
        .filter((k) => process.env[k] !== undefined)
        .map((k) => `${k}=${process.env[k]}`);
    const file = path.join(EXPERIMENTS_DIR, `${date.replace(/[:.]/g, "-")}.json`);
    writeFileSync(file, JSON.stringify({ date, command: [...env, "npm run bench"].join(" "), proxy_cost: cost }, null, 2) + "\n");
    log(`experiment kept in ${path.relative(process.cwd(), file)}`);
}

function markdown(r: Results): string {
    const lines: string[] = [];
    const m = r.meta;
    lines.push(
        `Measured ${String(m.date).slice(0, 10)} on ${m.cpus} cores (${m.cpu_model}), ${m.haproxy}, ${m.nginx}, ${m.wrk}; \`${m.command}\`.`,
        "",
    );
    // Later runs of some scenarios (BENCH_ONLY) replaced their tables: say which, and when.
    const byRun = new Map<string, string[]>();
    for (const [scenario, run] of Object.entries((m.partial_runs as Record<string, PartialRun> | undefined) ?? {})) {
        const key = `${String(run.date).slice(0, 10)} (load average at start ${run.loadavg_at_start.join(", ")})`;
        byRun.set(key, [...(byRun.get(key) ?? []), scenario]);
    }
    for (const [when, scenarios] of byRun) {
        lines.push(
            `Measured again ${when}: ${scenarios.join(", ")}; those tables and rows are from then, the rest from the date above.`,
            "",
        );
    }
    for (const c of costsByRelease(r)) lines.push(...costMarkdown(c));
    for (const sys of byRelease(r.syscalls_by_haproxy)) lines.push(...syscallsMarkdown(sys));
    for (const ins of byRelease(r.instructions_by_haproxy)) lines.push(...instructionsMarkdown(ins));
    if (r.throughput) {
        const tp = r.throughput;
        lines.push(
            `Throughput: wrk -t${tp.wrk.threads} -c${tp.wrk.connections} -d${tp.wrk.seconds}s keep-alive, GET ${tp.wrk.path}, ${tp.wrk.runs_each} alternated runs each, medians.`,
            "",
            "| contender | requests/s | vs direct | p50 ms | p99 ms | CPU µs/request: wrk / proxy / backends | errors |",
            "|---|---:|---:|---:|---:|---|---:|",
        );
        for (const c of Object.values(tp.contenders)) {
            const cpu = c.cpu_us_per_req;
            lines.push(
                `| ${c.label} | ${c.rps} | ${round(c.rps / tp.direct_rps, 3)} | ${c.p50_ms} | ${c.p99_ms} | ${cpu.wrk} / ${cpu.proxy} / ${cpu.backends} | ${c.errors} |`,
            );
        }
        lines.push("");
        const ll = tp.light_load;
        if (ll) {
            const direct = ll.contenders.direct;
            lines.push(
                `Light load (machine not saturated): wrk -t${ll.threads} -c${ll.connections} -d${ll.seconds}s, ${ll.runs_each} alternated runs each, medians.`,
                "",
                "| contender | requests/s | p50 ms | p99 ms | p99 - direct p99 |",
                "|---|---:|---:|---:|---:|",
            );
            for (const c of Object.values(ll.contenders)) {
                lines.push(`| ${c.label} | ${c.rps} | ${c.p50_ms} | ${c.p99_ms} | ${round(c.p99_ms - direct.p99_ms, 3)} |`);
            }
            lines.push("");
        }
    }
    lines.push("| measurement | value |", "|---|---|");
    if (r.throughput) {
        const tp = r.throughput;
        const pr = tp.paired_ratios;
        lines.push(
            `| product / direct throughput | ${tp.product_vs_direct}${pr ? ` (per-round median ${pr.product_vs_direct})` : ""} |`,
            `| product / nginx throughput | ${tp.product_vs_nginx}${pr ? ` (per-round median ${pr.product_vs_nginx})` : ""} |`,
        );
        lines.push(`| p99 product - direct | ${round(tp.p99_product_ms - tp.p99_direct_ms, 3)} ms |`);
    }
    if (r.reload)
        lines.push(
            `| reload: errors during ${r.reload.reloads} reloads under load | ${r.reload.errors} of ${r.reload.requests} requests |`,
        );
    if (r.failover) {
        const f = r.failover;
        lines.push(
            `| failover: errors until the killed server is DOWN (checks every ${f.check_interval_ms} ms) | product ${f.product_errors} of ${f.product.requests}, seed literal ${f.seed_literal_errors} of ${f.seed_literal.requests}` +
                `${f.product_without_retries ? `, product without L7 retries ${f.product_without_retries_errors} of ${f.product_without_retries.requests}` : ""}` +
                `${f.nginx ? `, nginx (proxy_next_upstream error timeout, no active checks; the product's window) ${f.nginx_errors} of ${f.nginx.requests}` : ""} |`,
        );
    }
    if (r.hash) {
        const h = r.hash;
        lines.push(
            `| hash: tracks moved adding a 4th server (${h.tracks} tracks) | ${h.moved_on_add} (ideal ${h.ideal_on_add}) |`,
            `| hash: unrelated tracks moved removing ${h.removed_server} | ${h.moved_unrelated_on_remove} (${h.moved_unrelated_on_remove_count} tracks) |`,
        );
    }
    for (const x of r.render ?? [])
        lines.push(`| render / haproxy -c, ${x.servers} servers per pool | ${x.render_ms} ms / ${x.check_ms} ms |`);
    if (r.change_to_serving_ms !== undefined)
        lines.push(`| config change to first 200 from the new server | ${r.change_to_serving_ms} ms |`);
    if (r.vip_failover) {
        for (const [what, k] of [
            ["master container killed", r.vip_failover.container_killed],
            ["haproxy hung in the master (SIGSTOP)", r.vip_failover.haproxy_hung],
            ["planned haproxy stop in the master", r.vip_failover.haproxy_stopped],
        ] as const) {
            lines.push(
                `| pair: VIP move, ${what} (${k.kills} times; min / median / max) | ${k.move_ms.min} / ${k.move_ms.median} / ${k.move_ms.max} ms; ` +
                    `failed: plain client ${k.failed_plain}, retry-once client ${k.failed_retry_once} of ${k.requests} requests; ` +
                    `3 s-timeout client ${k.failed_patient} of ${k.patient_requests} |`,
            );
        }
    }
    if (r.rate_limit_cost) {
        const c = r.rate_limit_cost;
        lines.push(
            `| rateLimit on vs off: proxy CPU per request (limits out of reach; ${c.on.runs.length} alternated runs each) | ` +
                `${c.proxy_cpu_us_per_request.on} vs ${c.proxy_cpu_us_per_request.off} µs, x${c.proxy_cpu_us_per_request.on_vs_off} ` +
                `(per-round median x${c.paired_on_vs_off}); ${c.on.rps} vs ${c.off.rps} requests/s |`,
        );
    }
    lines.push("", "| target | wanted | measured | |", "|---|---|---|---|");
    for (const t of r.targets ?? []) lines.push(`| ${t.name} | ${t.target} | ${t.value} | ${t.pass ? "met" : "**missed**"} |`);
    return lines.join("\n") + "\n";
}

function plotFor(r: Results): string {
    if (!r.throughput) throw new Error("results.json has no throughput section to plot");
    return renderPlot(r.throughput.contenders, { date: String(r.meta.date).slice(0, 10), cpus: r.meta.cpus as number });
}

async function main(): Promise<number> {
    // `npm run bench:plot`: redraw results.svg (and results.md) from results.json, no measuring.
    if (process.argv.includes("--plot")) {
        const r = JSON.parse(readFileSync(RESULTS_JSON, "utf8")) as Results;
        writeFileSync(RESULTS_SVG, plotFor(r));
        if (r.proxy_cost_by_haproxy) writeFileSync(COST_SVG, renderCostPlot(costsByRelease(r)));
        writeFileSync(RESULTS_MD, markdown(r));
        log(`redrew ${path.relative(process.cwd(), RESULTS_SVG)} and results.md from results.json`);
        return 0;
    }
    installExitHandlers();
    // Only what the wanted scenarios run (the VIP scenario needs the Incus lab instead).
    const loopback = ["cost", "syscalls", "instructions", "render", "hash", "change", "throughput", "reload", "failover", "ratelimit"].some(
        wants,
    );
    const load = ["cost", "syscalls", "throughput", "reload", "failover", "ratelimit"].some(wants);
    for (const [bin, pkg, needed] of [
        ["haproxy", "haproxy", loopback],
        ["wrk", "wrk", load],
        ["nginx", "nginx-light", load],
        ["h2load", "nghttp2-client", wants("cost") || wants("syscalls") || wants("instructions")],
        ["openssl", "openssl", wants("cost") || wants("syscalls")],
        ["taskset", "util-linux", wants("cost") || wants("syscalls")],
        ["strace", "strace", wants("syscalls")],
        ["valgrind", "valgrind", wants("instructions")],
    ] as const) {
        if (needed && findBinary(bin) === undefined) throw new Error(`${bin} not found: apt-get install -y ${pkg}`);
    }
    const started = Date.now();
    const results: Results = { meta: meta() };
    // This run's start: a partial run's meta below becomes the previous run's.
    const runDate = String(results.meta.date);
    // A partial run (BENCH_ONLY) keeps the other sections of the previous results.json.
    if (ONLY.length > 0) {
        try {
            const previous = JSON.parse(readFileSync(RESULTS_JSON, "utf8")) as Results;
            // The kept sections were measured under the previous meta: it stays, and each scenario
            // measured again since is noted beside it with its own run (the earlier partial runs' too).
            const runs: Record<string, PartialRun> = { ...(previous.meta.partial_runs as Record<string, PartialRun> | undefined) };
            const last = previous.meta.last_partial_run as (PartialRun & { scenarios: string[] }) | undefined;
            for (const scenario of last?.scenarios ?? []) runs[scenario] ??= { date: last!.date, loadavg_at_start: last!.loadavg_at_start };
            for (const scenario of ONLY) runs[scenario] = { date: runDate, loadavg_at_start: results.meta.loadavg_at_start as number[] };
            const { last_partial_run: _older, ...kept } = previous.meta;
            void _older;
            Object.assign(results, previous, { meta: { ...kept, partial_runs: runs } });
        } catch {
            /* none yet */
        }
    }
    try {
        if (wants("cost")) {
            const cost = await measureProxyCost({
                rounds: cfg.rounds,
                seconds: cfg.seconds,
                connections: cfg.costConnections,
                h2: { connections: 4, streams: 8 },
                path: cfg.path,
                variants: COST_VARIANTS,
                rows: COST_ROWS,
            });
            results.proxy_cost = cost;
            results.cpu_us_per_request = cost.cpu_us_per_request;
            results.tls_handshake = cost.tls_handshake;
            results.proxy_cost_by_haproxy = { ...results.proxy_cost_by_haproxy, [cost.haproxy_version]: cost };
            // An experiment's before/after stays in the bench's history, kept or not.
            if (COST_VARIANTS.length > 0) writeExperiment(cost, runDate);
        }
        if (wants("syscalls")) {
            const sys = await measureSyscalls({
                rounds: 1,
                seconds: cfg.seconds,
                connections: cfg.costConnections,
                h2: { connections: 4, streams: 8 },
                path: cfg.path,
                variants: COST_VARIANTS,
            });
            results.syscalls_by_haproxy = { ...results.syscalls_by_haproxy, [sys.haproxy_version]: sys };
        }
        if (wants("instructions")) {
            const ins = await measureInstructions({
                rounds: 1,
                seconds: 0,
                connections: 4,
                h2: { connections: 4, streams: 8 },
                path: cfg.path,
                variants: COST_VARIANTS,
                requests: Number(process.env.BENCH_INSTRUCTION_REQUESTS ?? 2000),
            });
            results.instructions_by_haproxy = { ...results.instructions_by_haproxy, [ins.haproxy_version]: ins };
        }
        if (wants("render")) results.render = await measureRender([10, 100, 1000], 5);
        if (wants("hash")) results.hash = await measureHash(1000);
        if (wants("vip")) results.vip_failover = await measureVipFailover(cfg.vipKills);
        if (wants("change")) {
            const c = await measureChangeToServing(5);
            results.change_to_serving_ms = c.change_to_serving_ms;
            results.change_to_serving = c;
        }
        if (["throughput", "reload", "failover", "ratelimit"].some(wants)) {
            const [a1, a2, a3, s1, s2] = await startBackendProcesses(BACKENDS_WITH_SPARE);
            if (wants("throughput")) {
                const product = await startProduct(productSettings([a1, a2], [s1, s2]));
                const seed = await startSeedLiteral([a1, a2], [s1, s2]);
                const nginx = await startNginx([a1, a2], [s1, s2]);
                const both = [a1.pgid, a2.pgid];
                const contenders: Contender[] = [
                    { key: "direct", label: "direct (1 backend)", port: a1.port, proxyPgids: [], backendPgids: [a1.pgid] },
                    { key: "product", label: "product haproxy.cfg", port: product.httpPort, proxyPgids: [product.pid], backendPgids: both },
                    {
                        key: "seed_literal",
                        label: "seed literal haproxy.cfg",
                        port: seed.httpPort,
                        proxyPgids: [seed.pgid],
                        backendPgids: both,
                    },
                    { key: "nginx", label: "nginx", port: nginx.httpPort, proxyPgids: [nginx.pgid], backendPgids: both },
                ];
                const s = await measureThroughput(contenders, {
                    rounds: cfg.rounds,
                    seconds: cfg.seconds,
                    threads: cfg.threads,
                    connections: cfg.connections,
                    path: cfg.path,
                    warmupSeconds: 2,
                });
                const get = (k: "direct" | "product" | "seed_literal" | "nginx") => s.get(k) as ContenderSummary;
                results.throughput = {
                    direct_rps: get("direct").rps,
                    product_rps: get("product").rps,
                    seed_literal_rps: get("seed_literal").rps,
                    nginx_rps: get("nginx").rps,
                    product_vs_direct: round(get("product").rps / get("direct").rps, 3),
                    product_vs_nginx: round(get("product").rps / get("nginx").rps, 3),
                    p99_direct_ms: get("direct").p99_ms,
                    p99_product_ms: get("product").p99_ms,
                    p99_seed_literal_ms: get("seed_literal").p99_ms,
                    p99_nginx_ms: get("nginx").p99_ms,
                    wrk: {
                        threads: cfg.threads,
                        connections: cfg.connections,
                        seconds: cfg.seconds,
                        runs_each: cfg.rounds,
                        path: cfg.path,
                    },
                    contenders: Object.fromEntries([...s.entries()]),
                };
                const paired = (a: string, b: string) => {
                    const ra = (s.get(a) as ContenderSummary).runs;
                    const rb = (s.get(b) as ContenderSummary).runs;
                    return round(median(ra.map((x, i) => x.rps / rb[i].rps)), 3);
                };
                results.throughput.paired_ratios = {
                    product_vs_direct: paired("product", "direct"),
                    product_vs_nginx: paired("product", "nginx"),
                    product_vs_seed_literal: paired("product", "seed_literal"),
                };
                const light = { rounds: 3, seconds: 3, threads: 1, connections: 4 };
                log(`light load: wrk -t${light.threads} -c${light.connections}, ${light.rounds} runs each`);
                const l = await measureThroughput(contenders, { ...light, path: cfg.path, warmupSeconds: 1 });
                results.throughput.light_load = {
                    threads: light.threads,
                    connections: light.connections,
                    seconds: light.seconds,
                    runs_each: light.rounds,
                    contenders: Object.fromEntries([...l.entries()]),
                };
                await product.stop();
                await seed.stop();
                await nginx.stop();
            }
            if (wants("reload"))
                results.reload = await measureReload(
                    { api: [a1, a2, a3], stream: [s1, s2] },
                    { reloads: cfg.reloads, threads: 1, connections: 32 },
                );
            // The main load's shape, for the side-by-side scenarios.
            const sideBySide = {
                rounds: cfg.rounds,
                seconds: cfg.seconds,
                threads: cfg.threads,
                connections: cfg.connections,
                path: cfg.path,
            };
            if (wants("ratelimit"))
                results.rate_limit_cost = await measureRateLimitCost([a1, a2], [s1, s2], { ...sideBySide, warmupSeconds: 2 });
            if (wants("failover")) {
                results.failover = await measureFailover(
                    { api: [a1, a2], stream: [s1, s2] },
                    { threads: 1, connections: 32, checkIntervalMs: cfg.failoverInterMs },
                );
            }
        }
    } finally {
        await cleanupAll();
    }
    results.targets = targets(results);
    const ordered: Results = {
        cpu_us_per_request: results.cpu_us_per_request,
        tls_handshake: results.tls_handshake,
        proxy_cost: results.proxy_cost,
        proxy_cost_by_haproxy: results.proxy_cost_by_haproxy,
        syscalls_by_haproxy: results.syscalls_by_haproxy,
        instructions_by_haproxy: results.instructions_by_haproxy,
        throughput: results.throughput,
        reload: results.reload,
        failover: results.failover,
        hash: results.hash,
        render: results.render,
        change_to_serving_ms: results.change_to_serving_ms,
        change_to_serving: results.change_to_serving,
        vip_failover: results.vip_failover,
        rate_limit_cost: results.rate_limit_cost,
        targets: results.targets,
        meta: results.meta,
    };
    results.meta.duration_s = round((Date.now() - started) / 1000, 1);
    results.meta.loadavg_at_end = os.loadavg().map((l) => round(l, 2));
    writeFileSync(RESULTS_JSON, JSON.stringify(ordered, null, 2) + "\n");
    const md = markdown(results);
    writeFileSync(RESULTS_MD, md);
    if (results.throughput) writeFileSync(RESULTS_SVG, plotFor(results));
    if (results.proxy_cost_by_haproxy) writeFileSync(COST_SVG, renderCostPlot(costsByRelease(results)));
    process.stdout.write("\n" + md);
    log(`done in ${results.meta.duration_s} s: ${path.relative(process.cwd(), RESULTS_JSON)}, results.md, results.svg`);
    const missed = results.targets.filter((x) => !x.pass);
    if (missed.length > 0) log(`targets missed: ${missed.map((x) => `${x.name} (${x.value}, wanted ${x.target})`).join("; ")}`);
    return missed.length > 0 && process.env.BENCH_STRICT === "1" ? 1 : 0;
}

main().then(
    (code) => process.exit(code),
    async (err) => {
        console.error(err);
        await cleanupAll();
        process.exit(2);
    },
);
