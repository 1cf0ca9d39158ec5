import { Agent as HttpAgent, IncomingHttpHeaders, request as httpRequest, RequestOptions } from "http";
import { Agent as HttpsAgent, request as httpsRequest } from "https";
import { connect as netConnect } from "net";
import { TLSSocket } from "tls";
import { ClientOptions, WebSocket } from "ws";
import { onCleanup } from "./cleanup";
import { sleep } from "./time";

/*
 * The one HTTP client of the kit (behaviour tests, e2e, bench). Each request
 * opens its own connection (`agent: false`) unless a keep-alive agent is
 * passed; every call has a deadline and resolves with the whole response, or
 * rejects with a message naming the request (the error keeps its `code`).
 */

export interface HttpResponse {
    status: number;
    headers: IncomingHttpHeaders;
    body: string;
    /** Negotiated TLS version ("TLSv1.3") for HTTPS requests. */
    tlsVersion?: string;
    /** Whether the request went over a reused (keep-alive) connection. */
    reusedSocket: boolean;
}

export interface RequestOpts {
    port: number;
    path?: string;
    method?: string;
    headers?: Record<string, string>;
    /** Default "127.0.0.1". Traffic only ever goes to loopback or to the Incus lab's bridge (198.18.0.0/24). */
    host?: string;
    /** The connection's source address, another loopback address than 127.0.0.1 (to be a different client); default: the kernel's choice. */
    localAddress?: string;
    /** false (default): a fresh connection per request. Pass a keep-alive agent to reuse connections. */
    agent?: HttpAgent | false;
    /** Deadline for the whole exchange, connect included; default 10 s. */
    timeoutMs?: number;
    body?: string;
    /** HTTPS with these TLS options (ca, servername, minVersion, ...). */
    tls?: Omit<RequestOptions, "host" | "port" | "path" | "method" | "headers" | "agent"> & Record<string, unknown>;
}

/** The e2e lab's bridge (lab/setup-incus.sh: 198.18.0.1/24, a benchmarking range, NAT off). */
const LAB_BRIDGE = /^198\.18\.0\.\d{1,3}$/;

/** Throws unless `host` is on loopback or the Incus lab bridge: where every test's traffic stays. */
export function assertTestNetwork(host: string): void {
    if (!/^127\./.test(host) && host !== "localhost" && !LAB_BRIDGE.test(host)) {
        throw new Error(`test traffic must stay on loopback or the Incus lab bridge (198.18.0.0/24), not ${host}`);
    }
}

export function request(opts: RequestOpts): Promise<HttpResponse> {
    const host = opts.host ?? "127.0.0.1";
    assertTestNetwork(host);
    if (opts.localAddress !== undefined && !/^127\./.test(opts.localAddress)) {
        throw new Error(`localAddress must be a loopback address (127.0.0.0/8), not ${opts.localAddress}`);
    }
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const method = opts.method ?? "GET";
    const path = opts.path ?? "/";
    const label = `${method} ${opts.tls ? "https" : "http"}://${host}:${opts.port}${path}`;
    return new Promise((resolve, reject) => {
        const options: RequestOptions = {
            host,
            port: opts.port,
            path,
            method,
            headers: opts.headers,
            agent: opts.agent ?? false,
            localAddress: opts.localAddress,
            ...(opts.tls ?? {}),
        };
        const req = (opts.tls ? httpsRequest : httpRequest)(options, (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (chunk: Buffer) => chunks.push(chunk));
            res.on("end", () => {
                clearTimeout(deadline);
                const socket = res.socket as TLSSocket | null;
                resolve({
                    status: res.statusCode ?? 0,
                    headers: res.headers,
                    body: Buffer.concat(chunks).toString("utf8"),
                    tlsVersion:
                        opts.tls && socket && typeof socket.getProtocol === "function" ? (socket.getProtocol() ?? undefined) : undefined,
                    reusedSocket: req.reusedSocket,
                });
            });
            res.on("error", (err) => {
                clearTimeout(deadline);
                reject(new Error(`${label}: ${err.message}`));
            });
        });
        // A timer, not req.setTimeout: a socket timeout only starts once connected, and a
        // connect to a lab container that is down would then hang for the kernel's timeout.
        const deadline = setTimeout(() => req.destroy(new Error(`no response within ${timeoutMs} ms`)), timeoutMs);
        req.on("error", (err: NodeJS.ErrnoException) => {
            clearTimeout(deadline);
            const wrapped = new Error(`${label}: ${err.message}`) as NodeJS.ErrnoException & { reusedSocket?: boolean };
            wrapped.code = err.code;
            wrapped.reusedSocket = req.reusedSocket;
            reject(wrapped);
        });
        req.end(opts.body);
    });
}

