/**
 * End-to-end on real Incus containers: the HAProxy container is provisioned
 * by exactly the scripts HaproxyLoadBalancer registers (captured under
 * pulumi.runtime.setMocks and run with /bin/sh -c and their stdin, like
 * @pulumi/command's local provider). The backends are the lab's
 * fake backend (fixture), launched with lab/lab.ts.
 *
 * The scenarios share one lab and run in order (npm run test:e2e is
 * --runInBand): fresh lab, failover drill, membership change (add, then
 * remove), validation gate, idempotency + restart, teardown. afterAll deletes every lab
 * container whatever happened. Timings are printed, never asserted.
 */
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { isDeepStrictEqual } from "node:util";
import type { HaproxyLoadBalancerArgs } from "../../components";
import { sha256Hex } from "../../components/identity";
import { get, waitFor } from "../support";
import {
    admin,
    ADMIN_FORCED_DRAIN,
    API_PORT,
    buildSteps,
    configSha,
    deleteContainers,
    execIn,
    execInOk,
    ExecResult,
    FAKE_BACKEND_UNIT,
    incus,
    incusOk,
    installProductMocks,
    instanceIdentity,
    LAB_CONTAINERS,
    LAB_IMAGE,
    launchBackend,
    listContainers,
    ProductSteps,
    REPO_ROOT,
    requireIncusLab,
    runRepoScript,
    runStep,
    runStepOk,
    scrapeNodeMetrics,
    serversState,
    serverStats,
    showProc,
    startTrafficPair,
    STREAM_PORT,
    TrafficLoop,
    TrafficResult,
} from "../support/lab";
import { cleanUpAfterSuite, noteBook } from "./suite";

// Once per file, before the component module is loaded (buildSteps loads it).
installProductMocks();

const describeLab = requireIncusLab();
const LB = "haproxy";
const INTER_MS = 500;
const FALL = 3;
const RISE = 2;

const notes = noteBook("e2e");
const note = notes.note;

/** Reports a client loop pair (new connections, keep-alive) and asserts that neither saw a failure. */
function expectNoFailures(label: string, loop: TrafficResult, keepAlive: TrafficResult): void {
    note(
        `${label}: requests / failures`,
        `new connections ${loop.requests} / ${loop.failures} in ${loop.ms} ms, by backend ${JSON.stringify(loop.byBackend)}; ` +
            `keep-alive ${keepAlive.requests} / ${keepAlive.failures} ${JSON.stringify(keepAlive.errors.slice(0, 3))}`,
    );
    expect(loop.errors).toEqual([]);
    expect(loop.failures).toBe(0);
    expect(keepAlive.errors).toEqual([]);
    expect(keepAlive.failures).toBe(0);
}

/** The lab stack (Pulumi.lab.yaml) with the health checks scaled down so the suite is fast. */
function labArgs(api: string[]): HaproxyLoadBalancerArgs {
    return {
        image: LAB_IMAGE,
        apiServers: api.map((name) => ({ name, address: `${name}.lxd` })),
        streamServers: ["stream-srv-1", "stream-srv-2"].map((name) => ({ name, address: `${name}.lxd` })),
        healthCheckIntervalMs: INTER_MS,
        healthCheckFall: FALL,
        healthCheckRise: RISE,
        gracefulDrainSeconds: 30,
        stickyCookieName: "VEZA_SERVERID",
    };
}

/** Poll until every listed server has exactly this status in `show stat`. */
async function waitStatus(servers: string[], status: string, timeoutMs = 30_000): Promise<void> {
    await waitFor(
        async () => {
            const stats = await serverStats(LB);
            const bad = servers.filter((s) => stats.get(s)?.status !== status);
            if (bad.length) throw new Error(bad.map((s) => `${s}=${stats.get(s)?.status ?? "absent"}`).join(" "));
            return true;
        },
        { what: `${servers.join(", ")} ${status}`, timeoutMs, intervalMs: 200 },
    );
}

function runDrill(env: Record<string, string>): Promise<ExecResult> {
    return runRepoScript("scripts/failover-drill.sh", [], env);
}

