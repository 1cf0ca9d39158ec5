/**
 * The load balancer pair on real Incus and a real keepalived, built by the
 * component itself (`pair: { vip }`): its container, keepalived and config
 * steps, run in the engine's order (product.ts upPair). Proven here:
 *   - the first election puts the VIP on node a (higher priority), only there;
 *   - a membership change under a client loop through the VIP: 0 failed
 *     requests, the node without the VIP reloads first, then the holder;
 *   - the first node failing leaves the holder untouched (both serve the
 *     previous config), and the next run of the same step applies to both;
 *   - a node that is down: nothing is applied to either; it comes back as
 *     BACKUP without taking the VIP, and the next run gives it the current
 *     config (no drift between the nodes);
 *   - a node whose container dies loses the VIP to the other (5 kills);
 *   - a node whose haproxy stops (container alive) loses it too (track
 *     script; 5 kills);
 *   - every transition is in the journal (notify hook);
 *   - a sticky cookie issued by one node pins the same backend on the other
 *     (both render the same cookie key).
 * Move times and failed requests under kills are reported, not asserted
 * (timings never fail a test); a move that does not happen within 20 s does.
 *
 * Traffic goes only to the VIP and the nodes on the lab bridge.
 */
import type { BackendServer, HaproxyLoadBalancerArgs } from "../../components";
import { PEERS_PORT } from "../../components/pair";
import { readFileSync, rmSync, writeFileSync } from "fs";
import * as net from "net";
import * as tls from "tls";
import * as path from "path";
import {
    assertTestNetwork,
    get,
    makeTempDir,
    makeTestCert,
    onCleanup,
    PebbleCa,
    requireBinary,
    servedCertificate,
    sleep,
    startPebble,
    waitFor,
} from "../support";
import {
    admin,
    buildSteps,
    CONFIG_PATH,
    configSha,
    containerIPv4,
    execIn,
    execInOk,
    incusOk,
    installProductMocks,
    KILL_KINDS,
    KillKind,
    LAB_IMAGE,
    launchBackend,
    MOVE_LIMIT_MS,
    NO_TAKE_BACK_WAIT_MS,
    PairWatch,
    requireIncusLab,
    runRepoScript,
    runStep,
    runStepOk,
    scrapeNodeMetrics,
    showProc,
    spread,
    startContainer,
    startTrafficPair,
    trafficSummary,
    upPair,
    VipClient,
} from "../support/lab";
import { cleanUpAfterSuite, noteBook } from "./suite";

installProductMocks();

// Its HTTPS comes from Pebble, run on the Incus host.
const tools = requireBinary("pebble", "pebble-challtestsrv", "openssl");
const describeLab = tools === describe ? requireIncusLab() : tools;
/** The component's name, and its container: node a. Node b is <name>-b. */
const PAIR = "veza-pair";
const NODE_A = PAIR;
const NODE_B = `${PAIR}-b`;
const BACKEND = "veza-pair-backend";
const BACKEND_2 = "veza-pair-backend-2";
/** In the lab bridge's range kept free of DHCP leases (setup-incus.sh: ipv4.dhcp.ranges). */
const VIP = "198.18.0.250";
const VIP_CIDR = `${VIP}/24`;
/** Kills per kind: at least 5, so one lucky run proves nothing. */
const KILLS = 5;

const API_1: BackendServer = { name: "api-1", address: `${BACKEND}.lxd` };
const API_2: BackendServer = { name: "api-2", address: `${BACKEND_2}.lxd` };

/** The pair's args; `apiServers` is what the membership tests change. */
function pairArgs(apiServers: BackendServer[]): HaproxyLoadBalancerArgs {
    return {
        containerName: PAIR,
        image: LAB_IMAGE,
        apiServers,
        cookieSecret: "veza-pair-e2e-shared-cookie-key",
        statsPassword: "veza-pair-e2e-stats",
        streamServers: [{ name: "stream-1", address: `${BACKEND}.lxd`, port: 8080 }],
        healthCheckIntervalMs: 1000,
        pair: { vip: VIP_CIDR },
        // Far above what the failover clients send from the host's one address: counted, never refused.
        rateLimit: { requests: 1000000, periodSeconds: 60 },
        // HTTPS from Pebble (started in beforeAll); plain HTTP keeps serving for the failover clients.
        tls: {
            acme: { domains: [PAIR_DOMAIN], email: "ops@example.com", directoryUrl: ca.directory, caBundlePem: ca.apiCert.cert.toString() },
        },
        httpsRedirect: false,
    };
}

