/*
 * Tuning experiments on COPIES of the product's rendered haproxy.cfg
 * (written under bench/tmp/, never to templates/). Not part of `npm run
 * bench`; run by hand before changing the template's global, defaults or
 * server lines:
 *
 *   npx ts-node bench/tune.ts                 # every cost variant's proxy CPU per request
 *   npx ts-node bench/tune.ts nbthread1 ...   # only these, beside the product
 *   npx ts-node bench/tune.ts --reload [variants...]   # reload errors instead
 *   npx ts-node bench/tune.ts --failover [variants...] # failover errors instead
 *
 * The cost mode is the proxy-cost scenario run with BENCH_COST_VARIANTS
 * (bench/run.ts): one way to measure a variant's cost, the headline's.
 */
import { mkdirSync, rmSync } from "fs";
import * as path from "path";
import { onCleanup, sleep } from "../tests/support";
import { BACKENDS_WITH_SPARE, productSettings, renderProductCopy, startBackendProcesses } from "./lib/contenders";
import { LiteralHaproxy } from "./lib/literal";
import { cleanupAll, installExitHandlers } from "./lib/procs";
import { log } from "./lib/stats";
import { oneFailover } from "./scenarios/failover";
import { startWrk } from "./lib/wrk";
import { applyVariant, VARIANTS } from "./lib/variants";

/**
 * --reload: for each variant, steady wrk load while the variant's config is
 * reloaded `reloads` times through the master CLI (state saved first),
 * alternating 2 and 3 api servers like the bench's reload scenario.
 */
async function reloadMode(names: string[]): Promise<void> {
    const reloads = Number(process.env.BENCH_RELOADS ?? 50);
    const tmp = path.join(__dirname, "tmp", `tune-reload-${process.pid}`);
    mkdirSync(tmp, { recursive: true });
    onCleanup(() => rmSync(tmp, { recursive: true, force: true }));
    const [a1, a2, a3, s1, s2] = await startBackendProcesses(BACKENDS_WITH_SPARE);
    const rows: string[] = [];
    for (const name of names) {
        const dir = path.join(tmp, name);
        mkdirSync(dir, { recursive: true });
        const two = await renderProductCopy(dir, productSettings([a1, a2], [s1, s2]));
        const three = await renderProductCopy(dir, productSettings([a1, a2, a3], [s1, s2]), two);
        const edit = (cfg: string) => applyVariant(name, cfg);
        const h = await LiteralHaproxy.start(edit(two.config), { httpPort: two.httpPort, dir, adminSocket: two.adminSocket });
        onCleanup(() => h.stop(false));
        const wrk = startWrk({
            url: `http://127.0.0.1:${two.httpPort}/api/v1/bench`,
            threads: 1,
            connections: 32,
            durationSec: 600,
            countStatus: true,
        });
        try {
            await sleep(1000);
            for (let i = 0; i < reloads; i++) {
                await h.reload({ config: edit((i % 2 === 0 ? three : two).config), stateFile: path.join(dir, "server-state") });
            }
            await sleep(1000);
        } finally {
            wrk.interrupt();
        }
        const r = await wrk.done;
        await h.stop(false);
        const line = `| ${name} | ${reloads} | ${r.requests} | ${r.non2xx + r.socketErrors} | ${r.non2xx} | ${JSON.stringify(r.errors)} |`;
        log(line);
        rows.push(line);
    }
    console.log(`\n| variant | reloads | requests | errors | non-2xx | wrk errors |\n|---|---:|---:|---:|---:|---|\n${rows.join("\n")}`);
}

/**
 * --failover: for each variant, BENCH_REPEATS times: steady wrk load, kill
 * backend-api-1 right after a health check, count errors until DOWN (+ drain),
 * exactly like the bench's failover scenario (checks every 2 s).
 */
