/*
 * TLS termination: HTTPS with TLS 1.2+, TLS 1.0/1.1 refused, HTTP -> HTTPS
 * redirect, Secure sticky cookie, WebSocket over TLS.
 */
import { readFileSync, rmSync } from "fs";
import * as tls from "tls";
import { cookieValue } from "../../components/identity";
import {
    backendOf,
    cleanupAll,
    echo,
    get,
    Lab,
    makeTempDir,
    makeTestCert,
    openWebSocket,
    request,
    requireBinary,
    setCookie,
    startLab,
    TestCert,
} from "../support";

jest.setTimeout(60_000);

const COOKIE = "VEZA_SERVERID";
const describeWithTools = requireBinary("haproxy", "openssl");

/** Outcome of a bare TLS handshake: the negotiated protocol, or the error code. */
function handshake(
    port: number,
    opts: tls.ConnectionOptions,
): Promise<{ ok: boolean; protocol?: string; code?: string; message?: string }> {
    return new Promise((resolve) => {
        const socket = tls.connect({ host: "127.0.0.1", port, servername: "localhost", rejectUnauthorized: false, ...opts }, () => {
            resolve({ ok: true, protocol: socket.getProtocol() ?? undefined });
            socket.destroy();
        });
        socket.setTimeout(5000, () => socket.destroy(new Error("handshake timeout")));
        socket.on("error", (err: NodeJS.ErrnoException) => resolve({ ok: false, code: err.code, message: err.message }));
    });
}

/** Lets the client offer TLS 1.0/1.1 at all (OpenSSL 3 refuses them at its default security level). */
const LEGACY_CLIENT = { ciphers: "DEFAULT:@SECLEVEL=0" };

