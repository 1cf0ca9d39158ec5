/**
 * The pair's VRRP on real Incus and a real keepalived (issue 12, its first
 * proof): two load-balancer nodes built by the component's own container and
 * config steps, keepalived.conf as components/pair.ts renders it, the track
 * and notify scripts of templates/_vrrp-*.sh. The component does not build a
 * pair yet; this proves the keepalived setup it will install:
 *   - the first election puts the VIP on node a (higher priority), only there;
 *   - a node whose container dies loses the VIP to the other (5 kills);
 *   - a node whose haproxy stops (container alive) loses it too (track
 *     script; 5 kills);
 *   - a node that comes back does not take the VIP back (nopreempt);
 *   - every transition is in the journal (notify hook);
 *   - a sticky cookie issued by one node pins the same backend on the other
 *     (both render the same cookie key).
 * Move times and failed requests are reported, not asserted (timings never
 * fail a test); a move that does not happen within 20 s does.
 *
 * Traffic goes only to the VIP and the nodes on the lab bridge.
 */
import { renderKeepalivedConfig } from "../../components/pair";
import { loadTemplate } from "../../components/templates";
import { get, sleep, waitFor } from "../support";
import { execIn, execInOk, incusOk, LAB_IMAGE, launchBackend, requireIncusLab, runRepoScript, writeFileIn } from "./lab";
import { buildSteps, installProductMocks, runStepOk } from "./product";
import { cleanUpAfterSuite, noteBook } from "./suite";

installProductMocks();

const describeLab = requireIncusLab();
const NODE_A = "veza-pair-a";
const NODE_B = "veza-pair-b";
const BACKEND = "veza-pair-backend";
const BACKEND_2 = "veza-pair-backend-2";
/** One key for both nodes, as the pair will share it: a cookie from either pins the same backend on both. */
const COOKIE_SECRET = "veza-pair-e2e-shared-cookie-key";
/** In the lab bridge's range kept free of DHCP leases (setup-incus.sh: ipv4.dhcp.ranges). */
const VIP = "198.18.0.250";
const VIP_CIDR = `${VIP}/24`;
const ALIVE = "/usr/local/sbin/veza-haproxy-alive";
const NOTIFY = "/usr/local/sbin/veza-vrrp-notify";
const MOVE_LIMIT_MS = 20_000;
/** Kills per kind, as issue 12 asks (at least 5). */
const KILLS = 5;

const notes = noteBook("pair");
const note = notes.note;