async function failoverMode(names: string[]): Promise<void> {
    const repeats = Number(process.env.BENCH_REPEATS ?? 3);
    const tmp = path.join(__dirname, "tmp", `tune-failover-${process.pid}`);
    mkdirSync(tmp, { recursive: true });
    onCleanup(() => rmSync(tmp, { recursive: true, force: true }));
    const [a1, a2, s1, s2] = await startBackendProcesses(["backend-api-1", "backend-api-2", "stream-srv-1", "stream-srv-2"]);
    const rows: string[] = [];
    for (let rep = 0; rep < repeats; rep++) {
        for (const name of names) {
            const dir = path.join(tmp, `${name}-${rep}`);
            mkdirSync(dir, { recursive: true });
            const copy = await renderProductCopy(dir, productSettings([a1, a2], [s1, s2], { healthCheckIntervalMs: 2000 }));
            const cfg = applyVariant(name, copy.config);
            const h = await LiteralHaproxy.start(cfg, { httpPort: copy.httpPort, dir, adminSocket: copy.adminSocket });
            onCleanup(() => h.stop(false));
            try {
                const r = await oneFailover(h, a1, { threads: 1, connections: 32, drainMs: 4000 });
                const line = `| ${name} | ${rep + 1} | ${r.requests} | ${r.errors} | ${r.non2xx} | ${JSON.stringify(r.socket_errors_by_kind)} | ${r.kill_to_down_ms} |`;
                log(line);
                rows.push(line);
            } finally {
                await h.stop(false);
            }
        }
    }
    console.log(
        `\n| variant | run | requests | errors | non-2xx | socket errors | kill to DOWN ms |\n|---|---:|---:|---:|---:|---|---:|\n${rows.join("\n")}`,
    );
}

/** The variants made for --failover and --reload; the rest are cost variants. */
const FAILOVER_VARIANTS = ["no-shutdown-sessions", "observe-l4", "observe-l4-no-shutdown", "split-ws"];
const RELOAD_VARIANTS = ["idle-close-on-response", "close-spread-1s", "idle-close-spread"];

async function main(): Promise<void> {
    installExitHandlers();
    const reload = process.argv.includes("--reload");
    const failover = process.argv.includes("--failover");
    const wanted = process.argv.slice(2).filter((a) => !a.startsWith("--"));
    const names = wanted.length > 0 ? ["product", ...wanted.filter((w) => w !== "product")] : Object.keys(VARIANTS);
    for (const n of names) if (!(n in VARIANTS)) throw new Error(`unknown variant ${n}; known: ${Object.keys(VARIANTS).join(", ")}`);
    if (failover) {
        try {
            await failoverMode(names.filter((n) => wanted.length > 0 || n === "product" || FAILOVER_VARIANTS.includes(n)));
        } finally {
            await cleanupAll();
        }
        return;
    }
    if (reload) {
        try {
            await reloadMode(names.filter((n) => wanted.length > 0 || n === "product" || RELOAD_VARIANTS.includes(n)));
        } finally {
            await cleanupAll();
        }
        return;
    }
    // Without --reload or --failover: the variants' proxy cost is the proxy-cost scenario's own run
    // (bench/run.ts with BENCH_ONLY=cost and BENCH_COST_VARIANTS): the same alternated rounds, rows and
    // pinning as the headline, beside the product, recorded in bench/experiments/.
    const cost = names.filter((n) => n !== "product" && (wanted.length > 0 || ![...FAILOVER_VARIANTS, ...RELOAD_VARIANTS].includes(n)));
    process.env.BENCH_ONLY = "cost";
    process.env.BENCH_COST_VARIANTS = cost.join(",");
    log(`the variants' proxy cost: BENCH_ONLY=cost BENCH_COST_VARIANTS=${cost.join(",")} (bench/run.ts)`);
    await import("./run");
}

if (require.main === module) {
    main().catch((e) => {
        console.error(e);
        process.exitCode = 1;
    });
}
