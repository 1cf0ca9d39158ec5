/**
 * A load balancer pair in the lab, watched from the Incus host: which node
 * holds the VIP, a client loop through it, and rounds of killing the holder
 * with the move timed. Shared by the e2e pair test (which asserts what must
 * hold) and the bench's VIP failover scenario (which records the numbers).
 *
 * Traffic goes only to the VIP on the lab bridge.
 */
import { get, sleep, waitFor } from "../tests/support";
import { execIn, execInOk, incusOk } from "./lab";

/** How the VIP holder fails, and how it comes back: the kinds of kill the e2e suite and the bench run. */
export interface KillKind {
    label: string;
    kill: (node: string) => Promise<unknown>;
    revive: (node: string) => Promise<unknown>;
}

export const KILL_KINDS = {
    /** The whole container, at once: keepalived dies with it and the other node stops hearing adverts. */
    containerKilled: {
        label: "master container killed (incus stop --force)",
        kill: (node: string) => incusOk(["stop", "--force", node]),
        revive: (node: string) => startContainer(node),
    },
    /** haproxy frozen (SIGSTOP), container and keepalived alive: only the track script (admin socket, 1 s x fall 2) can tell. */
    haproxyHung: {
        label: "haproxy hung in the master (SIGSTOP; track script: admin socket every 1 s, fall 2)",
        kill: (node: string) => execInOk(node, ["pkill", "-STOP", "-x", "haproxy"]),
        revive: (node: string) => execInOk(node, ["pkill", "-CONT", "-x", "haproxy"]),
    },
    /** A planned stop (systemctl stop): the stop hook hands the VIP over before haproxy stops listening. */
    haproxyStopped: {
        label: "haproxy stopped in the master (systemctl stop; stop hook hands the VIP over first)",
        kill: (node: string) => execInOk(node, ["systemctl", "stop", "haproxy"]),
        revive: (node: string) => execInOk(node, ["systemctl", "start", "haproxy"]),
    },
} satisfies Record<string, KillKind>;

/**
 * After a node comes back, how long to watch before deciding it did not take
 * the VIP back: its track script needs 2 good checks 1 s apart before the
 * node may hold the VIP at all, then one advert (0.2 s) would be enough to
 * preempt.
 */
export const NO_TAKE_BACK_WAIT_MS = 3_000;

/** A move that has not happened after this long is a failure, not a measurement. */
export const MOVE_LIMIT_MS = 20_000;

export class PairWatch {
    constructor(
        /** The VIP's address, without prefix. */
        readonly vip: string,
        /** Node a's and node b's containers. */
        readonly nodes: readonly [string, string],
    ) {}

