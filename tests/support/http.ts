import { Agent as HttpAgent, IncomingHttpHeaders, request as httpRequest, RequestOptions } from "http";
import { Agent as HttpsAgent, request as httpsRequest } from "https";
import { TLSSocket } from "tls";
import { ClientOptions, WebSocket } from "ws";

/*
 * Small client helpers for tests. Each request opens its own connection
 * (`agent: false`) unless a keep-alive agent is passed; every call has a
 * timeout and resolves with the whole response, or rejects with a message
 * naming the request.
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
    /** Default "127.0.0.1". Traffic only ever goes to loopback. */
    host?: string;
    /** false (default): a fresh connection per request. Pass a keep-alive agent to reuse connections. */
    agent?: HttpAgent | false;
    timeoutMs?: number;
    body?: string;
    /** HTTPS with these TLS options (ca, servername, minVersion, ...). */
    tls?: Omit<RequestOptions, "host" | "port" | "path" | "method" | "headers" | "agent"> & Record<string, unknown>;
}

function assertLoopback(host: string): void {
    if (!/^127\./.test(host) && host !== "localhost") throw new Error(`test traffic must stay on loopback, not ${host}`);
}

export function request(opts: RequestOpts): Promise<HttpResponse> {
    const host = opts.host ?? "127.0.0.1";
    assertLoopback(host);
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
            ...(opts.tls ?? {}),
        };
        const req = (opts.tls ? httpsRequest : httpRequest)(options, (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (chunk: Buffer) => chunks.push(chunk));
            res.on("end", () => {
                const socket = res.socket as TLSSocket | null;
                resolve({
                    status: res.statusCode ?? 0,
                    headers: res.headers,
                    body: Buffer.concat(chunks).toString("utf8"),
                    tlsVersion: opts.tls && socket && typeof socket.getProtocol === "function" ? socket.getProtocol() ?? undefined : undefined,
                    reusedSocket: req.reusedSocket,
                });
            });
            res.on("error", (err) => reject(new Error(`${label}: ${err.message}`)));
        });
        req.setTimeout(timeoutMs, () => req.destroy(new Error(`no response within ${timeoutMs} ms`)));
        req.on("error", (err: NodeJS.ErrnoException) => {
            const wrapped = new Error(`${label}: ${err.message}`) as NodeJS.ErrnoException & { reusedSocket?: boolean };
            wrapped.code = err.code;
            wrapped.reusedSocket = req.reusedSocket;
            reject(wrapped);
        });
        req.end(opts.body);
    });
}

/** GET on a fresh connection. */
export function get(port: number, path: string, headers?: Record<string, string>, extra: Partial<RequestOpts> = {}): Promise<HttpResponse> {
    return request({ ...extra, port, path, headers });
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

const openSockets = new Set<WebSocket>();

/** Opens ws://127.0.0.1:<port><path>; resolves once the upgrade succeeded. */
export function openWebSocket(
    port: number,
    path = "/ws",
    opts: { headers?: Record<string, string>; timeoutMs?: number; tls?: ClientOptions & { servername?: string } } = {},
): Promise<OpenWebSocket> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const scheme = opts.tls ? "wss" : "ws";
    const url = `${scheme}://127.0.0.1:${port}${path}`;
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(url, { headers: opts.headers, handshakeTimeout: timeoutMs, perMessageDeflate: false, ...(opts.tls ?? {}) });
        openSockets.add(ws);
        const messages: string[] = [];
        const waiters: Array<(msg: string) => void> = [];
        let headers: IncomingHttpHeaders = {};
        const closed = new Promise<number>((resolveClosed) => {
            ws.on("close", (code) => {
                openSockets.delete(ws);
                resolveClosed(code);
            });
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
                        const timer = setTimeout(() => rejectEcho(new Error(`no echo of ${JSON.stringify(text)} within ${echoTimeoutMs} ms on ${url}`)), echoTimeoutMs);
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

/** Terminates every WebSocket opened by this module instance (teardown). */
export function closeAllWebSockets(): void {
    for (const ws of openSockets) ws.terminate();
    openSockets.clear();
}
