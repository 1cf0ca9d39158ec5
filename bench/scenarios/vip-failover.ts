import { deleteContainers, execInOk, incusAvailable, launchBackend, LAB_IMAGE } from "../../lab/lab";
import { KILL_KINDS, KillKind, KillRounds, PairWatch, spread } from "../../lab/pair-lab";
import { installProductMocks, upPair } from "../../lab/product";
import { log } from "../lib/stats";

/** One kind of failure of the VIP holder, over `kills` rounds: the kill rounds' counts, the move times summarised. */
export type VipKillResult = Omit<KillRounds, "moves_ms"> & {
    kills: number;
    move_ms: { min: number; median: number; max: number; runs: number[] };
};

export interface VipFailoverResult {
    /** The master container stopped outright (`incus stop --force`). */
    container_killed: VipKillResult;
    /** haproxy frozen in the master (SIGSTOP), its container alive: keepalived's track script. */
    haproxy_hung: VipKillResult;
    /** A planned stop of haproxy in the master (systemctl stop): the stop hook hands the VIP over first. */
    haproxy_stopped: VipKillResult;
    /** How the pair was set up: VRRP advert interval and the track script's check. */
    setup: string;
    /** When, and with which image and keepalived. */
    measured: { date: string; image: string; keepalived: string };
}

const PAIR = "bench-vip";
const BACKEND = "bench-vip-backend";
/** In the lab bridge's range kept free of DHCP leases, apart from the e2e suite's and lab:up's. */
const VIP = "198.18.0.245";

/**
 * VIP failover of a load balancer pair on the Incus lab, built by the
 * component's own steps (as the e2e suite and `lab:up -- --pair` do): `kills`
 * times each, the VIP holder's container is stopped outright, then its
 * haproxy alone, under a client loop of GETs through the VIP (1 s timeout;
 * a plain client, and one that retries once at once). Undefined when the
 * Incus lab is not set up (`npm run lab:setup`). Removes what it made.
 */
export async function measureVipFailover(kills: number): Promise<VipFailoverResult | undefined> {
    const lab = incusAvailable();
    if (!lab.ok) {
        log(`vip: skipped, no Incus lab (${lab.reason})`);
        return undefined;
    }
    installProductMocks();
    const made = [PAIR, `${PAIR}-b`, BACKEND];
    try {
        await deleteContainers(made);
        await launchBackend(BACKEND, 8080);
        const up = await upPair(PAIR, {
            containerName: PAIR,
            image: LAB_IMAGE,
            apiServers: [{ name: "api-1", address: `${BACKEND}.lxd` }],
            streamServers: [{ name: "stream-1", address: `${BACKEND}.lxd`, port: 8080 }],
            healthCheckIntervalMs: 1000,
            pair: { vip: `${VIP}/24` },
        });
        const watch = new PairWatch(VIP, [up.nodes[0].name, up.nodes[1].name]);
        const keepalived = (await execInOk(PAIR, ["sh", "-c", "keepalived --version 2>&1"]).catch(() => "")).split("\n")[0].trim();
        await watch.waitServing("200 through the bench pair's VIP");
        const summary = ({ moves_ms, ...counts }: KillRounds): VipKillResult => ({
            kills,
            move_ms: { ...spread(moves_ms), runs: moves_ms },
            ...counts,
        });
        const rounds = async (kind: KillKind) => {
            log(`vip: ${kills} x ${kind.label}`);
            return summary(await watch.killRounds(kills, kind.kill, kind.revive));
        };
        const containerKilled = await rounds(KILL_KINDS.containerKilled);
        const haproxyHung = await rounds(KILL_KINDS.haproxyHung);
        const haproxyStopped = await rounds(KILL_KINDS.haproxyStopped);
        return {
            container_killed: containerKilled,
            haproxy_hung: haproxyHung,
            haproxy_stopped: haproxyStopped,
            setup: "keepalived unicast VRRPv3, advert 0.2 s, nopreempt; track script: admin socket every 1 s (0.5 s timeout), fall 2; haproxy's stop hook hands the VIP over",
            measured: { date: new Date().toISOString(), image: LAB_IMAGE, keepalived },
        };
    } finally {
        await deleteContainers(made);
    }
}
