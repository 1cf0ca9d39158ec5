import { onCpus } from "./pin";
import { spawnGroup, stopGroup } from "./procs";

/*
 * Full TLS handshakes: `openssl s_time -new` opens a connection, does a full
 * handshake (never resuming: wrk would, as its ssl_close calls SSL_shutdown
 * then SSL_clear, which keeps the session: wg/wrk src/ssl.c),
 * sends "GET <path> HTTP/1.0", reads the answer and closes, again and again
 * for `seconds`. `clients` of them run at once, so the server always has
 * handshakes waiting.
 */

export interface STimeResult {
    connections: number;
    seconds: number;
    perS: number;
    /** Bytes read per connection as s_time reports them (0: no answer came back). */
    bytesPerConnection: number;
}

export async function runSTime(o: { port: number; path: string; seconds: number; clients: number; cpus?: string }): Promise<STimeResult> {
    if (!/^\/[A-Za-z0-9._~/-]*$/.test(o.path)) throw new Error(`path must be a plain URL path, got ${o.path}`);
    const args = ["s_time", "-connect", `127.0.0.1:${o.port}`, "-new", "-time", String(o.seconds), "-www", o.path];
    const started = Date.now();
    const runs = Array.from({ length: o.clients }, () => spawnGroup(...onCpus(o.cpus, "openssl", args)));
    try {
        const codes = await Promise.all(runs.map((p) => p.exited));
        const seconds = (Date.now() - started) / 1000;
        let connections = 0;
        let bytes = Infinity;
        runs.forEach((p, i) => {
            const out = p.stdout();
            const m = /(\d+) connections in [\d.]+ real seconds, (\d+) bytes read per connection/.exec(out);
            if (codes[i] !== 0 || !m) throw new Error(`openssl s_time exited ${codes[i]}:\n${p.stderr()}\n${out.slice(-2000)}`);
            connections += Number(m[1]);
            bytes = Math.min(bytes, Number(m[2]));
        });
        return { connections, seconds, perS: connections / seconds, bytesPerConnection: bytes };
    } finally {
        await Promise.all(runs.map((p) => stopGroup(p, 100)));
    }
}