async function holdsVip(node: string): Promise<boolean> {
    const r = await execIn(node, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    return r.code === 0 && r.stdout.includes(` ${VIP}/`);
}

async function vipHolders(): Promise<string[]> {
    const out: string[] = [];
    for (const node of [NODE_A, NODE_B]) if (await holdsVip(node)) out.push(node);
    return out;
}

/**
 * GETs through the VIP, each on a new connection, until stopped. A plain
 * client counts every failed attempt; a retrying client tries once more at
 * once after a connection error and fails only when that fails too.
 */
class VipClient {
    attempts = 0;
    plainFailures = 0;
    retryFailures = 0;
    private running = true;
    private readonly done: Promise<void>;
    constructor() {
        this.done = this.loop();
    }
    private async once(i: number): Promise<boolean> {
        try {
            const r = await get(`http://${VIP}`, `/api/v1/health?i=${i}`, undefined, { timeoutMs: 1_000 });
            return r.status === 200;
        } catch {
            return false;
        }
    }
    private async loop(): Promise<void> {
        for (let i = 0; this.running; i++) {
            this.attempts++;
            if (!(await this.once(i))) {
                this.plainFailures++;
                if (!(await this.once(i))) this.retryFailures++;
            }
            await sleep(20);
        }
    }
    async stop(): Promise<{ attempts: number; plainFailures: number; retryFailures: number }> {
        this.running = false;
        await this.done;
        return { attempts: this.attempts, plainFailures: this.plainFailures, retryFailures: this.retryFailures };
    }
}

/** Starts a stopped node and waits until its keepalived runs again. */
async function startContainer(node: string): Promise<void> {
    await incusOk(["start", node]);
    await waitFor(async () => (await execIn(node, ["systemctl", "is-active", "keepalived"])).stdout.trim() === "active", {
        what: `keepalived running again on ${node}`,
        timeoutMs: 60_000,
        intervalMs: 200,
    });
}

/** Runs `kill`, then waits until `to` holds the VIP; returns the milliseconds it took. */
async function timeMove(kill: () => Promise<unknown>, to: string): Promise<number> {
    const t0 = Date.now();
    await kill();
    await waitFor(() => holdsVip(to), { what: `the VIP on ${to}`, timeoutMs: MOVE_LIMIT_MS, intervalMs: 50 });
    return Date.now() - t0;
}

describeLab("VRRP between two load balancer nodes (keepalived.conf of components/pair.ts)", () => {
    cleanUpAfterSuite([NODE_A, NODE_B, BACKEND, BACKEND_2], notes);
    const address: Record<string, string> = {};

    beforeAll(async () => {
        await launchBackend(BACKEND, 8080);
        await launchBackend(BACKEND_2, 8080);
        for (const node of [NODE_A, NODE_B]) {
            const steps = await buildSteps(node, {
                containerName: node,
                image: LAB_IMAGE,
                apiServers: [
                    { name: "api-1", address: `${BACKEND}.lxd` },
                    { name: "api-2", address: `${BACKEND_2}.lxd` },
                ],
                cookieSecret: COOKIE_SECRET,
                streamServers: [{ name: "stream-1", address: `${BACKEND}.lxd`, port: 8080 }],
                healthCheckIntervalMs: 1000,
            });
            address[node] = (await runStepOk(steps.container, "create")).stdout.trim();
            await runStepOk(steps.config, "create");
        }
        for (const [node, peer] of [
            [NODE_A, NODE_B],
            [NODE_B, NODE_A],
        ]) {
            await writeFileIn(node, ALIVE, loadTemplate("_vrrp-alive.sh"), "0755");
            await writeFileIn(node, NOTIFY, loadTemplate("_vrrp-notify.sh"), "0755");
            const conf = renderKeepalivedConfig({
                node: node === NODE_A ? "a" : "b",
                selfAddress: address[node],
                peerAddress: address[peer],
                vip: VIP_CIDR,
                virtualRouterId: 51,
                interface: "eth0",
                aliveScript: ALIVE,
                notifyScript: NOTIFY,
            });
            await writeFileIn(node, "/etc/keepalived/keepalived.conf", conf, "0644");
            await execInOk(node, ["systemctl", "restart", "keepalived"]);
        }
        note("nodes", `${NODE_A} ${address[NODE_A]}, ${NODE_B} ${address[NODE_B]}, VIP ${VIP_CIDR}`);
    }, 300_000);

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
    }, 60_000);

    test("a sticky cookie issued by the master still pins the same backend through the other node after the master dies", async () => {
        const [master, backup] = await holder();
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
    }, 180_000);

    /** Min / median / max of a list of milliseconds. */
    const spread = (ms: number[]) => {
        const sorted = [...ms].sort((a, b) => a - b);
        return `min ${sorted[0]} / median ${sorted[Math.floor(sorted.length / 2)]} / max ${sorted[sorted.length - 1]} ms`;
    };

    async function holder(): Promise<[string, string]> {
        const holders = await vipHolders();
        expect(holders).toHaveLength(1);
        return holders[0] === NODE_A ? [NODE_A, NODE_B] : [NODE_B, NODE_A];
    }

    /**
     * KILLS times: `kill` the node holding the VIP under a client loop, time
     * the move, `revive` it, and check it came back without taking the VIP.
     */
    async function killRounds(
        label: string,
        kill: (node: string) => Promise<unknown>,
        revive: (node: string) => Promise<unknown>,
    ): Promise<void> {
        const moves: number[] = [];
        let attempts = 0;
        let plain = 0;
        let retried = 0;
        for (let round = 0; round < KILLS; round++) {
            const [master, backup] = await holder();
            const client = new VipClient();
            await sleep(300);
            moves.push(await timeMove(() => kill(master), backup));
            await waitFor(async () => (await get(`http://${VIP}`, "/api/v1/health", undefined, { timeoutMs: 1_000 })).status === 200, {
                what: `200 through the VIP on ${backup}`,
                timeoutMs: 20_000,
                intervalMs: 100,
            });
            await sleep(500);
            const traffic = await client.stop();
            attempts += traffic.attempts;
            plain += traffic.plainFailures;
            retried += traffic.retryFailures;
            await revive(master);
            // Several advert intervals: a preempting node would have taken the VIP back by now.
            await sleep(3_000);
            expect(await vipHolders()).toEqual([backup]);
        }
        note(
            label,
            `${KILLS} kills, VIP move ${spread(moves)} (goal <= 3000); ${attempts} requests, plain client failed ${plain}, retry-once client failed ${retried}`,
        );
    }

    test(`a dead master container (${KILLS} times): the VIP moves to the other node, and the dead one comes back as BACKUP without taking it back`, async () => {
        await killRounds("container killed (incus stop --force)", (node) => incusOk(["stop", "--force", node]), startContainer);
    }, 400_000);

    test(`a dead haproxy in a living master (${KILLS} times): the track script moves the VIP, and the node does not take it back once haproxy runs again`, async () => {
        await killRounds(
            "haproxy stopped in the master, container alive (track script: interval 1 s x fall 2)",
            (node) => execInOk(node, ["systemctl", "stop", "haproxy"]),
            (node) => execInOk(node, ["systemctl", "start", "haproxy"]),
        );
        const journal =
            (await execInOk(NODE_A, ["journalctl", "-t", "veza-vrrp", "--no-pager", "-o", "cat"])) +
            (await execInOk(NODE_B, ["journalctl", "-t", "veza-vrrp", "--no-pager", "-o", "cat"]));
        expect(journal).toMatch(/veza_vip: MASTER -> FAULT/);
    }, 400_000);
});