/**
 * Sends `bytes` as they are (a request no HTTP client would write) on a new
 * connection to 127.0.0.1:`port`; resolves with everything answered until
 * the peer closes or `timeoutMs` passes.
 */
export function rawRequest(port: number, bytes: string | Buffer, timeoutMs = 5_000): Promise<string> {
    return new Promise((resolve) => {
        const socket = netConnect({ host: "127.0.0.1", port });
        let answer = "";
        const deadline = setTimeout(() => socket.destroy(), timeoutMs);
        socket.on("connect", () => socket.write(typeof bytes === "string" ? Buffer.from(bytes, "latin1") : bytes));
        socket.on("data", (d: Buffer) => (answer += d.toString("latin1")));
        socket.on("error", () => undefined);
        socket.on("close", () => {
            clearTimeout(deadline);
            resolve(answer);
        });
    });
}

/**
 * GET `path` on a fresh connection (pass `extra.agent` to reuse one).
 * `target`: a port on 127.0.0.1, or a base URL without a path for a lab
 * container ("http://198.18.0.10", "http://198.18.0.10:8099").
 */
export function get(
    target: number | string,
    path: string,
    headers?: Record<string, string>,
    extra: Partial<RequestOpts> = {},
): Promise<HttpResponse> {
    return request({ ...extra, ...hostAndPort(target), path, headers });
}

function hostAndPort(target: number | string): { host?: string; port: number } {
    if (typeof target === "number") return { port: target };
    const url = new URL(target);
    // A path or query here would be silently dropped: refuse it.
    if (url.protocol !== "http:" || url.pathname !== "/" || url.search !== "" || url.hash !== "") {
        throw new Error(`get: expected a base URL like http://198.18.0.10[:port] and a separate path, got ${target}`);
    }
    return { host: url.hostname, port: url.port === "" ? 80 : Number(url.port) };
}

export interface EchoBody {
    backend: string;
    method: string;
    path: string;
    headers: Record<string, string | string[] | undefined>;
    track?: string;
}

/** The fake backend's JSON body (throws with the raw text when it is not JSON). */
export function echo(res: HttpResponse): EchoBody {
    try {
        return JSON.parse(res.body) as EchoBody;
    } catch {
        throw new Error(`expected the fake backend's JSON, got HTTP ${res.status}: ${res.body.slice(0, 300)}`);
    }
}

/** Which backend answered (x-backend header). */
export function backendOf(res: { headers: IncomingHttpHeaders }): string | undefined {
    const value = res.headers["x-backend"];
    return Array.isArray(value) ? value[0] : value;
}

export interface SetCookie {
    name: string;
    value: string;
    /** Attribute names lower-cased ("httponly", "secure", "path"), with their values ("" for flags). */
    attributes: Record<string, string>;
    raw: string;
}

export function setCookies(headers: IncomingHttpHeaders): SetCookie[] {
    return (headers["set-cookie"] ?? []).map((raw) => {
        const [pair, ...attrs] = raw.split(";").map((part) => part.trim());
        const eq = pair.indexOf("=");
        const attributes: Record<string, string> = {};
        for (const attr of attrs) {
            if (attr === "") continue;
            const i = attr.indexOf("=");
            if (i === -1) attributes[attr.toLowerCase()] = "";
            else attributes[attr.slice(0, i).toLowerCase()] = attr.slice(i + 1);
        }
        return { name: pair.slice(0, eq), value: pair.slice(eq + 1), attributes, raw };
    });
}

/** The Set-Cookie for `name`, or undefined. */
export function setCookie(res: { headers: IncomingHttpHeaders }, name: string): SetCookie | undefined {
    return setCookies(res.headers).find((cookie) => cookie.name === name);
}

export function keepAliveAgent(maxSockets = 8): HttpAgent {
    return new HttpAgent({ keepAlive: true, maxSockets });
}

export function keepAliveHttpsAgent(maxSockets = 8): HttpsAgent {
    return new HttpsAgent({ keepAlive: true, maxSockets });
}

/** Runs `count` calls of `fn(i)` with at most `concurrency` in flight; results in order. */
export async function pool<T>(count: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
    const results = new Array<T>(count);
    let next = 0;
    const workers = Array.from({ length: Math.min(concurrency, count) }, async () => {
        while (next < count) {
            const i = next++;
            results[i] = await fn(i);
        }
    });
    await Promise.all(workers);
    return results;
}

// ---------------------------------------------------------------- WebSocket

