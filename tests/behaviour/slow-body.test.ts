/*
 * A request body sent slowly is cut at the edge: the
 * request timeout (10 s) covers the body, not only the headers, so a client
 * dripping a byte a second cannot hold a connection, and the backend never
 * sees its request. Normal clients are served meanwhile.
 *
 * One dripping socket, not the 4,100: this proves the timeout; the
 * attack at scale (slowhttptest) is for the bench.
 */
import * as net from "net";
import { cleanupAll, get, requireBinary, sleep, startLab } from "../support";

jest.setTimeout(60_000);

const describeWithHaproxy = requireBinary("haproxy");
/** templates/haproxy.cfg.mustache: timeout http-request. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Past this, the connection was held open by the drip: the body is not covered by the request timeout. */
const LIMIT_MS = REQUEST_TIMEOUT_MS + 5_000;

/** Sends a POST's headers, then its body a byte a second; resolves with the answer, when it came, and the body bytes sent by then. */
function dripBody(port: number): Promise<{ answer: string; ms: number; bytesSent: number }> {
    return new Promise((resolve) => {
        const started = Date.now();
        const socket = net.connect({ host: "127.0.0.1", port });
        let answer = "";
        let bytesSent = 0;
        let timer: NodeJS.Timeout | undefined;
        let done = false;
        const finish = () => {
            if (done) return;
            done = true;
            if (timer) clearInterval(timer);
            socket.destroy();
            resolve({ answer, ms: Date.now() - started, bytesSent });
        };
        socket.on("connect", () => {
            socket.write("POST /api/v1/upload HTTP/1.1\r\nHost: veza.localhost\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n");
            timer = setInterval(() => {
                if (Date.now() - started > LIMIT_MS) return finish();
                socket.write("x");
                bytesSent++;
            }, 1_000);
        });
        // Done at the answer's end of headers: HAProxy 3.0 then keeps reading
        // (and dropping) what the client still sends before it closes.
        socket.on("data", (d) => {
            answer += d.toString("latin1");
            if (answer.includes("\r\n\r\n")) finish();
        });
        socket.on("close", finish);
        socket.on("error", finish);
    });
}

describeWithHaproxy("slow request bodies", () => {
    afterEach(cleanupAll);

    test("a body dripped a byte a second is answered 408 within the request timeout and never reaches a backend; other clients are served meanwhile", async () => {
        const lab = await startLab({ api: 2, stream: 1, settings: { healthCheckIntervalMs: 1000 } });
        const served = () => lab.api.reduce((n, b) => n + b.requests, 0);
        const before = served();
        const drip = dripBody(lab.hp.httpPort);
        let normal = 0;
        let normalOk = 0;
        const t0 = Date.now();
        while (Date.now() - t0 < REQUEST_TIMEOUT_MS + 1_000) {
            normal++;
            if ((await get(lab.hp.httpPort, "/api/v1/me")).status === 200) normalOk++;
            await sleep(200);
        }
        const result = await drip;
        console.log(
            `slow body: answered after ${result.ms} ms and ${result.bytesSent} body bytes; normal client ${normalOk}/${normal} served meanwhile`,
        );
        expect(result.answer.split("\r\n")[0]).toBe("HTTP/1.1 408 Request Time-out");
        expect(result.ms).toBeLessThan(LIMIT_MS);
        expect(normalOk).toBe(normal);
        // Only the normal client's requests reached a backend.
        expect(served() - before).toBe(normal);
    });
});
