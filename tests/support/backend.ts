import { createServer, IncomingMessage, Server, ServerResponse } from "http";
import { Socket } from "net";
import { WebSocket, WebSocketServer } from "ws";
import { onCleanup } from "./cleanup";

/*
 * A fake Veza upstream (backend-api or stream-server) on 127.0.0.1.
 *
 *   GET|HEAD /api/v1/health, /health (and opts.healthPath) -> 200 "ok", or 503
 *       "unhealthy" after setHealthy(false); each one is recorded in healthChecks.
 *   anything else -> 200 JSON {backend, method, path, headers} (+ track for
 *       /stream/<track>/...); `?delay_ms=N` delays the answer by N ms.
 *   Upgrade: websocket on any path -> WebSocket echo (text and binary); the
 *       text message "__request__" is answered with the upgrade request as JSON.
 *   Every response, the 101 included, carries `x-backend: <name>`.
 *
 * The request path is the benchmark's hot path (wrk, keep-alive): no logging,
 * no per-request allocation beyond the response body.
 */

export interface HealthCheckRecord {
    method: string;
    path: string;
    /** Status the backend answered: 200 while healthy, 503 after setHealthy(false). */
    status: number;
    /** Date.now() when it was answered. */
    at: number;
}

export interface FakeBackend {
    readonly name: string;
    readonly port: number;
    /** Health checks served so far (health paths only), oldest first. */
    readonly healthChecks: HealthCheckRecord[];
    /** Non-health HTTP requests and WebSocket upgrades served so far. */
    readonly requests: number;
    /** The same requests by method: { GET: 12, POST: 1 }. */
    readonly requestsByMethod: Readonly<Record<string, number>>;
    /** Requests Node's HTTP parser refused (a control character in a header, ...): the socket was closed without an answer. */
    readonly rejected: number;
    /** TCP connections that carried at least one non-health request so far (health checks open their own). */
    readonly requestConnections: number;
    /** Health endpoint answers 200 (true) or 503 (false). Other paths keep working. */
    setHealthy(healthy: boolean): void;
    isHealthy(): boolean;
    /** TCP connections currently open to this backend (HTTP keep-alive and WebSockets). */
    openSockets(): number;
    /** WebSocket sessions currently open. */
    openWebSockets(): number;
    /** Simulates a dead process: destroys every socket at once and stops listening. */
    kill(): Promise<void>;
    /** Listens again on the same port after kill(). */
    restart(): Promise<void>;
    /** Graceful-ish shutdown for test teardown (idempotent). */
    close(): Promise<void>;
}

export interface BackendOptions {
    name: string;
    /** An extra health path, besides /api/v1/health and /health. */
    healthPath?: string;
    /** Port to listen on; default: any free port. */
    port?: number;
}

const DEFAULT_HEALTH_PATHS = ["/api/v1/health", "/health"];
/** Sent as a WebSocket text message, answered with the upgrade request as JSON {backend, method, path, headers}. */
export const REQUEST_PROBE = "__request__";

class Backend implements FakeBackend {
    readonly healthChecks: HealthCheckRecord[] = [];
    requests = 0;
    readonly requestsByMethod: Record<string, number> = {};
    rejected = 0;
    requestConnections = 0;
    private readonly requestSockets = new WeakSet<Socket>();
    port = 0;
    private healthy = true;
    private readonly healthPaths: Set<string>;
    private readonly sockets = new Set<Socket>();
    private readonly wss: WebSocketServer;
    private server: Server | undefined;
    private closed = false;