/** tls.acme on the pair: Pebble on the Incus host at the lab bridge's address, every name resolving to the VIP. */
const PAIR_DOMAIN = "veza-pair.acme.test";
let ca: PebbleCa;
let caRoot = "";

/** keepalived's track script in each node (the keepalived step installs it). */
const ALIVE_CHECK = "/usr/local/sbin/veza-haproxy-alive";
/** The pair's peers certificate and key in each node (the component's default peersCertPath). */
const PEERS_CERT_PATH = "/etc/haproxy/certs/veza-peers.pem";

/**
 * What a node's peers port answers a peer hello with, in 3 s: "" when
 * nothing came back, "closed: <reason>" when the connection failed. `tls`:
 * speak TLS, with that client certificate (none when empty).
 */
function peersAnswer(address: string, hello: string, tlsOptions?: { cert?: Buffer | string; key?: Buffer | string }): Promise<string> {
    assertTestNetwork(address);
    return new Promise((resolve) => {
        let answer = "";
        const socket: net.Socket = tlsOptions
            ? tls.connect({ host: address, port: PEERS_PORT, rejectUnauthorized: false, ...tlsOptions }, () => socket.write(hello))
            : net.connect({ host: address, port: PEERS_PORT }, () => socket.write(hello));
        const done = (extra = "") => {
            clearTimeout(timer);
            socket.destroy();
            resolve(answer + extra);
        };
        const timer = setTimeout(() => done(), 3_000);
        socket.on("data", (d: Buffer) => (answer += d.toString("latin1")));
        socket.on("error", (e) => done(answer ? "" : `closed: ${e.message}`));
        socket.on("close", () => done());
    });
}

const notes = noteBook("pair");
const note = notes.note;
const watch = new PairWatch(VIP, [NODE_A, NODE_B]);
const vipHolders = () => watch.vipHolders();
const holder = () => watch.holder();
const timeMove = (kill: () => Promise<unknown>, to: string) => watch.timeMove(kill, to);

