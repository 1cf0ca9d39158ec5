import { createHash } from "crypto";
import { readFileSync, rmSync, writeFileSync } from "fs";
import * as path from "path";
import { renderHaproxyConfig } from "../../components/render";
import { HaproxySettings } from "../../components/settings";
import { backendOf, FakeBackend, get, sleep, startBackend } from "../../tests/support";
import { productSettings, startProduct } from "../lib/contenders";
import { execFileP } from "../lib/literal";
import { log, median, nowMs, round } from "../lib/stats";

export interface ChangeResult {
    /** Median over `runs`, ms. */
    change_to_serving_ms: number;
    runs_ms: number[];
    /** Median time of each step, ms. */
    steps_ms: { render: number; write_and_check: number; reload: number; first_200: number };
}

/**
 * A config apply on loopback, timed from its start to the first 200 answered
 * by the server it adds: render (one more api server) -> write the new file
 * and verify its sha256 -> `haproxy -c` (the apply script) -> `haproxy -c`
 * again (the unit's ExecReload) -> save server state -> reload through the
 * master CLI -> wait for the new worker (harness reload) -> GET on fresh
 * connections until one is answered by the new server. That is the product's
 * config step (templates/_config-in-container.sh + _container-dropin.conf)
 * minus `incus exec` and systemd.
 */
export async function measureChangeToServing(runs = 5): Promise<ChangeResult> {
    const api: FakeBackend[] = [];
    for (let i = 1; i <= 3; i++) api.push(await startBackend({ name: `backend-api-${i}` }));
    const stream = await startBackend({ name: "stream-srv-1" });
    const h = await startProduct(productSettings(api.slice(0, 2), [stream]));
    const base = h.settings;
    const totals: number[] = [];
    const steps = { render: [] as number[], write_and_check: [] as number[], reload: [] as number[], first_200: [] as number[] };
    try {
        for (let run = 0; run < runs; run++) {
            const t0 = nowMs();
            const next: HaproxySettings = { ...base, ...productSettings(api, [stream]) };
            const config = renderHaproxyConfig(next);
            const want = createHash("sha256").update(config, "utf8").digest("hex");
            const t1 = nowMs();
            const newPath = path.join(h.dir, "haproxy.cfg.veza-new");
            writeFileSync(newPath, config, { mode: 0o640 });
            const got = createHash("sha256").update(readFileSync(newPath)).digest("hex");
            if (got !== want) throw new Error("config arrived damaged");
            await execFileP("haproxy", ["-c", "-q", "-f", newPath]); // _config-in-container.sh
            await execFileP("haproxy", ["-c", "-q", "-f", newPath]); // ExecReload's check
            rmSync(newPath);
            const t2 = nowMs();
            await h.reload(next); // writes haproxy.cfg, saves server state, reloads via master, waits for the new worker
            const t3 = nowMs();
            for (;;) {
                // A fresh connection each time (get's default): it lands on the newest worker.
                const a = await get(h.httpPort, "/api/v1/me", undefined, { timeoutMs: 5000 }).catch(() => undefined);
                if (a !== undefined && a.status === 200 && backendOf(a) === "backend-api-3") break;
                if (nowMs() - t0 > 30000) throw new Error("the new server never answered within 30 s");
            }
            const t4 = nowMs();
            totals.push(t4 - t0);
            steps.render.push(t1 - t0);
            steps.write_and_check.push(t2 - t1);
            steps.reload.push(t3 - t2);
            steps.first_200.push(t4 - t3);
            log(
                `change_to_serving run ${run + 1}/${runs}: ${round(t4 - t0, 1)} ms (render ${round(t1 - t0, 1)}, write+check ${round(t2 - t1, 1)}, reload ${round(t3 - t2, 1)}, first 200 ${round(t4 - t3, 1)})`,
            );
            // Back to two servers (not timed) for the next run.
            await h.reload({ ...base, ...productSettings(api.slice(0, 2), [stream]) });
            await sleep(200);
        }
    } finally {
        await h.stop();
    }
    return {
        change_to_serving_ms: round(median(totals), 1),
        runs_ms: totals.map((t) => round(t, 1)),
        steps_ms: {
            render: round(median(steps.render), 2),
            write_and_check: round(median(steps.write_and_check), 1),
            reload: round(median(steps.reload), 1),
            first_200: round(median(steps.first_200), 1),
        },
    };
}
