import { onCpus } from "./pin";
import { spawnGroup, stopGroup } from "./procs";

/*
 * h2load (nghttp2-client) for HTTP/2 over TLS: `-D` seconds of load on
 * `connections` connections with `streams` concurrent streams each. Parses
 * its summary; every count comes from h2load's own report.
 */

export interface H2loadOptions {
    url: string;
    connections: number;
    streams: number;
    durationSec: number;
    headers?: string[];
    /** Run h2load under `taskset -c cpus`. */
    cpus?: string;
}

export interface H2loadResult {
    requests: number;
    succeeded: number;
    failed: number;
    errored: number;
    timeout: number;
    status2xx: number;
    rps: number;
    /** The protocol h2load negotiated (ALPN): "h2" when HTTP/2 ran. */
    protocol: string;
    raw: string;
}

export function parseH2loadOutput(out: string): H2loadResult {
    const num = (re: RegExp, what: string): number => {
        const m = re.exec(out);
        if (!m) throw new Error(`h2load printed no ${what}:\n${out}`);
        return Number(m[1]);
    };
    const protocol = /Application protocol: (\S+)/.exec(out)?.[1] ?? "none";
    return {
        requests: num(/requests: \d+ total, \d+ started, (\d+) done/, "requests line"),
        succeeded: num(/(\d+) succeeded/, "succeeded count"),
        failed: num(/(\d+) failed/, "failed count"),
        errored: num(/(\d+) errored/, "errored count"),
        timeout: num(/(\d+) timeout/, "timeout count"),
        status2xx: num(/status codes: (\d+) 2xx/, "status codes"),
        rps: num(/finished in [\d.]+s, ([\d.]+) req\/s/, "finished line"),
        protocol,
        raw: out,
    };
}

export async function runH2load(o: H2loadOptions): Promise<H2loadResult> {
    const url = new URL(o.url);
    if (url.hostname !== "127.0.0.1") throw new Error(`bench traffic goes to 127.0.0.1 only, not ${url.hostname}`);
    const args = ["-t1", `-c${o.connections}`, `-m${o.streams}`, `-D${o.durationSec}`, "--warm-up-time=1"];
    for (const h of o.headers ?? []) args.push("-H", h);
    args.push(o.url);
    const p = spawnGroup(...onCpus(o.cpus, "h2load", args));
    const guard = setTimeout(() => void stopGroup(p, 500), (o.durationSec + 30) * 1000);
    try {
        const code = await p.exited;
        if (code !== 0) throw new Error(`h2load exited ${code}: ${p.stderr()}\n${p.stdout()}`);
        const r = parseH2loadOutput(p.stdout());
        if (r.protocol !== "h2") throw new Error(`h2load negotiated ${r.protocol}, not h2:\n${p.stdout()}`);
        return r;
    } finally {
        clearTimeout(guard);
        await stopGroup(p, 100);
    }
}
