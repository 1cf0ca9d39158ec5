/**
 * End-to-end: the failure paths of the config step (templates/config-create.sh.mustache, _config-in-container.sh),
 * on real Incus containers, through the scripts HaproxyLoadBalancer registers
 * (captured under Pulumi mocks, run with /bin/sh -c and their stdin: see
 * product.ts). The only input changed is the header's reload_wait_seconds
 * (4 s instead of 15, for speed); configs are rendered by the component from
 * its args, never typed here.
 *
 *   A  the lab config (listens on :80)
 *   B  A with `listenHttp: 8099`: `haproxy -c` accepts it, but a socat listener (a transient unit)
 *      http.server started in the container holds 0.0.0.0:8099, so HAProxy
 *      cannot bind it
 *   C  A with another health-check interval (a second valid config on :80)
 *
 * Own containers (haproxy-f, fail-api-1, fail-stream-1): this file runs in
 * band with lab.test.ts and never touches its containers. afterAll deletes
 * them whatever happened. Timings and request counts are printed, not asserted.
 */
import type { HaproxyLoadBalancerArgs } from "../../components";
import { sha256Hex } from "../../components/identity";
import { get, sleep, waitFor } from "../support";
import {
    API_PORT,
    buildSteps,
    CONFIG_PATH,
    configSha,
    deleteContainers,
    execIn,
    execInOk,
    installProductMocks,
    LAB_IMAGE,
    launchBackend,
    listContainers,
    ProductSteps,
    requireIncusLab,
    runStep,
    runStepOk,
    serverStats,
    showProc,
    startTrafficPair,
    StepRun,
    STREAM_PORT,
    trafficSummary,
    waitHttpOk,
    writeFileIn,
} from "../support/lab";
import { cleanUpAfterSuite, noteBook } from "./suite";

// Once per file, before the component module is loaded (buildSteps loads it).
installProductMocks();

const describeLab = requireIncusLab();
const LB = "haproxy-f";
const API = "fail-api-1";
const STREAM = "fail-stream-1";
const CONTAINERS = [LB, API, STREAM] as const;
/** The port config B listens on, held by another program in the LB container. */
const TAKEN_PORT = 8099;
/** The one input lowered for speed (the component's default is 15). */
const FAST = { header: { reload_wait_seconds: "4" } };

const notes = noteBook("e2e config failures");
const note = notes.note;
const step = (r: StepRun): string => `exit ${r.code} after ${r.ms} ms`;

function args(extra: Partial<HaproxyLoadBalancerArgs> = {}): HaproxyLoadBalancerArgs {
    return {
        containerName: LB,
        image: LAB_IMAGE,
        apiServers: [{ name: API, address: `${API}.lxd` }],
        streamServers: [{ name: STREAM, address: `${STREAM}.lxd` }],
        healthCheckIntervalMs: 500,
        healthCheckFall: 3,
        healthCheckRise: 2,
        ...extra,
    };
}

const SQUATTER_REPLY = "/run/veza-squatter-reply";
// It reads the request head before it answers: a process that exits with the
// request unread makes the kernel reset the connection, and the client can
// see the reset before the reply ("socket hang up", seen in CI under load).
const SQUATTER_REPLY_SCRIPT =
    "#!/bin/sh\n" +
    "cr=$(printf '\\r')\n" +
    'while IFS= read -r line; do [ -z "$line" ] || [ "$line" = "$cr" ] && break; done\n' +
    "printf 'HTTP/1.0 200 OK\\r\\nServer: veza-squatter\\r\\nContent-Length: 0\\r\\n\\r\\n'\n";

/** Another program listening on `port` in the LB container (a transient systemd unit). */
async function occupy(port: number): Promise<string> {
    const unit = `veza-e2e-squatter-${port}`;
    await execIn(LB, ["systemctl", "stop", unit]);
    await execInOk(LB, ["sh", "-c", 'cat > "$1" && chmod 755 "$1"', "sh", SQUATTER_REPLY], SQUATTER_REPLY_SCRIPT);
    await execInOk(LB, [
        "systemd-run",
        "--unit",
        unit,
        "--collect",
        // socat: the load balancer's image holds haproxy and socat, nothing else to listen with.
        "socat",
        `TCP-LISTEN:${port},bind=0.0.0.0,reuseaddr,fork`,
        // Answers every connection, so a test can tell it still holds the port.
        `EXEC:${SQUATTER_REPLY}`,
    ]);
    await waitFor(async () => (await execInOk(LB, ["ss", "-Hltnp", `sport = :${port}`])).includes("socat"), {
        what: `socat listening on :${port}`,
        timeoutMs: 10_000,
        intervalMs: 100,
    });
    return unit;
}

