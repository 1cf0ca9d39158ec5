/*
 * Slow-client attacks at scale, with the real tool: slowhttptest
 * runs a slow-body (R-U-Dead-Yet) and a slowloris (slow headers) attack at
 * once against the rendered config, while a normal client (another source
 * address) keeps asking.
 *
 * Both kinds are answered at the 10 s request timeout. On HAProxy 2.6 the
 * connection closes then, so the attack holds at most ~10 s of its
 * connection rate, and with maxConnections above that the normal client is
 * always served. The config before hole 1's fix fails here: slow bodies were
 * never cut, piled up until maxconn was full, and the normal client's
 * requests then waited in the kernel's backlog until they timed out.
 *
 * HAProxy 3.x answers the 408 too, but then reads the rest of the request
 * before it closes (mux_h1.c h1_detach: H1_CS_DRAINING, timed by "timeout
 * client", which a client sending every 2 s never reaches): the slow body
 * keeps its connection. What bounds one attacking address there is
 * rateLimit.maxConcurrentPerClient, closing its extra connections as they
 * are accepted; the second test proves that on both releases.
 */
import { ChildProcess, spawn } from "child_process";
import { readFileSync, rmSync } from "fs";
import * as path from "path";
import { cleanupAll, findBinary, get, haproxyVersion, Lab, makeTempDir, onCleanup, requireBinary, sleep, startLab } from "../support";

jest.setTimeout(90_000);

const describeWithTools = requireBinary("haproxy", "slowhttptest");

/** New connections a second of each attack. */
const SLOW_BODY_RATE = 40;
const SLOWLORIS_RATE = 15;
/**
 * Above what both attacks hold while their connections close at the timeout ((40 + 15)/s x ~11 s = ~600),
 * below what slow bodies alone pile up to when they do not (40/s x 20 s).
 */
const MAX_CONNECTIONS = 700;
/** A normal client's patience: a request waiting for a free slot longer than this failed. */
const NORMAL_TIMEOUT_MS = 3_000;
/** HAProxy 2.6 closes a connection with its 408; 3.x reads the request to its end first. */
const drainsAfterAnswer = (): boolean => Number(haproxyVersion().split(".")[0]) >= 3;

interface Attack {
    done: Promise<void>;
    csv: string;
}

/** One slowhttptest run (`mode` -B slow body or -H slowloris) from 127.0.0.1 against 127.0.0.1:port, killed at cleanup if still running. */
function attack(mode: "-B" | "-H", port: number, seconds: number, dir: string): Attack {
    const prefix = path.join(dir, mode === "-B" ? "slow-body" : "slowloris");
    const rate = mode === "-B" ? SLOW_BODY_RATE : SLOWLORIS_RATE;
    const args = [mode, "-c", String(rate * seconds), "-r", String(rate), "-i", "2", "-x", "8", "-s", "8192"];
    args.push("-l", String(seconds), "-p", "3", "-g", "-o", prefix, "-u", `http://127.0.0.1:${port}/api/v1/upload`);
    const child: ChildProcess = spawn(findBinary("slowhttptest") as string, args, { stdio: "ignore" });
    onCleanup(() => void child.kill("SIGKILL"), "slowhttptest");
    const done = new Promise<void>((resolve, reject) => {
        child.on("error", reject);
        child.on("exit", () => resolve());
    });
    return { done, csv: `${prefix}.csv` };
}

/** The most connections an attack held open at once, from slowhttptest's per-second CSV ("Seconds,Closed,Pending,Connected,Service Available"). */
function peakConnected(csv: string): number {
    const rows = readFileSync(csv, "utf8").trim().split("\n").slice(1);
    return Math.max(...rows.map((row) => Number(row.split(",")[3])));
}

interface Outcome {
    /** Peak connections held by the slow-body and the slowloris attack. */
    peaks: [number, number];
    asked: number;
    served: number;
    failures: string[];
    /** The frontend's most sessions at once, and connections it refused at accept. */
    frontendMax: number;
    deniedConnections: number;
    /** Slow-body requests a server saw (POSTs; the GETs there are the normal client's and slowhttptest's probes). */
    postsServed: number;
}

