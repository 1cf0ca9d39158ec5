import { writeFileSync } from "fs";
import * as path from "path";
import { renderHaproxyConfig } from "../../components/render";
import { BackendServer, HaproxySettings } from "../../components/settings";
import { execFileP } from "../lib/literal";
import { removeTempDir, tempDir } from "../lib/procs";
import { log, median, nowMs, round } from "../lib/stats";

export interface RenderResult {
    servers: number;
    render_ms: number;
    check_ms: number;
    config_bytes: number;
    runs: number;
}

/** `count` servers on 127.0.0.1 (IPs: `haproxy -c` resolves nothing, sends nothing). */
function pool(prefix: string, count: number, basePort: number): BackendServer[] {
    return Array.from({ length: count }, (_, i) => ({ name: `${prefix}-${i + 1}`, address: "127.0.0.1", port: basePort + i }));
}

export function renderSettings(serversPerPool: number, dir: string): HaproxySettings {
    return {
        apiServers: pool("backend-api", serversPerPool, 20000),
        streamServers: pool("stream-srv", serversPerPool, 40000),
        statsPassword: "bench-password-1",
        bindAddress: "127.0.0.1",
        listenHttp: 18000,
        statsPort: 18001,
        adminSocketPath: path.join(dir, "admin.sock"),
        serverStateFile: path.join(dir, "server-state"),
        chrootDir: "",
        runAsUser: "",
        runAsGroup: "",
        logTarget: "none",
    };
}

/**
 * renderHaproxyConfig time and `haproxy -c` time for N servers per pool
 * (N api + N stream servers), median of `runs` runs each. The first render
 * (template load + JIT warm-up) is not counted.
 */
export async function measureRender(sizes = [10, 100, 1000], runs = 5): Promise<RenderResult[]> {
    const dir = tempDir("render");
    const results: RenderResult[] = [];
    try {
        renderHaproxyConfig(renderSettings(10, dir)); // warm-up
        for (const n of sizes) {
            const settings = renderSettings(n, dir);
            const renderTimes: number[] = [];
            const checkTimes: number[] = [];
            let config = "";
            for (let i = 0; i < runs; i++) {
                const t0 = nowMs();
                config = renderHaproxyConfig(settings);
                renderTimes.push(nowMs() - t0);
            }
            const file = path.join(dir, `haproxy-${n}.cfg`);
            writeFileSync(file, config);
            for (let i = 0; i < runs; i++) {
                const t0 = nowMs();
                await execFileP("haproxy", ["-c", "-q", "-f", file]).catch((e) => {
                    throw new Error(`haproxy -c rejected the ${n}-server config:\n${e.stderr ?? e}`);
                });
                checkTimes.push(nowMs() - t0);
            }
            const r = {
                servers: n,
                render_ms: round(median(renderTimes), 3),
                check_ms: round(median(checkTimes), 1),
                config_bytes: config.length,
                runs,
            };
            log(`render: ${n} servers/pool -> render ${r.render_ms} ms, haproxy -c ${r.check_ms} ms (${r.config_bytes} bytes)`);
            results.push(r);
        }
    } finally {
        removeTempDir(dir);
    }
    return results;
}