async function release(port: number): Promise<void> {
    await execIn(LB, ["systemctl", "stop", `veza-e2e-squatter-${port}`]);
}

async function isActive(): Promise<string> {
    return (await execIn(LB, ["systemctl", "is-active", "haproxy"])).stdout.trim();
}

/** `haproxy -c` on the config file in place. */
async function checkInPlace(): Promise<void> {
    const r = await execIn(LB, ["haproxy", "-c", "-f", CONFIG_PATH]);
    // The exit status is the verdict: HAProxy 3.x no longer prints "Configuration file is valid".
    expect({ code: r.code, alerts: `${r.stdout}${r.stderr}`.match(/\[ALERT\].*/g) ?? [] }).toEqual({ code: 0, alerts: [] });
}

async function noLeftover(): Promise<void> {
    const r = await execIn(LB, ["sh", "-c", 'ls "$1".veza-new 2>/dev/null', "sh", CONFIG_PATH]);
    expect(r.stdout).toBe("");
}

describeLab("config step failure paths on a real Incus lab", () => {
    let a: ProductSteps; // serving config
    let b: ProductSteps; // listens on TAKEN_PORT
    let c: ProductSteps; // another valid config on :80
    let url = "";
    let address = "";

    beforeAll(async () => {
        await deleteContainers(CONTAINERS);
        a = await buildSteps("fail-a", args());
        b = await buildSteps("fail-b", args({ listenHttp: TAKEN_PORT }));
        c = await buildSteps("fail-c", args({ healthCheckIntervalMs: 700 }));
        for (const s of [a, b, c]) expect(s.config.header.config_sha256).toBe(sha256Hex(s.config.payload));
        // Same scripts, same container; only the config differs.
        expect(b.config.update).toBe(a.config.update);
        expect(b.config.payload).toContain(`bind *:${TAKEN_PORT}`);
        expect(new Set([a, b, c].map((s) => s.config.stdin)).size).toBe(3);
    }, 60_000);

    cleanUpAfterSuite(CONTAINERS, notes);

    test("setup: the registered container and config steps bring up haproxy serving config A", async () => {
        await Promise.all([launchBackend(API, API_PORT), launchBackend(STREAM, STREAM_PORT)]);
        const container = await runStepOk(a.container, "create");
        address = container.stdout.trim();
        expect(address).toMatch(/^198\.18\.0\.\d{1,3}$/);
        url = `http://${address}`;
        await runStepOk(a.config, "create");
        expect(await configSha(LB)).toBe(a.config.header.config_sha256);
        await waitFor(
            async () => {
                const stats = await serverStats(LB);
                return stats.get(`api_pool/${API}`)?.status === "UP" && stats.get(`stream_pool/${STREAM}`)?.status === "UP";
            },
            { what: "both servers UP", timeoutMs: 30_000, intervalMs: 200 },
        );
        expect((await get(url, "/api/v1/items")).status).toBe(200);
    }, 240_000);

    test("a config whose port another program holds is refused before the swap: the running haproxy keeps serving the old one, zero failed requests", async () => {
        await occupy(TAKEN_PORT);
        // B passes the validation gate: the conflict only shows when binding.
        await writeFileIn(LB, "/tmp/veza-e2e-b.cfg", b.config.payload);
        const checked = await execIn(LB, ["haproxy", "-c", "-f", "/tmp/veza-e2e-b.cfg"]);
        expect(checked.code).toBe(0);

        const shaBefore = await configSha(LB);
        expect(shaBefore).toBe(a.config.header.config_sha256);
        const procBefore = await showProc(LB);
        const { fresh: loop, keepAlive: loopKa } = await startTrafficPair(url, 300);

        const r = await runStep(b.config, "update", FAST);
        note("port held, haproxy running: step start -> exit", `${step(r)}: ${r.stderr.trim().split("\n").join(" | ")}`);
        // Keep the loops running a little after the step: a paused listener would show here.
        const mark = loop.requests;
        await waitFor(async () => loop.requests > mark + 200, {
            what: "200 more requests after the step",
            timeoutMs: 15_000,
            intervalMs: 50,
        });
        const result = await loop.stop();
        const resultKa = await loopKa.stop();
        note(
            "requests / failures during the refused push",
            `new connections ${trafficSummary(result)}; keep-alive ${trafficSummary(resultKa)}`,
        );

        expect(r.code).toBe(4);
        expect(r.stderr).toMatch(
            new RegExp(`port ${TAKEN_PORT} \\(bind \\*:${TAKEN_PORT}\\) is held by socat \\(pid \\d+\\) on 0\\.0\\.0\\.0:${TAKEN_PORT}`),
        );
        expect(r.stderr).toContain("running config and process untouched");
        expect(await configSha(LB)).toBe(shaBefore);
        const procAfter = await showProc(LB);
        const pick = (p: typeof procBefore) => ({ master: p.master, masterReloads: p.masterReloads, worker: p.worker });
        expect(pick(procAfter)).toEqual(pick(procBefore));
        await checkInPlace();
        await noLeftover();
        expect(result.errors).toEqual([]);
        expect(result.failures).toBe(0);
        expect(resultKa.errors).toEqual([]);
        expect(resultKa.failures).toBe(0);
        // The other program still has its port.
        const squatter = await get(`http://${address}:${TAKEN_PORT}`, "/");
        expect(squatter.headers.server).toBe("veza-squatter");
    }, 120_000);

    test("with the master CLI not answering, the step cannot prove a reload, so it touches nothing (exit 7), zero failed requests", async () => {
        const procBefore = await showProc(LB);
        const { fresh: loop, keepAlive: loopKa } = await startTrafficPair(url, 300);

        // The master does not answer (stands for a master stuck loading, e.g. on
        // slow DNS); the worker it already runs keeps serving. Before this was
        // fixed, a missing first answer read as "no worker", any later worker as
        // "reloaded", and the step exited 0 without a proven reload.
        await execInOk(LB, ["kill", "-STOP", String(procBefore.master)]);
        let r!: StepRun;
        let shaWhileHung!: string;
        try {
            r = await runStep(c.config, "update", FAST);
            shaWhileHung = await configSha(LB);
        } finally {
            await execInOk(LB, ["kill", "-CONT", String(procBefore.master)]);
        }
        note(
            "master hung, wait 4 s: step start -> exit",
            `${step(r)}: ${r.stderr
                .split("\n")
                .filter((l) => l.startsWith("veza-haproxy"))
                .join(" | ")}`,
        );
        expect(r.code).toBe(7);
        expect(r.stderr).toContain(
            "the master CLI (/run/haproxy-master.sock) did not answer within 4s: a reload could not be proven, so nothing was touched",
        );
        expect(shaWhileHung).toBe(a.config.header.config_sha256);
        // No reload was sent: the same master and worker serve A.
        const procAfter = await showProc(LB);
        expect(procAfter.master).toBe(procBefore.master);
        expect(procAfter.worker).toBe(procBefore.worker);
        expect(procAfter.masterReloads).toBe(procBefore.masterReloads);
        await checkInPlace();
        await noLeftover();

        const mark = loop.requests;
        await waitFor(async () => loop.requests > mark + 100, { what: "100 more requests", timeoutMs: 15_000, intervalMs: 50 });
        const result = await loop.stop();
        const resultKa = await loopKa.stop();
        note(
            "requests / failures while the master was hung",
            `new connections ${trafficSummary(result)}; keep-alive ${trafficSummary(resultKa)}`,
        );
        expect(result.errors).toEqual([]);
        expect(result.failures).toBe(0);
        expect(resultKa.errors).toEqual([]);
        expect(resultKa.failures).toBe(0);
    }, 120_000);

    test("with haproxy stopped, the step starts it with the new config and the load balancer serves 200", async () => {
        await execInOk(LB, ["systemctl", "stop", "haproxy"]);
        expect(await isActive()).not.toBe("active");
        const r = await runStepOk(c.config, "update", FAST);
        const t0 = Date.now();
        await waitHttpOk(url, "/api/v1/items", 30_000);
        note("stopped -> started with C: step start -> exit", `${step(r)}; first 200 ${Date.now() - t0} ms after exit`);
        expect(r.stderr).toContain("started haproxy");
        expect(await isActive()).toBe("active");
        expect(await configSha(LB)).toBe(c.config.header.config_sha256);
        expect((await showProc(LB)).masterReloads).toBe(0);
        await checkInPlace();
    }, 120_000);

    test("with haproxy stopped and the new config unable to bind, the step restores the previous config and haproxy runs it (exit 3)", async () => {
        await execInOk(LB, ["systemctl", "stop", "haproxy"]);
        const r = await runStep(b.config, "update", FAST);
        const t0 = Date.now();
        await waitHttpOk(url, "/api/v1/items", 30_000);
        note("stopped, B cannot bind: step start -> exit", `${step(r)}; first 200 (previous config) ${Date.now() - t0} ms after exit`);
        expect(r.code).toBe(3);
        expect(r.stderr).toContain("haproxy did not start with the new config; restoring the previous config");
        expect(r.stderr).toContain(`cannot bind socket (Address already in use) for [0.0.0.0:${TAKEN_PORT}]`);
        expect(r.stderr).toContain("previous config restored; haproxy is running");
        expect(await configSha(LB)).toBe(c.config.header.config_sha256);
        expect(await isActive()).toBe("active");
        await checkInPlace();
        await noLeftover();
        const squatter = await get(`http://${address}:${TAKEN_PORT}`, "/");
        expect(squatter.headers.server).toBe("veza-squatter");
    }, 120_000);

    test("with haproxy stopped and neither config able to bind, exit 3 says so; the next run starts haproxy once the port is free", async () => {
        await execInOk(LB, ["systemctl", "stop", "haproxy"]);
        await occupy(80);
        const r = await runStep(b.config, "update", FAST);
        note("stopped, B and previous both blocked: step start -> exit", `${step(r)}`);
        expect(r.code).toBe(3);
        expect(r.stderr).toContain("previous config restored; haproxy is NOT running (it did not start with the previous config either)");
        // The journal lines printed say why, for both configs.
        expect(r.stderr).toContain(`cannot bind socket (Address already in use) for [0.0.0.0:${TAKEN_PORT}]`);
        expect(r.stderr).toContain("cannot bind socket (Address already in use) for [0.0.0.0:80]");
        expect(await configSha(LB)).toBe(c.config.header.config_sha256);
        // systemd's Restart=always retries the previous config until its start limit.
        const t0 = Date.now();
        await waitFor(
            async () => (await execInOk(LB, ["systemctl", "show", "-p", "ActiveState", "--value", "haproxy"])).trim() === "failed",
            { what: "haproxy.service to give up (failed)", timeoutMs: 30_000, intervalMs: 100 },
        );
        const restarts = (await execInOk(LB, ["systemctl", "show", "-p", "NRestarts", "--value", "haproxy"])).trim();
        note("systemd retries before giving up", `${restarts} automatic restarts, failed ${Date.now() - t0} ms after the step exited`);

        // The port frees up: nothing restarts haproxy by itself any more...
        await release(80);
        await sleep(1_000);
        expect(await isActive()).not.toBe("active");
        // ...the next run of the config step does, although systemd's start limit was hit.
        const again = await runStepOk(c.config, "update", FAST);
        note("next config step run after the port is free: step start -> exit", `${step(again)}`);
        expect(again.stderr).toContain("started haproxy");
        await waitHttpOk(url, "/api/v1/items", 30_000);
        expect(await configSha(LB)).toBe(c.config.header.config_sha256);
    }, 120_000);

    test("a maxConnections beyond the open files haproxy may hold is refused before the swap (exit 9); a value within them starts", async () => {
        const tooMany = await buildSteps("fail-d", args({ maxConnections: 20_000 }));
        const shaBefore = await configSha(LB);
        const refused = await runStep(tooMany.config, "update", FAST);
        note(
            "maxConnections 20000 (needs " + tooMany.config.header.open_files + " open files)",
            `${step(refused)}: ${refused.stderr
                .split("\n")
                .filter((l) => l.startsWith("veza-haproxy"))
                .join(" | ")}`,
        );
        expect(refused.code).toBe(9);
        expect(refused.stderr).toMatch(/maxConnections needs about \d+ open files .* but haproxy may hold at most \d+ here/);
        expect(await configSha(LB)).toBe(shaBefore);
        await noLeftover();
        // 9000 connections need ~18,300 files: within this lab's 20,000, so it must start and serve.
        const fits = await buildSteps("fail-e", args({ maxConnections: 9_000 }));
        const applied = await runStepOk(fits.config, "update", FAST);
        note("maxConnections 9000 (needs " + fits.config.header.open_files + " open files)", step(applied));
        await waitHttpOk(url, "/api/v1/items", 30_000);
        expect(await configSha(LB)).toBe(fits.config.header.config_sha256);
    }, 120_000);

    test("the registered delete script removes haproxy-f, and the backends go too", async () => {
        await release(TAKEN_PORT);
        const del = await runStepOk(a.container, "delete");
        expect(del.stderr).toContain(`deleting ${LB}`);
        await deleteContainers([API, STREAM]);
        const left = (await listContainers()).filter((n) => (CONTAINERS as readonly string[]).includes(n));
        expect(left).toEqual([]);
    }, 120_000);
});