describeLab("a load balancer pair built by the component (pair: { vip }) on real Incus and keepalived", () => {
    cleanUpAfterSuite([NODE_A, NODE_B, BACKEND, BACKEND_2], notes);
    /** The config the pair serves now: what every node must have after a successful apply. */
    let current = { sha: "", apiServers: [API_1, API_2] };

    beforeAll(async () => {
        await Promise.all([launchBackend(BACKEND, 8080), launchBackend(BACKEND_2, 8080)]);
        const dir = makeTempDir("veza-pair-acme-");
        onCleanup(() => rmSync(dir, { recursive: true, force: true }), "the pair's Pebble files");
        ca = await startPebble({ dir, host: "198.18.0.1", httpPort: 80, resolveTo: VIP });
        caRoot = path.join(dir, "pebble-root.pem");
        writeFileSync(caRoot, await ca.rootPem());
        const t0 = Date.now();
        const up = await upPair(PAIR, pairArgs(current.apiServers));
        current.sha = up.steps.config.header.config_sha256;
        note(
            "pair up from nothing (two containers, keepalived on each, the config node by node)",
            `${Date.now() - t0} ms; ${up.nodes.map((n) => `${n.name} ${n.address}`).join(", ")}, VIP ${VIP_CIDR}; config step said ${up.configStdout.trim() || "(nothing)"}`,
        );
        expect(up.nodes.map((n) => n.name)).toEqual([NODE_A, NODE_B]);
    }, 400_000);

    test("the first election puts the VIP on node a only, it serves, and the notify hook logged the transition", async () => {
        const t0 = Date.now();
        await waitFor(async () => (await vipHolders()).join(",") === NODE_A, {
            what: `the VIP on ${NODE_A} only`,
            timeoutMs: MOVE_LIMIT_MS,
            intervalMs: 100,
        });
        note("first election", `${Date.now() - t0} ms after keepalived started on both`);
        await waitFor(async () => (await get(`http://${VIP}`, "/api/v1/health", undefined, { timeoutMs: 1_000 })).status === 200, {
            what: "200 through the VIP",
            timeoutMs: 30_000,
            intervalMs: 200,
        });
        const journal = await execInOk(NODE_A, ["journalctl", "-t", "veza-vrrp", "--no-pager", "-o", "cat"]);
        expect(journal).toMatch(/veza_vip: \S+ -> MASTER \(priority 150\)/);
        for (const node of [NODE_A, NODE_B]) expect(await configSha(node)).toBe(current.sha);
    }, 60_000);

    /**
     * The config step's stderr lines that tell the order: "<time> applying to
     * X first", "<time> X serves ...; applying to Y", "<time> Y serves ...;
     * both nodes done".
     */
    function rollingOrder(stderr: string): { first: string; second: string; times: string[] } {
        const first = /(\d\d:\d\d:\d\d\.\d{3}) applying to (\S+) first/.exec(stderr);
        const between = /(\d\d:\d\d:\d\d\.\d{3}) (\S+) serves the new config; applying to (\S+)/.exec(stderr);
        const done = /(\d\d:\d\d:\d\d\.\d{3}) (\S+) serves the new config; both nodes done/.exec(stderr);
        if (!first || !between || !done) throw new Error(`the config step did not log a complete rolling apply:\n${stderr}`);
        expect(between[2]).toBe(first[2]);
        expect(done[2]).toBe(between[3]);
        return { first: first[2], second: between[3], times: [first[1], between[1], done[1]] };
    }

    test("a membership change under a client loop through the VIP: 0 failed requests, the node without the VIP reloads first, then the holder, never both at once", async () => {
        const [master, backup] = await holder();
        const before = { [master]: await showProc(master), [backup]: await showProc(backup) };
        const client = new VipClient(VIP);
        await sleep(500);
        const apiServers = [API_1];
        const steps = await buildSteps(PAIR, pairArgs(apiServers));
        const run = await runStepOk(steps.config, "create");
        await sleep(500);
        const traffic = await client.stop();
        const order = rollingOrder(run.stderr);
        expect([order.first, order.second]).toEqual([backup, master]);
        // Each node's own proven reload ("reloaded: worker A -> B") comes before the next node starts.
        const reloaded = [...run.stderr.matchAll(/reloaded: worker \d+ -> \d+/g)].map((m) => m.index as number);
        expect(reloaded).toHaveLength(2);
        expect(reloaded[0]).toBeLessThan(run.stderr.indexOf(`serves the new config; applying to ${master}`));
        for (const node of [master, backup]) {
            expect((await showProc(node)).masterReloads).toBe(before[node].masterReloads + 1);
            expect(await configSha(node)).toBe(steps.config.header.config_sha256);
        }
        expect(run.stdout).toBe(`vip_node=${master}\n`);
        note(
            "membership change on the pair under load (api-2 removed)",
            `${traffic.attempts} requests through the VIP, ${traffic.plainFailures} failed; ${order.first} at ${order.times[0]}, ` +
                `${order.second} from ${order.times[1]} (after ${order.first} served the new config), both done ${order.times[2]}; step ${run.ms} ms`,
        );
        expect(traffic.plainFailures).toBe(0);
        current = { sha: steps.config.header.config_sha256, apiServers };
    }, 120_000);

    test("tls.acme on the pair: each node orders its own certificate through the VIP holder, and both serve it (verified against Pebble's root), so HTTPS survives a failover", async () => {
        const certs = [NODE_A, NODE_B].map(async (node) => {
            const address = (await containerIPv4(node)) as string;
            return { node, served: servedCertificate(address, 443, PAIR_DOMAIN, caRoot) };
        });
        const both = await Promise.all(certs);
        for (const { served } of both) {
            expect(served.verify).toBe("Verify return code: 0 (ok)");
            expect(served.issuer).toMatch(/Pebble Intermediate CA/);
        }
        // Two orders, two certificates: no key ever crossed between the nodes.
        expect(both[0].served.serial).not.toBe(both[1].served.serial);
        // Each node's responder binds its own bridge address, where the orders above were fetched, never the VIP.
        for (const node of [NODE_A, NODE_B]) {
            const env = await execInOk(node, ["cat", "/etc/veza-haproxy/acme.env"]);
            expect(env.split("\n").filter((line) => line.startsWith("ACME_CHALLENGE_ADDRESS="))).toEqual([
                `ACME_CHALLENGE_ADDRESS=${await containerIPv4(node)}:8402`,
            ]);
        }
        expect(servedCertificate(VIP, 443, PAIR_DOMAIN, caRoot).verify).toBe("Verify return code: 0 (ok)");
        note("acme on the pair", both.map(({ node, served }) => `${node} serves serial ${served.serial} (${served.issuer})`).join("; "));
    }, 60_000);

    test("the nodes share stick tables through the peers section: an entry set on one node appears on the other", async () => {
        const key = `probe-${Date.now()}`;
        await admin(NODE_A, `set table veza_peers/veza_pair_sync key ${key}`);
        const t0 = Date.now();
        const seen = await waitFor(
            async () => {
                const table = await admin(NODE_B, "show table veza_peers/veza_pair_sync");
                return table.includes(`key=${key}`) ? table : undefined;
            },
            { what: `${key} in ${NODE_B}'s copy of the table`, timeoutMs: 10_000, intervalMs: 50 },
        );
        expect(seen).toContain(`key=${key}`);
        note("peers", `an entry set on ${NODE_A} was in ${NODE_B}'s table after ${Date.now() - t0} ms`);
    }, 30_000);

    test("the peers port speaks only to the pair (mutual TLS): from the bridge, a plaintext peer hello and TLS without the pair's certificate get no answer, another certificate is refused, the pair's own reaches the protocol", async () => {
        const addressA = await containerIPv4(NODE_A);
        if (!addressA) throw new Error(`${NODE_A} has no address`);
        // What node b says when it connects: the remote peer's name, then its own.
        const hello = `HAProxyS 2.1\n${NODE_A}\n${NODE_B} 1 1\n`;
        const plaintext = await peersAnswer(addressA, hello);
        const noCertificate = await peersAnswer(addressA, hello, {});
        const dir = makeTempDir("veza-pair-peers-");
        onCleanup(() => rmSync(dir, { recursive: true, force: true }), "the stranger's certificate");
        const stranger = makeTestCert(dir);
        const otherCertificate = await peersAnswer(addressA, hello, {
            cert: readFileSync(stranger.certPath),
            key: readFileSync(stranger.keyPath),
        });
        // The pair's own bundle, read from the node (a test may; no step prints it): the handshake passes and the
        // peers protocol answers, with an error code for a hello naming no peer of this node.
        const bundle = await execInOk(NODE_A, ["cat", PEERS_CERT_PATH]);
        const own = await peersAnswer(addressA, "HAProxyS 2.1\nnobody\nnobody 1 1\n", { cert: bundle, key: bundle });
        note("peers port from the bridge", JSON.stringify({ plaintext, noCertificate, otherCertificate, own }));
        for (const answer of [plaintext, noCertificate, otherCertificate]) expect(answer).not.toMatch(/^\d{3}\n/);
        expect(own).toMatch(/^5\d\d\n/);
    }, 60_000);

    test("a client's request rate counted on the VIP holder is in the other node's table too (rateLimit's counters go through peers), so moving the VIP keeps its budget", async () => {
        const [master, backup] = await holder();
        for (let i = 0; i < 20; i++) expect((await get(`http://${VIP}`, "/api/v1/me", undefined, { timeoutMs: 2_000 })).status).toBe(200);
        // The host's address on the lab bridge, as the table keys it (IPv4 in an ipv6 table).
        const rateOf = async (node: string) => {
            const entry = (await admin(node, "show table veza_rate_limit"))
                .split("\n")
                .find((line) => line.includes("key=::ffff:198.18.0.1 "));
            return Number(/http_req_rate\(60000\)=(\d+)/.exec(entry ?? "")?.[1] ?? 0);
        };
        const onHolder = await rateOf(master);
        const t0 = Date.now();
        const onOther = await waitFor(
            async () => {
                const rate = await rateOf(backup);
                return rate >= 20 ? rate : undefined;
            },
            {
                what: `198.18.0.1's request rate in ${backup}'s table`,
                timeoutMs: 10_000,
                intervalMs: 100,
            },
        );
        note(
            "rate-limit counters through peers",
            `${master} counted ${onHolder} requests in 60 s for the host; ${backup} had ${onOther} after ${Date.now() - t0} ms`,
        );
        expect(onHolder).toBeGreaterThanOrEqual(20);
    }, 30_000);

    test("the first node failing (its apply lock held) leaves the VIP holder untouched: both serve the previous config; the next run applies to both", async () => {
        const [master, backup] = await holder();
        const holderBefore = await showProc(master);
        await execInOk(backup, ["systemd-run", "--unit=veza-test-lock", "flock", `${CONFIG_PATH}.veza-lock`, "sleep", "120"]);
        try {
            await waitFor(async () => (await execIn(backup, ["systemctl", "is-active", "veza-test-lock"])).stdout.trim() === "active", {
                what: "the lock holder running",
                timeoutMs: 10_000,
                intervalMs: 100,
            });
            const apiServers = [API_1, API_2];
            const steps = await buildSteps(PAIR, pairArgs(apiServers));
            const failed = await runStep(steps.config, "create", { header: { reload_wait_seconds: "2" } });
            expect({ code: failed.code, said: failed.stderr }).toEqual({
                code: 5,
                said: expect.stringContaining(`${backup} failed (exit 5): ${master} untouched; both nodes serve the previous config`),
            });
            expect(failed.stderr).not.toContain(`; applying to ${master}`);
            for (const node of [master, backup]) expect(await configSha(node)).toBe(current.sha);
            expect((await showProc(master)).masterReloads).toBe(holderBefore.masterReloads);
            await execInOk(backup, ["systemctl", "stop", "veza-test-lock"]);
            // The engine keeps a failed step's old inputs, so the next `pulumi up` runs the same step again (see pair-config-create.sh.mustache).
            const again = await runStepOk(steps.config, "create");
            expect(rollingOrder(again.stderr).first).toBe(backup);
            for (const node of [master, backup]) expect(await configSha(node)).toBe(steps.config.header.config_sha256);
            current = { sha: steps.config.header.config_sha256, apiServers };
        } finally {
            await execIn(backup, ["systemctl", "stop", "veza-test-lock"]);
        }
    }, 120_000);

    test("a node that is down: nothing is applied to either; it comes back as BACKUP without the VIP, and the next run gives both the current config", async () => {
        const [master, backup] = await holder();
        await timeMove(() => incusOk(["stop", "--force", master]), backup);
        const apiServers = [API_2];
        const steps = await buildSteps(PAIR, pairArgs(apiServers));
        const refused = await runStep(steps.config, "create");
        expect({ code: refused.code, said: refused.stderr }).toEqual({
            code: 10,
            said: expect.stringContaining(`node ${master} does not exist or is not running: nothing applied to either node`),
        });
        expect(await configSha(backup)).toBe(current.sha);
        await startContainer(master);
        await sleep(NO_TAKE_BACK_WAIT_MS);
        expect(await vipHolders()).toEqual([backup]);
        const again = await runStepOk(steps.config, "create");
        expect(rollingOrder(again.stderr)).toMatchObject({ first: master, second: backup });
        expect(await configSha(master)).toBe(await configSha(backup));
        expect(await configSha(master)).toBe(steps.config.header.config_sha256);
        current = { sha: steps.config.header.config_sha256, apiServers };
        note(
            "a dead node returning",
            `${master} came back as BACKUP (VIP stayed on ${backup}); the re-run applied to ${master} first, then ${backup}`,
        );
    }, 180_000);

    test("a sticky cookie issued by the master still pins the same backend through the other node after the master dies", async () => {
        const [master, backup] = await holder();
        // Two api servers, so that a pin means something.
        const steps = await buildSteps(PAIR, pairArgs([API_1, API_2]));
        await runStepOk(steps.config, "create");
        const first = await get(`http://${VIP}`, "/api/v1/items?sticky=0");
        expect(first.status).toBe(200);
        const cookie = String(first.headers["set-cookie"]?.[0] ?? "").split(";")[0];
        expect(cookie).toMatch(/^VEZA_SERVERID=/);
        const pinned = String(first.headers["x-backend"]);
        for (let i = 1; i <= 5; i++)
            expect((await get(`http://${VIP}`, `/api/v1/items?sticky=${i}`, { cookie })).headers["x-backend"]).toBe(pinned);
        await timeMove(() => incusOk(["stop", "--force", master]), backup);
        const after: string[] = [];
        for (let i = 0; i < 10; i++) {
            const r = await waitFor(
                async () => {
                    const res = await get(`http://${VIP}`, `/api/v1/items?after=${i}`, { cookie }, { timeoutMs: 1_000 });
                    return res.status === 200 ? res : undefined;
                },
                { what: `200 through the VIP on ${backup}`, timeoutMs: 20_000, intervalMs: 100 },
            );
            after.push(String(r.headers["x-backend"]));
        }
        note(
            "sticky cookie across the failover",
            `${cookie} pinned ${pinned} on ${master}; on ${backup}: ${[...new Set(after)].join(", ")}`,
        );
        expect(after).toEqual(new Array(10).fill(pinned));
        await startContainer(master);
    }, 180_000);

    test("failover-drill.sh --lb kills the node holding the VIP, reports the move and the failed requests, and sees it come back as BACKUP", async () => {
        const [master, backup] = await holder();
        const drill = await runRepoScript("scripts/failover-drill.sh", ["--lb"], {
            VEZA_NODES: `${NODE_A} ${NODE_B}`,
            VEZA_VIP: VIP,
            VEZA_TIMEOUT: "60",
        });
        const output = `${drill.stdout}${drill.stderr}`;
        expect({ code: drill.code, output }).toEqual({ code: 0, output: expect.stringContaining("vip-failover-drill: PASSED") });
        expect(drill.stdout).toContain(`${VIP} is on ${master}; ${backup} is the backup`);
        const passed = /PASSED vip_move_s=([\d.]+) requests=(\d+) failed=(\d+)/.exec(drill.stdout);
        expect(passed).not.toBeNull();
        note(
            "failover-drill.sh --lb",
            `VIP moved after ${passed![1]} s; ${passed![2]} requests, ${passed![3]} failed; drill ${drill.ms} ms`,
        );
        expect(await vipHolders()).toEqual([backup]);
        // Each node's metrics say the same as its addresses: the backup holds the VIP now, the old master not.
        for (const [node, holds] of [
            [backup, 1],
            [master, 0],
        ] as const) {
            expect(await scrapeNodeMetrics(node)).toContain(`veza_haproxy_vrrp_holds_vip{node="${node}",vip="${VIP}"} ${holds}\n`);
        }
    }, 180_000);

    /** KILLS rounds of `kill` and `revive` under a client loop; the node that comes back never takes the VIP back. */
    async function killRounds({ label, kill, revive }: KillKind, kills = KILLS): Promise<void> {
        const r = await watch.killRounds(kills, kill, revive);
        const { min, median, max } = spread(r.moves_ms);
        note(
            label,
            `${kills} kills, VIP move min ${min} / median ${median} / max ${max} ms (goal <= 3000); ${r.requests} requests, ` +
                `plain client failed ${r.failed_plain}, retry-once client failed ${r.failed_retry_once}; ` +
                `a 3 s-timeout client alongside failed ${r.failed_patient} of ${r.patient_requests}`,
        );
        expect(r.taken_back).toBe(0);
    }

    test(`a dead master container (${KILLS} times): the VIP moves to the other node, and the dead one comes back as BACKUP without taking it back`, async () => {
        await killRounds(KILL_KINDS.containerKilled);
    }, 400_000);

    test(`a hung haproxy in a living master (${KILLS} times): the track script moves the VIP, and the node does not take it back once haproxy runs again`, async () => {
        await killRounds(KILL_KINDS.haproxyHung);
        const journal =
            (await execInOk(NODE_A, ["journalctl", "-t", "veza-vrrp", "--no-pager", "-o", "cat"])) +
            (await execInOk(NODE_B, ["journalctl", "-t", "veza-vrrp", "--no-pager", "-o", "cat"]));
        expect(journal).toMatch(/veza_vip: MASTER -> FAULT/);
    }, 400_000);

    test(`a planned haproxy stop in the master (3 times): the stop hook moves the VIP first, and the node does not take it back once haproxy runs again`, async () => {
        // The stop returns only once the VIP has left: without the hook it would still be on the stopping node for the track script's ~2 s.
        const [master, backup] = await holder();
        await execInOk(master, ["systemctl", "stop", "haproxy"]);
        expect(await vipHolders()).toEqual([backup]);
        await execInOk(master, ["systemctl", "start", "haproxy"]);
        // Not one of the issue's two kinds: 3 rounds here, 5 in the bench.
        await killRounds(KILL_KINDS.haproxyStopped, 3);
    }, 400_000);

    test("a node whose haproxy runs a config the config step did not apply (a rebuilt node before its config step) never takes the VIP, even with the master gone; once it has one, it does", async () => {
        const [master, backup] = await holder();
        const stamp = `${CONFIG_PATH}.veza-stamp`;
        await execInOk(backup, ["mv", stamp, `${stamp}.away`]);
        try {
            // Its haproxy answers the admin socket (what the alive check used to ask), but with no config of ours.
            expect(
                (await execIn(backup, ["sh", "-c", "echo 'show info' | socat stdio UNIX-CONNECT:/run/haproxy/admin.sock"])).stdout,
            ).toMatch(/^Pid: /m);
            expect((await execIn(backup, [ALIVE_CHECK])).code).not.toBe(0);
            await execInOk(master, ["systemctl", "stop", "keepalived"]);
            // A stopping keepalived says priority 0: a live backup takes over within a second.
            await sleep(NO_TAKE_BACK_WAIT_MS);
            expect(await vipHolders()).toEqual([]);
        } finally {
            await execInOk(backup, ["mv", `${stamp}.away`, stamp]);
        }
        const moved = Date.now();
        await waitFor(() => watch.holdsVip(backup), { what: `the VIP on ${backup}`, timeoutMs: MOVE_LIMIT_MS, intervalMs: 50 });
        note(
            "a node without our config",
            `no VIP anywhere for ${NO_TAKE_BACK_WAIT_MS} ms; on ${backup} ${Date.now() - moved} ms after its stamp came back`,
        );
        await execInOk(master, ["systemctl", "start", "keepalived"]);
        await sleep(NO_TAKE_BACK_WAIT_MS);
        expect(await vipHolders()).toEqual([backup]);
        await watch.waitServing("200 through the VIP");
    }, 120_000);

    test("removing pair, in the engine's order: node a keeps serving at its own address with no failed request, keepalived stops there, node b is deleted", async () => {
        // The last pair program's steps: the engine deletes the ones the new program no longer registers, with their old inputs.
        const pairSteps = await buildSteps(PAIR, pairArgs([API_1, API_2]));
        await runStepOk(pairSteps.config, "create");
        const { nodeB, keepalived } = pairSteps;
        if (!nodeB || !keepalived) throw new Error("the pair program did not register node b and keepalived");
        const addressA = (await execInOk(NODE_A, ["ip", "-4", "-o", "addr", "show", "dev", "eth0", "scope", "global", "dynamic"]))
            .trim()
            .split(/\s+/)[3]
            .split("/")[0];
        const single = await buildSteps(PAIR, { ...pairArgs([API_1, API_2]), pair: undefined });
        // Node a's container step is the same in both programs: the engine leaves it alone.
        expect(single.container.inputs).toEqual(pairSteps.container.inputs);
        const loops = await startTrafficPair(`http://${addressA}`, 200);
        try {
            // The config step's triggers changed (one container id instead of two): a replace, create first (it has no
            // delete: nothing runs for the old one). Then the deletes of what is gone, dependents first; deletes run
            // after every create and update (pulumi/pulumi pkg/resource/deploy/deployment_executor.go, performPostSteps).
            const applied = await runStepOk(single.config, "create");
            expect(applied.stderr).toContain("reloaded: worker");
            for (const step of [...keepalived, pairSteps.peersTls, nodeB.peersTls]) if (step) await runStepOk(step, "delete");
            await runStepOk(nodeB.container, "delete");
        } finally {
            const fresh = await loops.fresh.stop();
            const keepAlive = await loops.keepAlive.stop();
            note(
                "removing pair",
                `through node a's own address: new connections ${trafficSummary(fresh)}; keep-alive ${trafficSummary(keepAlive)}`,
            );
            expect([fresh.failures, keepAlive.failures]).toEqual([0, 0]);
        }
        expect((await execIn(NODE_B, ["true"])).code).not.toBe(0);
        expect((await execIn(NODE_A, ["systemctl", "is-active", "keepalived"])).stdout.trim()).not.toBe("active");
        expect(await watch.holdsVip(NODE_A)).toBe(false);
        expect(await configSha(NODE_A)).toBe(single.config.header.config_sha256);
        expect(await execInOk(NODE_A, ["cat", CONFIG_PATH])).not.toContain("peers veza_peers");
        expect((await execIn(NODE_A, ["test", "-e", PEERS_CERT_PATH])).code).not.toBe(0);
    }, 180_000);
});