/** Both attacks for `seconds` from 127.0.0.1, and a normal client from 127.0.0.7 asking every 100 ms meanwhile. */
async function underAttack(lab: Lab, seconds: number): Promise<Outcome> {
    const dir = makeTempDir("veza-slow-attack-");
    onCleanup(() => rmSync(dir, { recursive: true, force: true }), "the attack's reports");
    const attacks = [attack("-B", lab.hp.httpPort, seconds, dir), attack("-H", lab.hp.httpPort, seconds, dir)];
    let asked = 0;
    let served = 0;
    const failures: string[] = [];
    const started = Date.now();
    let running = true;
    void Promise.all(attacks.map((a) => a.done)).then(() => (running = false));
    while (running) {
        asked++;
        const at = Date.now() - started;
        try {
            const res = await get(lab.hp.httpPort, "/api/v1/me", undefined, { timeoutMs: NORMAL_TIMEOUT_MS, localAddress: "127.0.0.7" });
            if (res.status === 200) served++;
            else failures.push(`${at} ms: ${res.status}`);
        } catch (error) {
            failures.push(`${at} ms: ${(error as Error).message}`);
        }
        await sleep(100);
    }
    const frontend = await lab.hp.statRow("veza_http", "FRONTEND");
    const outcome: Outcome = {
        peaks: [peakConnected(attacks[0].csv), peakConnected(attacks[1].csv)],
        asked,
        served,
        failures,
        frontendMax: Number(frontend.smax),
        deniedConnections: Number(frontend.dcon),
        postsServed: lab.api.reduce((n, b) => n + (b.requestsByMethod.POST ?? 0), 0),
    };
    console.log(
        `slow attack on HAProxy ${haproxyVersion()}: ${SLOW_BODY_RATE}/s slow-body + ${SLOWLORIS_RATE}/s slowloris for ${seconds} s; ` +
            `peak held by the attack ${outcome.peaks[0]} + ${outcome.peaks[1]}, frontend max sessions ${outcome.frontendMax} of maxconn ${MAX_CONNECTIONS}, ` +
            `${outcome.deniedConnections} connections refused; normal client ${served}/${asked} served` +
            (failures.length > 0 ? `; failures: ${failures.slice(0, 3).join("; ")}` : ""),
    );
    return outcome;
}

describeWithTools("slow-client attacks (slowhttptest)", () => {
    afterEach(cleanupAll);

    test(
        findBinary("haproxy") !== undefined && drainsAfterAnswer()
            ? "slow bodies are answered at the request timeout and never reach a server, but (HAProxy 3.x) keep their connection while the client keeps sending"
            : "slow bodies and slowloris are cut at the request timeout, so a normal client is always served during the attack, and no slow body reaches a server",
        async () => {
            const lab = await startLab({ api: 2, stream: 1, settings: { healthCheckIntervalMs: 1000, maxConnections: MAX_CONNECTIONS } });
            const outcome = await underAttack(lab, 20);
            expect(outcome.postsServed).toBe(0);
            if (drainsAfterAnswer()) {
                // What docs/edge-protection.md (Slow clients at scale) says of 3.x: slow bodies outlive the 10 s timeout (40/s x 10 s would be the bound).
                expect(outcome.peaks[0]).toBeGreaterThan(SLOW_BODY_RATE * 15);
            } else {
                // The attack ran at size, bounded by the timeout: hundreds of connections, never maxconn.
                expect(outcome.peaks[0] + outcome.peaks[1]).toBeGreaterThan((SLOW_BODY_RATE + SLOWLORIS_RATE) * 8);
                expect(outcome.frontendMax).toBeLessThan(MAX_CONNECTIONS);
                expect(outcome.failures).toEqual([]);
                expect(outcome.served).toBe(outcome.asked);
            }
        },
    );

    test("with maxConcurrentPerClient, the attacking address holds at most that many connections and a normal client is always served", async () => {
        const cap = 100;
        const lab = await startLab({
            api: 2,
            stream: 1,
            settings: {
                healthCheckIntervalMs: 1000,
                maxConnections: MAX_CONNECTIONS,
                rateLimit: { requests: 100000, periodSeconds: 10, maxConcurrentPerClient: cap },
            },
        });
        const outcome = await underAttack(lab, 15);
        expect(outcome.failures).toEqual([]);
        expect(outcome.served).toBe(outcome.asked);
        expect(outcome.postsServed).toBe(0);
        // The attack's extra connections were refused, and the frontend never held more than the cap, the
        // normal client's one and the few being refused at that instant (counted until the reject runs).
        expect(outcome.deniedConnections).toBeGreaterThan(0);
        expect(outcome.frontendMax).toBeLessThanOrEqual(cap + 5);
    });
});
