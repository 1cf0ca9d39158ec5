import { HaproxySettings } from "../../components/settings";
import { BackendProcess } from "../lib/backends";
import { productSettings, startProduct } from "../lib/contenders";
import { sleep } from "../../tests/support";
import { log, median, nowMs, round } from "../lib/stats";
import { startWrk } from "../lib/wrk";

export interface ReloadResult {
    reloads: number;
    requests: number;
    /** Every request that did not get a 2xx: non-2xx answers + socket errors (connect, read, write, timeout). */
    errors: number;
    non2xx: number;
    socket_errors: { connect: number; read: number; write: number; timeout: number };
    rps: number;
    reload_ms_median: number;
    change: string;
}

/**
 * Steady wrk load on the product config while it is re-rendered and reloaded
 * `reloads` times through the harness (save state + master reload + wait for
 * the new worker). The re-render alternates between adding and removing a
 * third api server, so every reload really changes the config (and half of
 * them drop a server that old workers may still be talking to).
 */
export async function measureReload(
    backends: { api: BackendProcess[]; stream: BackendProcess[] },
    o: { reloads: number; threads: number; connections: number },
): Promise<ReloadResult> {
    const [a1, a2, a3] = backends.api;
    const two = productSettings([a1, a2], backends.stream);
    const three = productSettings([a1, a2, a3], backends.stream);
    const h = await startProduct(two);
    try {
        const wrk = startWrk({
            url: `http://127.0.0.1:${h.httpPort}/api/v1/bench`,
            threads: o.threads,
            connections: o.connections,
            durationSec: 600,
            countStatus: true,
        });
        const times: number[] = [];
        try {
            await sleep(1000);
            for (let i = 0; i < o.reloads; i++) {
                const next: HaproxySettings = { ...h.settings, ...(i % 2 === 0 ? three : two) };
                const t0 = nowMs();
                await h.reload(next);
                times.push(nowMs() - t0);
            }
            await sleep(1000);
        } finally {
            wrk.interrupt();
        }
        const res = await wrk.done;
        const e = res.errors;
        const r: ReloadResult = {
            reloads: h.reloads,
            requests: res.requests,
            errors: res.non2xx + res.socketErrors,
            non2xx: res.non2xx,
            socket_errors: { connect: e.connect, read: e.read, write: e.write, timeout: e.timeout },
            rps: Math.round(res.rps),
            reload_ms_median: round(median(times), 1),
            change: "each reload adds or removes backend-api-3 (alternating)",
        };
        log(
            `reload: ${r.reloads} reloads (median ${r.reload_ms_median} ms each) under ${r.rps} rps: ${r.requests} requests, ${r.errors} errors (${r.non2xx} non-2xx, sockets ${JSON.stringify(r.socket_errors)})`,
        );
        return r;
    } finally {
        await h.stop();
    }
}