describeWithTools("TLS", () => {
    let certDir: string;
    let cert: TestCert;
    let lab: Lab;

    beforeAll(async () => {
        certDir = makeTempDir("veza-cert-");
        cert = makeTestCert(certDir);
        lab = await startLab({ api: 3, stream: 1, settings: { healthCheckIntervalMs: 1000, tlsCertPath: cert.pemPath } });
    });
    afterAll(async () => {
        await cleanupAll();
        if (certDir) rmSync(certDir, { recursive: true, force: true });
    });

    const https = (path: string, headers?: Record<string, string>, tlsOpts: Record<string, unknown> = {}) =>
        request({ port: lab.hp.httpsPort as number, path, headers, tls: { ca: cert.cert, servername: "localhost", ...tlsOpts } });

    test("HTTPS works (certificate verified, TLS 1.2 and 1.3); backends see X-Forwarded-Proto https", async () => {
        expect(lab.hp.httpsPort).toBeDefined();
        const res = await https("/api/v1/me");
        expect(res.status).toBe(200);
        expect(["TLSv1.2", "TLSv1.3"]).toContain(res.tlsVersion);
        expect(echo(res).headers["x-forwarded-proto"]).toBe("https");
        expect(echo(res).headers["x-forwarded-for"]).toBe("127.0.0.1");

        const v12 = await https("/api/v1/me", undefined, { minVersion: "TLSv1.2", maxVersion: "TLSv1.2" });
        expect(v12.status).toBe(200);
        expect(v12.tlsVersion).toBe("TLSv1.2");
        const v13 = await https("/stream/42/playlist.m3u8", undefined, { minVersion: "TLSv1.3", maxVersion: "TLSv1.3" });
        expect(v13.status).toBe(200);
        expect(v13.tlsVersion).toBe("TLSv1.3");
        expect(lab.stream.map((b) => b.name)).toContain(backendOf(v13));
    });

    test("TLS 1.0 and 1.1 are refused by haproxy (control: the same client does speak TLS 1.0 to a server that allows it)", async () => {
        const control = tls.createServer({ cert: cert.cert, key: readFileSync(cert.keyPath), minVersion: "TLSv1", ...LEGACY_CLIENT }, (s) =>
            s.end(),
        );
        await new Promise<void>((resolve) => control.listen(0, "127.0.0.1", () => resolve()));
        try {
            const controlPort = (control.address() as { port: number }).port;
            const legacy = await handshake(controlPort, { minVersion: "TLSv1", maxVersion: "TLSv1", ...LEGACY_CLIENT });
            expect(legacy).toMatchObject({ ok: true, protocol: "TLSv1" });
        } finally {
            control.close();
        }
        for (const version of ["TLSv1", "TLSv1.1"] as const) {
            const result = await handshake(lab.hp.httpsPort as number, { minVersion: version, maxVersion: version, ...LEGACY_CLIENT });
            console.log(`${version} against haproxy: ${result.ok ? `accepted (${result.protocol})` : `refused: ${result.code}`}`);
            expect(result.ok).toBe(false);
            // The server's protocol_version alert, not a local client problem.
            expect(result.code).toMatch(/ALERT_PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL/);
        }
    });

    test("plain HTTP is redirected to the HTTPS listener's port (301, same host and path) without reaching a backend", async () => {
        const before = lab.api.reduce((n, b) => n + b.requests, 0) + lab.stream.reduce((n, b) => n + b.requests, 0);
        // The harness's HTTPS port is not 443, like a user's listenHttps: 8443: the redirect must name it.
        const https = lab.hp.httpsPort as number;
        expect(https).not.toBe(443);
        for (const path of ["/api/v1/tracks?page=2", "/stream/42/playlist.m3u8", "/"]) {
            for (const host of ["veza.localhost", `veza.localhost:${lab.hp.httpPort}`, "veza.localhost:80", "[::1]:80"]) {
                const res = await get(lab.hp.httpPort, path, { host });
                const name = host.replace(/:\d+$/, "");
                expect({ path, host, status: res.status, location: res.headers.location }).toEqual({
                    path,
                    host,
                    status: 301,
                    location: `https://${name}:${https}${path}`,
                });
                expect(backendOf(res)).toBeUndefined();
            }
        }
        // And the redirect target answers: the client that follows it reaches the HTTPS listener.
        const followed = await handshake(https, {});
        expect(followed.ok).toBe(true);
        const after = lab.api.reduce((n, b) => n + b.requests, 0) + lab.stream.reduce((n, b) => n + b.requests, 0);
        expect(after).toBe(before);
    });

    test("over TLS the sticky cookie carries Secure and HttpOnly, and a WebSocket over TLS with it lands on the pinned server", async () => {
        const first = await https("/api/v1/login");
        const pinned = backendOf(first) as string;
        const cookie = setCookie(first, COOKIE);
        expect(cookie).toBeDefined();
        expect(cookie!.value).toBe(cookieValue("api_pool", pinned, ""));
        expect(cookie!.attributes).toHaveProperty("secure");
        expect(cookie!.attributes).toHaveProperty("httponly");
        expect(cookie!.attributes.path).toBe("/");
        // Sent on top-level navigations from other sites, not on their subrequests (the default; stickyCookieSameSite changes it).
        expect(cookie!.attributes.samesite).toBe("Lax");
        for (let i = 0; i < 10; i++) {
            const res = await https(`/api/v1/me?i=${i}`, { cookie: `${COOKIE}=${cookie!.value}` });
            expect(backendOf(res)).toBe(pinned);
            expect(echo(res).headers.cookie).toBeUndefined();
        }
        const ws = await openWebSocket(lab.hp.httpsPort as number, "/ws", {
            headers: { cookie: `${COOKIE}=${cookie!.value}` },
            tls: { ca: cert.cert, servername: "localhost" },
        });
        expect(ws.headers["x-backend"]).toBe(pinned);
        await ws.echo("over tls");
        ws.close();
    });

    test("HSTS is off by default; with hstsMaxAgeSeconds it is sent over HTTPS only, never on plain HTTP", async () => {
        expect((await https("/api/v1/me")).headers["strict-transport-security"]).toBeUndefined();
        const hsts = await startLab({
            api: 1,
            stream: 1,
            settings: { healthCheckIntervalMs: 1000, tlsCertPath: cert.pemPath, hstsMaxAgeSeconds: 31536000, httpsRedirect: false },
        });
        const overTls = await request({
            port: hsts.hp.httpsPort as number,
            path: "/api/v1/me",
            tls: { ca: cert.cert, servername: "localhost" },
        });
        expect(overTls.headers["strict-transport-security"]).toBe("max-age=31536000");
        // A browser ignores HSTS over HTTP (RFC 6797 8.1); sending it there would only mislead.
        const plain = await get(hsts.hp.httpPort, "/api/v1/me");
        expect(plain.status).toBe(200);
        expect(plain.headers["strict-transport-security"]).toBeUndefined();
    });
});
