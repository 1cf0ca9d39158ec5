import { HaproxySettings } from "../../components/settings";
import { BackendProcess } from "../lib/backends";
import { productSettings, startProduct } from "../lib/contenders";
import { log, median, round } from "../lib/stats";
import { ContenderSummary, measureThroughput, ThroughputOptions } from "./throughput";

/**
 * What per-client rate limiting costs the proxy: the product's config with
 * `rateLimit` off and on (request and connection limits, far above what wrk
 * sends so nothing is refused), alternated run by run, proxy CPU time per
 * request from /proc. wrk comes from one address, so every request updates
 * the same table entry: the cost of the lookup and update, not of a full
 * table.
 */
export interface RateLimitCostResult {
    off: ContenderSummary;
    on: ContenderSummary;
    /** Proxy CPU µs per request, medians, and on / off (1.00 = free). */
    proxy_cpu_us_per_request: { off: number; on: number; on_vs_off: number };
    /** Median over rounds of the per-round on / off ratio (runs of a round are adjacent in time). */
    paired_on_vs_off: number;
    rate_limit: HaproxySettings["rateLimit"];
}

/** Limits no bench load reaches (wrk sends well under 100,000 requests a second). */
const UNREACHED: HaproxySettings["rateLimit"] = { requests: 1000000, periodSeconds: 10, maxConcurrentPerClient: 10000 };

export async function measureRateLimitCost(
    api: BackendProcess[],
    stream: BackendProcess[],
    o: ThroughputOptions,
): Promise<RateLimitCostResult> {
    const off = await startProduct(productSettings(api, stream));
    const on = await startProduct(productSettings(api, stream, { rateLimit: UNREACHED }));
    const backendPgids = api.map((b) => b.pgid);
    const s = await measureThroughput(
        [
            { key: "off", label: "product, rateLimit off", port: off.httpPort, proxyPgids: [off.pid], backendPgids },
            { key: "on", label: "product, rateLimit on", port: on.httpPort, proxyPgids: [on.pid], backendPgids },
        ],
        o,
    );
    const refused = (await on.statRow("veza_rate_limited", "BACKEND")).hrsp_4xx;
    await off.stop();
    await on.stop();
    if (refused !== "0")
        throw new Error(`the rate-limited contender refused ${refused} requests: the limits were meant to be out of reach`);
    const offRuns = s.get("off") as ContenderSummary;
    const onRuns = s.get("on") as ContenderSummary;
    const result: RateLimitCostResult = {
        off: offRuns,
        on: onRuns,
        proxy_cpu_us_per_request: {
            off: offRuns.cpu_us_per_req.proxy,
            on: onRuns.cpu_us_per_req.proxy,
            on_vs_off: round(onRuns.cpu_us_per_req.proxy / offRuns.cpu_us_per_req.proxy, 3),
        },
        paired_on_vs_off: round(median(onRuns.runs.map((r, i) => r.cpu_us_per_req.proxy / offRuns.runs[i].cpu_us_per_req.proxy)), 3),
        rate_limit: UNREACHED,
    };
    log(
        `rate limit cost: proxy CPU ${result.proxy_cpu_us_per_request.off} µs/request off, ${result.proxy_cpu_us_per_request.on} on ` +
            `(x${result.proxy_cpu_us_per_request.on_vs_off}; per-round median x${result.paired_on_vs_off}); ` +
            `${offRuns.rps} vs ${onRuns.rps} requests/s`,
    );
    return result;
}
