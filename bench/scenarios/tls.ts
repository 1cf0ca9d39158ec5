import { BackendProcess } from "../lib/backends";
import { benchCertificate, productSettings, startNginx, startProduct } from "../lib/contenders";
import { groupsCpuMs } from "../lib/cpu";
import { log, median, round } from "../lib/stats";
import { runWrk } from "../lib/wrk";

/**
 * HTTPS through the product and through nginx with the same certificate
 * (ECDSA P-256) and the same TLS settings, alternated run by run: keep-alive
 * requests per second, and new TLS connections per second (wrk sends
 * "Connection: close", so every request is a new connection). These are
 * resumed handshakes wherever the server keeps a session cache (HAProxy by
 * default, and nginx since it has one): wrk's ssl_close calls SSL_shutdown
 * then SSL_clear, which keeps the session (wg/wrk src/ssl.c). The
 * proxy-cost scenario measures full handshakes with openssl s_time -new.
 * Proxy CPU per connection from /proc.
 */
export interface TlsModeResult {
    product_per_s: number;
    nginx_per_s: number;
    product_vs_nginx: number;
    /** Proxy CPU µs per request (per handshake in the handshake mode), medians. */
    proxy_cpu_us: { product: number; nginx: number };
    errors: { product: number; nginx: number };
}

export interface TlsResult {
    keep_alive: TlsModeResult;
    handshakes: TlsModeResult;
    wrk: { threads: number; connections: number; seconds: number; runs_each: number; path: string };
    certificate: string;
}

export interface TlsOptions {
    rounds: number;
    seconds: number;
    threads: number;
    connections: number;
    path: string;
}

export async function measureTls(api: BackendProcess[], stream: BackendProcess[], o: TlsOptions): Promise<TlsResult> {
    const cert = benchCertificate();
    const product = await startProduct(productSettings(api, stream, { tlsCertPath: cert.pemPath, httpsRedirect: false }));
    const nginx = await startNginx(api, stream);
    const contenders = [
        { key: "product" as const, port: product.httpsPort as number, pgids: [product.pid] },
        { key: "nginx" as const, port: nginx.httpsPort, pgids: [nginx.pgid] },
    ];
    const mode = async (label: string, headers: string[]): Promise<TlsModeResult> => {
        const runs = {
            product: [] as { rps: number; cpu: number; errors: number }[],
            nginx: [] as { rps: number; cpu: number; errors: number }[],
        };
        for (let r = 0; r < o.rounds; r++) {
            for (let i = 0; i < contenders.length; i++) {
                const c = contenders[(i + r) % contenders.length];
                const cpu0 = groupsCpuMs(c.pgids);
                const res = await runWrk({
                    url: `https://127.0.0.1:${c.port}${o.path}`,
                    threads: o.threads,
                    connections: o.connections,
                    durationSec: o.seconds,
                    headers,
                });
                const cpu = round(((groupsCpuMs(c.pgids) - cpu0) * 1000) / Math.max(1, res.requests), 2);
                runs[c.key].push({ rps: Math.round(res.rps), cpu, errors: res.socketErrors + res.non2xx });
                log(`tls ${label} round ${r + 1}/${o.rounds} ${c.key}: ${Math.round(res.rps)}/s, proxy CPU ${cpu} µs each`);
            }
        }
        const med = (k: "product" | "nginx", f: (x: { rps: number; cpu: number }) => number) => median(runs[k].map(f));
        const result: TlsModeResult = {
            product_per_s: Math.round(med("product", (x) => x.rps)),
            nginx_per_s: Math.round(med("nginx", (x) => x.rps)),
            product_vs_nginx: round(med("product", (x) => x.rps) / med("nginx", (x) => x.rps), 3),
            proxy_cpu_us: {
                product: round(
                    med("product", (x) => x.cpu),
                    2,
                ),
                nginx: round(
                    med("nginx", (x) => x.cpu),
                    2,
                ),
            },
            errors: { product: runs.product.reduce((n, x) => n + x.errors, 0), nginx: runs.nginx.reduce((n, x) => n + x.errors, 0) },
        };
        log(`tls ${label}: product ${result.product_per_s}/s vs nginx ${result.nginx_per_s}/s (x${result.product_vs_nginx})`);
        return result;
    };
    try {
        const keepAlive = await mode("keep-alive", []);
        const handshakes = await mode("new connections", ["Connection: close"]);
        return {
            keep_alive: keepAlive,
            handshakes,
            wrk: { threads: o.threads, connections: o.connections, seconds: o.seconds, runs_each: o.rounds, path: o.path },
            certificate: "ECDSA P-256, self-signed, the same file for both",
        };
    } finally {
        await product.stop();
        await nginx.stop();
    }
}
