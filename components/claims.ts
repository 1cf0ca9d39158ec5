import { SettingsError } from "./checker";
import { DEFAULT_VIRTUAL_ROUTER_ID, PairArgs, vipAddress } from "./pair";

/**
 * What this program's components hold, by where their commands run: two
 * components on one container would overwrite each other's config, and
 * destroying either would delete it; two pairs on one host with one VIP
 * would fight over the address, and with one VRRP router id would read each
 * other's adverts as their own router's.
 */
const claims = new Map<string, string>();

/** The component already holding `what` on `runsOn`, when it is another one; else claims it for `component`. */
function heldByAnother(component: string, runsOn: string, what: string): string | undefined {
    // One host written two ways (INCUS.LAN, incus.lan, incus.lan.) is one host: DNS names are case-blind,
    // and a trailing dot only makes a name absolute.
    const key = `${runsOn.toLowerCase().replace(/\.(?=:\d+$)/, "")}/${what}`;
    const holder = claims.get(key);
    if (holder !== undefined && holder !== component) return holder;
    claims.set(key, component);
    return undefined;
}

const hostShown = (runsOn: string) => (runsOn === "local" ? "the local Incus" : runsOn);

export function claimContainer(component: string, runsOn: string, containerName: string): void {
    const holder = heldByAnother(component, runsOn, `container/${containerName}`);
    if (holder === undefined) return;
    throw new SettingsError([
        `containerName "${containerName}" on ${hostShown(runsOn)} is already the container of ` +
            `HaproxyLoadBalancer "${holder}"; "${component}" would overwrite its config, and destroying either would delete it: give each its own containerName`,
    ]);
}

/** A pair's VIP and VRRP router id, each held by one pair per host. */
export function claimPairAddresses(component: string, runsOn: string, pair: PairArgs): void {
    const problems: string[] = [];
    const vip = vipAddress(pair.vip);
    const vipHolder = heldByAnother(component, runsOn, `vip/${vip}`);
    if (vipHolder !== undefined) {
        problems.push(
            `pair.vip ${vip} on ${hostShown(runsOn)} is already the VIP of HaproxyLoadBalancer "${vipHolder}"; ` +
                `"${component}"'s pair would fight it for the address: give each pair its own VIP`,
        );
    }
    const id = pair.virtualRouterId ?? DEFAULT_VIRTUAL_ROUTER_ID;
    const idHolder = heldByAnother(component, runsOn, `vrid/${id}`);
    if (idHolder !== undefined) {
        problems.push(
            `pair.virtualRouterId ${id}${pair.virtualRouterId === undefined ? " (the default)" : ""} on ${hostShown(runsOn)} is already ` +
                `the VRRP router id of HaproxyLoadBalancer "${idHolder}"'s pair; "${component}"'s would share it on the bridge: ` +
                "set pair.virtualRouterId (1-255) to an id no other VRRP router there uses",
        );
    }
    if (problems.length > 0) throw new SettingsError(problems);
}

/**
 * Forgets the claims made so far. One program run claims each once; a test
 * that builds several program versions in one process (as successive
 * `pulumi up`s would) calls this between them.
 */
export function forgetClaims(): void {
    claims.clear();
}