    constructor(
        readonly name: string,
        healthPath: string | undefined,
    ) {
        this.healthPaths = new Set(healthPath ? [...DEFAULT_HEALTH_PATHS, healthPath] : DEFAULT_HEALTH_PATHS);
        this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: true });
        this.wss.on("headers", (headers) => headers.push(`x-backend: ${this.name}`));
        this.wss.on("connection", (ws: WebSocket, req: IncomingMessage) => {
            ws.on("message", (data, isBinary) => {
                if (ws.readyState !== WebSocket.OPEN) return;
                if (!isBinary && data.toString() === REQUEST_PROBE) {
                    ws.send(JSON.stringify({ backend: this.name, method: req.method, path: req.url, headers: req.headers }));
                    return;
                }
                ws.send(data, { binary: isBinary });
            });
            ws.on("error", () => undefined);
        });
    }

    async listen(port: number): Promise<void> {
        const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => this.handle(req, res));
        server.on("connection", (socket: Socket) => {
            this.sockets.add(socket);
            socket.on("close", () => this.sockets.delete(socket));
            socket.on("error", () => undefined);
        });
        server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
            this.requests++;
            socket.on("error", () => undefined);
            if ((req.headers.upgrade ?? "").toLowerCase() !== "websocket") {
                socket.destroy();
                return;
            }
            this.wss.handleUpgrade(req, socket, head, (ws) => this.wss.emit("connection", ws, req));
        });
        server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
            // HPE_*: llhttp refused the request; a reset or timeout is not a refusal.
            if (err.code?.startsWith("HPE_")) this.rejected++;
            socket.destroy();
        });
        await new Promise<void>((resolve, reject) => {
            server.once("error", reject);
            server.listen(port, "127.0.0.1", () => {
                server.off("error", reject);
                resolve();
            });
        });
        const address = server.address();
        if (address === null || typeof address === "string") throw new Error(`backend ${this.name}: no TCP address`);
        this.port = address.port;
        this.server = server;
    }

    private handle(req: IncomingMessage, res: ServerResponse): void {
        const url = req.url ?? "/";
        const q = url.indexOf("?");
        const path = q === -1 ? url : url.slice(0, q);
        if (this.healthPaths.has(path)) {
            const status = this.healthy ? 200 : 503;
            this.healthChecks.push({ method: req.method ?? "", path, status, at: Date.now() });
            const body = this.healthy ? "ok\n" : "unhealthy\n";
            res.writeHead(status, {
                "x-backend": this.name,
                "content-type": "text/plain",
                "content-length": body.length,
            });
            res.end(req.method === "HEAD" ? undefined : body);
            req.resume();
            return;
        }
        this.requests++;
        if (!this.requestSockets.has(req.socket)) {
            this.requestSockets.add(req.socket);
            this.requestConnections++;
        }
        const method = req.method ?? "";
        this.requestsByMethod[method] = (this.requestsByMethod[method] ?? 0) + 1;
        const payload: Record<string, unknown> = { backend: this.name, method: req.method, path: url, headers: req.headers };
        if (path.startsWith("/stream/")) payload.track = path.split("/")[2] ?? "";
        const body = JSON.stringify(payload);
        const send = (): void => {
            res.writeHead(200, {
                "x-backend": this.name,
                "content-type": "application/json",
                "content-length": Buffer.byteLength(body),
            });
            res.end(req.method === "HEAD" ? undefined : body);
        };
        req.resume();
        if (q !== -1 && url.includes("delay_ms=")) {
            const match = /[?&]delay_ms=(\d+)/.exec(url);
            if (match) {
                setTimeout(send, Number(match[1]));
                return;
            }
        }
        send();
    }

    setHealthy(healthy: boolean): void {
        this.healthy = healthy;
    }

    isHealthy(): boolean {
        return this.healthy;
    }

    openSockets(): number {
        return this.sockets.size;
    }

    openWebSockets(): number {
        return this.wss.clients.size;
    }

    async kill(): Promise<void> {
        const server = this.server;
        this.server = undefined;
        for (const ws of this.wss.clients) ws.terminate();
        for (const socket of this.sockets) socket.destroy();
        this.sockets.clear();
        if (server === undefined) return;
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
    }

    async restart(): Promise<void> {
        if (this.server !== undefined) throw new Error(`backend ${this.name} is already listening on ${this.port}`);
        await this.listen(this.port);
    }

    async close(): Promise<void> {
        if (this.closed) return;
        this.closed = true;
        await this.kill();
        this.wss.close();
    }
}

/** Starts a fake backend on 127.0.0.1 (`port` or any free port). Stop it with close(), or let cleanupAll() do it. */
export async function startBackend(opts: BackendOptions): Promise<FakeBackend> {
    const backend = new Backend(opts.name, opts.healthPath);
    await backend.listen(opts.port ?? 0);
    onCleanup(() => backend.close(), `backend ${opts.name}`);
    return backend;
}

/** Starts `count` backends named `${prefix}-1` ... `${prefix}-N`. */
export async function startBackends(prefix: string, count: number, healthPath?: string): Promise<FakeBackend[]> {
    const out: FakeBackend[] = [];
    for (let i = 1; i <= count; i++) out.push(await startBackend({ name: `${prefix}-${i}`, healthPath }));
    return out;
}

/** The settings entry for a backend: `{ name, address: "127.0.0.1", port }`. */
export function serverEntry(backend: FakeBackend, weight?: number): { name: string; address: string; port: number; weight?: number } {
    return weight === undefined
        ? { name: backend.name, address: "127.0.0.1", port: backend.port }
        : { name: backend.name, address: "127.0.0.1", port: backend.port, weight };
}