export interface OpenWebSocket {
    ws: WebSocket;
    /** Headers of the 101 response (x-backend, set-cookie, ...). */
    headers: IncomingHttpHeaders;
    /** Messages received so far, as strings. */
    messages: string[];
    /** Resolves with the close code once the socket is closed (by either side). */
    closed: Promise<number>;
    isOpen(): boolean;
    /** Sends `text` and waits for the echo of exactly that text. */
    echo(text: string, timeoutMs?: number): Promise<string>;
    close(): void;
}

/** Opens ws://127.0.0.1:<port><path>; resolves once the upgrade succeeded. Closed by cleanupAll() at the latest. */
export function openWebSocket(
    port: number,
    path = "/ws",
    opts: { headers?: Record<string, string>; timeoutMs?: number; tls?: ClientOptions & { servername?: string } } = {},
): Promise<OpenWebSocket> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const scheme = opts.tls ? "wss" : "ws";
    const url = `${scheme}://127.0.0.1:${port}${path}`;
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(url, {
            headers: opts.headers,
            handshakeTimeout: timeoutMs,
            perMessageDeflate: false,
            ...(opts.tls ?? {}),
        });
        onCleanup(() => ws.terminate(), `WebSocket ${url}`);
        const messages: string[] = [];
        const waiters: Array<(msg: string) => void> = [];
        let headers: IncomingHttpHeaders = {};
        const closed = new Promise<number>((resolveClosed) => {
            ws.on("close", (code) => resolveClosed(code));
        });
        ws.on("upgrade", (res) => (headers = res.headers));
        ws.on("message", (data) => {
            const text = data.toString();
            messages.push(text);
            for (const waiter of waiters.splice(0)) waiter(text);
        });
        ws.once("error", (err) => reject(new Error(`WebSocket ${url}: ${err.message}`)));
        ws.once("unexpected-response", (_req, res) => {
            reject(new Error(`WebSocket ${url}: HTTP ${res.statusCode} instead of 101`));
            ws.terminate();
        });
        ws.once("open", () => {
            ws.on("error", () => undefined);
            resolve({
                ws,
                headers,
                messages,
                closed,
                isOpen: () => ws.readyState === WebSocket.OPEN,
                echo: (text: string, echoTimeoutMs = 5000) =>
                    new Promise<string>((resolveEcho, rejectEcho) => {
                        const timer = setTimeout(
                            () => rejectEcho(new Error(`no echo of ${JSON.stringify(text)} within ${echoTimeoutMs} ms on ${url}`)),
                            echoTimeoutMs,
                        );
                        const onMessage = (msg: string): void => {
                            if (msg === text) {
                                clearTimeout(timer);
                                resolveEcho(msg);
                            } else {
                                waiters.push(onMessage);
                            }
                        };
                        waiters.push(onMessage);
                        closed.then((code) => {
                            clearTimeout(timer);
                            rejectEcho(new Error(`WebSocket ${url} closed (code ${code}) before the echo of ${JSON.stringify(text)}`));
                        });
                        ws.send(text);
                    }),
                close: () => ws.terminate(),
            });
        });
    });
}

/** Requests answered 200 over new connections and over one keep-alive pool, and every failure, while `during` ran. */
export interface LoadCounts {
    fresh: number;
    keepAlive: number;
    failed: string[];
}

/**
 * Asks `target` (host, port, path, tls) in a loop, alternating a new
 * connection and a keep-alive one, from 300 ms before `during` starts until
 * 300 ms after it ends; resolves with `during`'s result and the counts.
 */
export async function underLoad<T>(
    target: Omit<RequestOpts, "agent">,
    during: () => Promise<T>,
): Promise<{ result: T; counts: LoadCounts }> {
    const agent = target.tls ? keepAliveHttpsAgent(2) : keepAliveAgent(2);
    const counts: LoadCounts = { fresh: 0, keepAlive: 0, failed: [] };
    let running = true;
    const loop = (async () => {
        while (running) {
            for (const kind of ["fresh", "keepAlive"] as const) {
                try {
                    const res = await request({ ...target, agent: kind === "keepAlive" ? agent : false });
                    if (res.status === 200) counts[kind]++;
                    else counts.failed.push(`${kind}: ${res.status}`);
                } catch (error) {
                    counts.failed.push(`${kind}: ${(error as Error).message}`);
                }
            }
            await sleep(20);
        }
    })();
    try {
        await sleep(300);
        const result = await during();
        await sleep(300);
        return { result, counts };
    } finally {
        running = false;
        await loop;
        agent.destroy();
    }
}