describeLab("HaproxyLoadBalancer on a real Incus lab", () => {
    let lab1: ProductSteps; // backend-api-1, -2 (the lab stack)
    let lab2: ProductSteps; // + backend-api-3
    let lab3: ProductSteps; // backend-api-3 removed again
    let address = "";
    let url = "";

    beforeAll(async () => {
        // A fresh lab: no leftover container from an earlier run.
        await deleteContainers(LAB_CONTAINERS);
        lab1 = await buildSteps(LB, labArgs(["backend-api-1", "backend-api-2"]));
    }, 120_000);

    cleanUpAfterSuite(LAB_CONTAINERS, notes);

    test("on a fresh lab the create scripts bring up haproxy: all four servers UP, api and stream traffic served, requests logged", async () => {
        const t0 = Date.now();
        await Promise.all([
            launchBackend("backend-api-1", API_PORT),
            launchBackend("backend-api-2", API_PORT),
            launchBackend("stream-srv-1", STREAM_PORT),
            launchBackend("stream-srv-2", STREAM_PORT),
        ]);
        note("backends launched (4, parallel)", `${Date.now() - t0} ms`);

        // Dependency order: container, (tls: none in the lab), config; each create finishes
        // before the next registration returns (pkg/resource/deploy/source_eval.go,
        // resmon.RegisterResource: see lifecycle.test.ts).
        expect(lab1.tls).toBeUndefined();
        const container = await runStepOk(lab1.container, "create");
        note("container create (haproxy-container create script)", `${container.ms} ms`);
        // stdout is the step's output: exactly the address.
        expect(container.stdout).toMatch(/^198\.18\.0\.\d{1,3}\n$/);
        address = container.stdout.trim();
        url = `http://${address}`;

        const config = await runStepOk(lab1.config, "create");
        note("config create (first config, reload from the image's default)", `${config.ms} ms`);
        expect(await configSha(LB)).toBe(lab1.config.header.config_sha256);
        expect(lab1.config.header.config_sha256).toBe(sha256Hex(lab1.config.payload));

        const upStart = Date.now();
        const four = ["api_pool/backend-api-1", "api_pool/backend-api-2", "stream_pool/stream-srv-1", "stream_pool/stream-srv-2"];
        await waitStatus(four, "UP");
        note("all four servers UP after config", `${Date.now() - upStart} ms`);
        const state = await serversState(LB);
        // api_ws holds the WebSocket twins of the api servers; they track api_pool's state.
        const twins = ["api_ws/backend-api-1", "api_ws/backend-api-2"];
        // veza_node_metrics/node: the node metrics behind the stats listener.
        expect([...state.keys()].sort()).toEqual([...four, ...twins, "veza_node_metrics/node"].sort());
        for (const s of [...four, ...twins]) expect(state.get(s)?.opState).toBe(2);

        const marker = `/e2e-log-probe-${Date.now()}`;
        const api = await get(url, marker);
        expect(api.status).toBe(200);
        expect(String(api.headers["x-backend"])).toMatch(/^backend-api-[12]$/);
        expect(JSON.parse(api.body).path).toBe(marker);

        const stream = await get(url, "/stream/7/x.ts");
        expect(stream.status).toBe(200);
        expect(String(stream.headers["x-backend"])).toMatch(/^stream-srv-[12]$/);
        expect(JSON.parse(stream.body).path).toBe("/stream/7/x.ts");

        // HAProxy logs through /dev/log (bound into the chroot) to journald.
        const line = await waitFor(
            async () => {
                const out = await execInOk(LB, ["journalctl", "-u", "haproxy", "--no-pager", "-o", "cat", "-n", "300"]);
                return out.split("\n").find((l) => l.includes(`GET ${marker} HTTP/1.1`));
            },
            { what: "the request log line in journalctl -u haproxy", timeoutMs: 15_000, intervalMs: 300 },
        );
        expect(line).toMatch(/veza_http api_pool\/backend-api-[12] .* 200 /);

        // The node metrics through the stats listener, served by the container's own systemd socket unit:
        // one worker, and the config apply just made (exit 0, within this test).
        const scrape = await scrapeNodeMetrics(LB);
        note("node metrics scrape", scrape.split("\n")[0]);
        expect(scrape).toMatch(/^HTTP\/1\.[01] 200 /);
        expect(scrape).toContain(`veza_haproxy_workers{node="${LB}"} 1\n`);
        expect(scrape).toContain(`veza_haproxy_config_apply_last_result{node="${LB}"} 0\n`);
        const appliedAt = Number(/^veza_haproxy_config_apply_last_run_timestamp_seconds\{[^}]*\} (\d+)$/m.exec(scrape)?.[1]);
        expect(appliedAt * 1000).toBeGreaterThanOrEqual(t0 - 1000);
    }, 240_000);

    test("the failover drill (scripts/failover-drill.sh) sees a stopped backend marked DOWN, the other serving 200, and its return UP", async () => {
        const drill = await runDrill({
            VEZA_LB: LB,
            VEZA_BACKEND: "backend-api-1",
            VEZA_UNIT: FAKE_BACKEND_UNIT,
            VEZA_POOL: "api_pool",
            VEZA_TIMEOUT: "60",
        });
        const output = `${drill.stdout}${drill.stderr}`;
        expect({ code: drill.code, output }).toEqual({ code: 0, output: expect.stringContaining("PASSED") });
        for (const step of ["1/5", "2/5", "3/5", "4/5", "5/5"]) expect(drill.stdout).toContain(`failover-drill: ${step}`);
        expect(drill.stdout).toContain("failover-drill: config drift: none (haproxy.cfg is the last apply's)");
        // It ran on an image that holds no more than the component installs: no curl, no python3, no sshd.
        expect((await execIn(LB, ["sh", "-c", "command -v curl || command -v python3 || command -v sshd"])).stdout).toBe("");
        const down = /marked DOWN after ([\d.]+)s \(inter (\d+)ms x fall (\d+)/.exec(drill.stdout);
        expect(down).not.toBeNull();
        expect(Number(down![2])).toBe(INTER_MS);
        expect(Number(down![3])).toBe(FALL);
        const served = /200, served by:(.*)$/m.exec(drill.stdout);
        expect(served?.[1].trim().split(/\s+/)).toEqual(["backend-api-2"]);
        const passed = /PASSED down_after_s=([\d.]+) up_after_s=([\d.]+)/.exec(drill.stdout);
        expect(passed).not.toBeNull();
        note(
            "failover detection (drill)",
            `${passed![1]} s to DOWN vs inter x fall = ${(INTER_MS * FALL) / 1000} s (expected ${(INTER_MS * (FALL - 1)) / 1000}-${(INTER_MS * FALL) / 1000} s + polling); rejoined UP after ${passed![2]} s (inter x rise = ${(INTER_MS * RISE) / 1000} s); drill ${drill.ms} ms`,
        );
        // The drill restarted the service: the whole pool is UP again.
        await waitStatus(["api_pool/backend-api-1", "api_pool/backend-api-2"], "UP");
        expect((await execIn("backend-api-1", ["systemctl", "is-active", FAKE_BACKEND_UNIT])).stdout.trim()).toBe("active");
    }, 240_000);

    test("adding a server runs only the config step: a hitless reload, zero failed requests, and the new server takes traffic", async () => {
        const t0 = Date.now();
        await launchBackend("backend-api-3", API_PORT);
        note("backend-api-3 launched", `${Date.now() - t0} ms`);

        lab2 = await buildSteps(LB, labArgs(["backend-api-1", "backend-api-2", "backend-api-3"]));
        // Pulumi runs a step's update only when its inputs change (unchanged inputs get a
        // SameStep: pulumi/pulumi pkg/resource/deploy/step_generator.go, continueStepsFromDiff):
        // the container's do not.
        expect(lab2.container.inputs).toEqual(lab1.container.inputs);
        expect(isDeepStrictEqual(lab2.container.inputs, lab1.container.inputs)).toBe(true);
        // The config step's do: its payload and what the header says of it (hash,
        // size, open files for one more server), nothing else.
        expect(lab2.config.stdin).not.toEqual(lab1.config.stdin);
        expect({ ...lab2.config.inputs, stdin: "" }).toEqual({ ...lab1.config.inputs, stdin: "" });
        const { config_sha256: _s2, config_bytes: _b2, open_files: _o2, ...fixed2 } = lab2.config.header;
        const { config_sha256: _s1, config_bytes: _b1, open_files: _o1, ...fixed1 } = lab1.config.header;
        expect(fixed2).toEqual(fixed1);
        expect(Number(lab2.config.header.open_files) - Number(lab1.config.header.open_files)).toBe(2);

        const { fresh: traffic, keepAlive: trafficKa } = await startTrafficPair(url, 500);
        const before = await showProc(LB);
        const reload = await runStepOk(lab2.config, "update");
        const after = await showProc(LB);
        note("reload time, add (config step start -> new worker)", `${reload.ms} ms (${reload.stderr.trim()})`);
        expect(reload.stderr).toMatch(new RegExp(`reloaded: worker ${before.worker} -> ${after.worker}`));
        expect(after.master).toBe(before.master);
        expect(after.masterReloads).toBe(before.masterReloads + 1);
        expect(after.worker).not.toBe(before.worker);
        expect(await configSha(LB)).toBe(lab2.config.header.config_sha256);

        await waitStatus(["api_pool/backend-api-1", "api_pool/backend-api-2", "api_pool/backend-api-3"], "UP");
        traffic.resetSeen();
        await waitFor(async () => traffic.hasSeen("backend-api-3"), {
            what: "traffic served by backend-api-3",
            timeoutMs: 15_000,
            intervalMs: 100,
        });
        const added = await traffic.stop();
        const addedKa = await trafficKa.stop();
        expectNoFailures("membership change, add", added, addedKa);
        expect(added.requests).toBeGreaterThanOrEqual(500);
    }, 300_000);

    // Runs on the lab the test above left: backend-api-3 in the pool (lab2).
    test("removing a server runs only the config step: a hitless reload, zero failed requests, and the removed server takes no more traffic", async () => {
        lab3 = await buildSteps(LB, labArgs(["backend-api-1", "backend-api-2"]));
        expect(lab3.container.inputs).toEqual(lab2.container.inputs);
        expect(lab3.config.stdin).toBe(lab1.config.stdin);
        const { fresh: traffic, keepAlive: trafficKa } = await startTrafficPair(url, 500);
        const before = await showProc(LB);
        const reload = await runStepOk(lab3.config, "update");
        const after = await showProc(LB);
        note("reload time, remove (config step start -> new worker)", `${reload.ms} ms (${reload.stderr.trim()})`);
        expect(after.master).toBe(before.master);
        expect(after.worker).not.toBe(before.worker);
        const stats = await serverStats(LB);
        expect(stats.has("api_pool/backend-api-3")).toBe(false);
        // Once the old worker has finished what it had accepted and exited,
        // requests reach the remaining servers only.
        const drainStart = Date.now();
        await waitFor(async () => (await showProc(LB)).oldWorkers.length === 0, {
            what: "the old worker to exit",
            timeoutMs: 30_000,
            intervalMs: 100,
        });
        note("old worker exit after the remove reload (client loops running)", `${Date.now() - drainStart} ms`);
        traffic.resetSeen();
        const mark = traffic.requests;
        await waitFor(async () => traffic.requests > mark + 100 && traffic.hasSeen("backend-api-1") && traffic.hasSeen("backend-api-2"), {
            what: "100 requests after the removal, on both remaining servers",
            timeoutMs: 30_000,
            intervalMs: 100,
        });
        const removedSeen3 = traffic.hasSeen("backend-api-3");
        const removed = await traffic.stop();
        const removedKa = await trafficKa.stop();
        expectNoFailures("membership change, remove", removed, removedKa);
        expect(removed.requests).toBeGreaterThanOrEqual(500);
        expect(removedSeen3).toBe(false);
    }, 240_000);

    test("the documented emergency rollback on the box puts back the config from before the last apply without a failed request, and the next config step run applies the stack's again", async () => {
        // The command exactly as docs/operations.md's "Rollback" section gives it.
        const operations = readFileSync(path.join(REPO_ROOT, "docs", "operations.md"), "utf8");
        const line = /^incus exec haproxy -- sh -c '(.+)'$/m.exec(operations);
        expect(line).not.toBeNull();
        const { fresh: traffic, keepAlive: trafficKa } = await startTrafficPair(url, 300);
        const rollback = await execIn(LB, ["sh", "-c", (line as RegExpExecArray)[1]]);
        note("emergency rollback on the box", `exit ${rollback.code} ${rollback.stderr.trim()}`);
        expect(rollback.code).toBe(0);
        // The previous apply's config (backend-api-3 still in api_pool) is live again.
        expect(await configSha(LB)).toBe(lab2.config.header.config_sha256);
        await waitStatus(["api_pool/backend-api-3"], "UP");
        const again = await runStepOk(lab3.config, "update");
        expect(again.stderr).toContain("reloaded: worker");
        expect(await configSha(LB)).toBe(lab3.config.header.config_sha256);
        // The rollback is drift: the re-apply says so and keeps the rolled-back file.
        expect(again.stderr).toContain(
            "warning: /etc/haproxy/haproxy.cfg was changed on the box since the last apply; this apply replaces it",
        );
        expect((await execInOk(LB, ["sha256sum", "/etc/haproxy/haproxy.cfg.veza-local-edit"])).split(" ")[0]).toBe(
            lab2.config.header.config_sha256,
        );
        expectNoFailures("emergency rollback and re-apply", await traffic.stop(), await trafficKa.stop());
    }, 120_000);

    test("a config that haproxy -c rejects, or that arrived damaged, fails the step; the running config and process are untouched", async () => {
        const good = lab3.config;
        const shaBefore = await configSha(LB);
        expect(shaBefore).toBe(good.header.config_sha256);
        const procBefore = await showProc(LB);
        const traffic = new TrafficLoop(url, 200);

        // A config that arrives intact (its sha matches) but that HAProxy rejects.
        const broken = `${good.payload}\nbackend veza_e2e_broken\n    balance no-such-algorithm\n`;
        const rejected = await runStep(good, "update", {
            payload: broken,
            header: { config_sha256: sha256Hex(broken), config_bytes: String(Buffer.byteLength(broken)) },
        });
        expect(rejected.code).not.toBe(0);
        expect(rejected.stderr).toMatch(/\[ALERT\].*haproxy\.cfg\.veza-new:\d+\] : balance only supports/);
        expect(rejected.stderr).toContain("haproxy -c rejected the new config; running config and process untouched");

        // A config damaged in transit (sha mismatch) is refused before haproxy -c.
        const damaged = await runStep(good, "update", { payload: good.payload.slice(0, good.payload.length / 2) });
        expect(damaged.code).not.toBe(0);
        expect(damaged.stderr).toContain("config arrived damaged");

        expect(await configSha(LB)).toBe(shaBefore);
        const procAfter = await showProc(LB);
        const pick = (p: typeof procBefore) => ({ master: p.master, masterReloads: p.masterReloads, worker: p.worker });
        expect(pick(procAfter)).toEqual(pick(procBefore));
        const leftovers = await execIn(LB, ["sh", "-c", 'ls "$1".veza-new 2>/dev/null', "sh", "/etc/haproxy/haproxy.cfg"]);
        expect(leftovers.stdout).toBe("");
        const result = await traffic.stop();
        note("validation gate: requests / failures during rejected pushes", `${result.requests} / ${result.failures}`);
        expect(result.errors).toEqual([]);
        expect(result.failures).toBe(0);
        expect((await get(url, "/api/v1/items")).status).toBe(200);
    }, 120_000);

    test("re-running the create scripts changes nothing, and a server drained before a container restart is still drained after it", async () => {
        const steps = lab3;
        const identity = await instanceIdentity(LB);
        const sha = await configSha(LB);
        const proc = await showProc(LB);

        const container = await runStepOk(steps.container, "create");
        note("container create re-run on the existing lab", `${container.ms} ms`);
        expect(container.stdout).toBe(`${address}\n`);
        expect(container.stderr).not.toContain("launching");
        const config = await runStepOk(steps.config, "create");
        expect(config.stderr).toContain("nothing to do");
        expect(await instanceIdentity(LB)).toEqual(identity);
        expect(await configSha(LB)).toBe(sha);
        const procNow = await showProc(LB);
        const pick = (p: typeof proc) => ({ master: p.master, masterReloads: p.masterReloads, worker: p.worker });
        expect(pick(procNow)).toEqual(pick(proc));

        // Drain a server, then restart the whole container.
        expect((await admin(LB, "set server api_pool/backend-api-2 state drain")).trim()).toBe("");
        await waitStatus(["api_pool/backend-api-2"], "DRAIN", 5_000);
        // The state file is read by the master before it chroots: check the chroot is really on.
        expect(await execInOk(LB, ["grep", "-E", "^\\s*chroot /var/lib/haproxy$", "/etc/haproxy/haproxy.cfg"])).not.toBe("");

        const t0 = Date.now();
        await incusOk(["restart", LB], { timeoutMs: 120_000 });
        const restartCmdMs = Date.now() - t0;
        await waitFor(async () => (await get(url, "/api/v1/items", undefined, { timeoutMs: 1_000 })).status === 200, {
            what: "the LB serving again after incus restart",
            timeoutMs: 60_000,
            intervalMs: 100,
        });
        note(
            "restart recovery (incus restart -> first 200 through :80)",
            `${Date.now() - t0} ms (incus restart returned after ${restartCmdMs} ms)`,
        );

        expect(await configSha(LB)).toBe(sha);
        const procAfter = await showProc(LB);
        // A new boot, not a reload: a fresh master (PIDs may repeat in a fresh container).
        expect(proc.masterReloads).toBeGreaterThan(0);
        expect(procAfter.masterReloads).toBe(0);
        const state = await serversState(LB);
        expect(state.get("api_pool/backend-api-2")!.adminState & ADMIN_FORCED_DRAIN).toBe(ADMIN_FORCED_DRAIN);
        expect(state.get("api_pool/backend-api-1")!.adminState & ADMIN_FORCED_DRAIN).toBe(0);
        await waitStatus(["api_pool/backend-api-2"], "DRAIN", 10_000);
        await waitStatus(["api_pool/backend-api-1", "stream_pool/stream-srv-1", "stream_pool/stream-srv-2"], "UP", 30_000);
        // A fresh boot can only have the drain from the server-state file (HAProxy
        // 2.6 also logs "remains in forced drain mode"; 3.0 does not: the state is the proof).
        // The drained server takes no new requests.
        for (let i = 0; i < 10; i++) {
            const r = await get(url, `/api/v1/items?after-restart=${i}`);
            expect(r.status).toBe(200);
            expect(r.headers["x-backend"]).toBe("backend-api-1");
        }
    }, 240_000);

    test("the registered delete script removes haproxy (twice is fine) and nothing of the lab is left", async () => {
        const del = await runStepOk(lab3.container, "delete");
        note("container delete", `${del.ms} ms`);
        expect(del.stderr).toContain(`deleting ${LB}`);
        expect((await incus(["info", LB])).code).not.toBe(0);
        // Deleting again is fine (absent is not an error).
        const again = await runStepOk(lab3.container, "delete");
        expect(again.stderr).toContain("already gone");

        await deleteContainers(LAB_CONTAINERS.filter((n) => n !== LB));
        const left = (await listContainers()).filter((n) => (LAB_CONTAINERS as readonly string[]).includes(n));
        expect(left).toEqual([]);
    }, 120_000);
});