    async holdsVip(node: string): Promise<boolean> {
        const r = await execIn(node, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
        return r.code === 0 && r.stdout.includes(` ${this.vip}/`);
    }

    async vipHolders(): Promise<string[]> {
        const out: string[] = [];
        for (const node of this.nodes) if (await this.holdsVip(node)) out.push(node);
        return out;
    }

    /** [holder, other] when exactly one node holds the VIP; throws otherwise. */
    async holder(): Promise<[string, string]> {
        const holders = await this.vipHolders();
        if (holders.length !== 1) throw new Error(`expected the VIP ${this.vip} on one node, found it on: ${holders.join(", ") || "none"}`);
        return holders[0] === this.nodes[0] ? [this.nodes[0], this.nodes[1]] : [this.nodes[1], this.nodes[0]];
    }

    /** Runs `kill`, then waits until `to` holds the VIP; returns the milliseconds it took. */
    async timeMove(kill: () => Promise<unknown>, to: string): Promise<number> {
        const t0 = Date.now();
        await kill();
        await waitFor(() => this.holdsVip(to), { what: `the VIP on ${to}`, timeoutMs: MOVE_LIMIT_MS, intervalMs: 50 });
        return Date.now() - t0;
    }

    /** Waits for a 200 through the VIP. */
    async waitServing(what: string): Promise<void> {
        await waitFor(
            async () =>
                (await get(`http://${this.vip}`, "/api/v1/health", undefined, { timeoutMs: 1_000 }).catch(() => undefined))?.status === 200,
            { what, timeoutMs: 20_000, intervalMs: 100 },
        );
    }

    /**
     * `kills` times: `kill` the node holding the VIP under a client loop,
     * time the move, `revive` it, and look NO_TAKE_BACK_WAIT_MS later at who
     * holds the VIP.
     */
    async killRounds(
        kills: number,
        kill: (node: string) => Promise<unknown>,
        revive: (node: string) => Promise<unknown>,
    ): Promise<KillRounds> {
        const result: KillRounds = {
            moves_ms: [],
            requests: 0,
            failed_plain: 0,
            failed_retry_once: 0,
            patient_requests: 0,
            failed_patient: 0,
            taken_back: 0,
        };
        for (let round = 0; round < kills; round++) {
            const [master, backup] = await this.holder();
            const client = new VipClient(this.vip);
            const patient = new VipClient(this.vip, PATIENT_TIMEOUT_MS);
            await sleep(300);
            result.moves_ms.push(await this.timeMove(() => kill(master), backup));
            await this.waitServing(`200 through the VIP on ${backup}`);
            await sleep(500);
            const traffic = await client.stop();
            const patientTraffic = await patient.stop();
            result.patient_requests += patientTraffic.attempts;
            result.failed_patient += patientTraffic.plainFailures;
            result.requests += traffic.attempts;
            result.failed_plain += traffic.plainFailures;
            result.failed_retry_once += traffic.retryFailures;
            await revive(master);
            await sleep(NO_TAKE_BACK_WAIT_MS);
            if ((await this.vipHolders()).join(",") !== backup) result.taken_back++;
        }
        return result;
    }
}

/** What rounds of kills measured. */
export interface KillRounds {
    moves_ms: number[];
    requests: number;
    failed_plain: number;
    failed_retry_once: number;
    /** A second client, alongside: 3 s timeout, no retry (a connect's first SYN retransmit comes after 1 s). */
    patient_requests: number;
    failed_patient: number;
    /** Rounds after which the VIP was not (only) on the node it moved to. */
    taken_back: number;
}

/** Min / median / max of a list of milliseconds. */
export function spread(ms: number[]): { min: number; median: number; max: number } {
    const sorted = [...ms].sort((a, b) => a - b);
    return { min: sorted[0], median: sorted[Math.floor(sorted.length / 2)], max: sorted[sorted.length - 1] };
}

/** Starts a stopped node and waits until its keepalived runs again. */
export async function startContainer(node: string): Promise<void> {
    await incusOk(["start", node]);
    await waitFor(async () => (await execIn(node, ["systemctl", "is-active", "keepalived"])).stdout.trim() === "active", {
        what: `keepalived running again on ${node}`,
        timeoutMs: 60_000,
        intervalMs: 200,
    });
}

/** The patient client's timeout: long enough for one SYN retransmit (Linux: after 1 s). */
export const PATIENT_TIMEOUT_MS = 3_000;

/**
 * GETs through the VIP, each on a new connection with a timeout (1 s unless
 * given), until stopped. A plain client counts every failed attempt; a
 * retrying client tries once more at once after a failure and fails only
 * when that fails too.
 */
export class VipClient {
    attempts = 0;
    plainFailures = 0;
    retryFailures = 0;
    private running = true;
    private readonly done: Promise<void>;
    constructor(
        private readonly vip: string,
        private readonly timeoutMs = 1_000,
    ) {
        this.done = this.loop();
    }
    private async once(i: number): Promise<boolean> {
        try {
            const r = await get(`http://${this.vip}`, `/api/v1/health?i=${i}`, undefined, { timeoutMs: this.timeoutMs });
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
