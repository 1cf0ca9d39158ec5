import * as pulumi from "@pulumi/pulumi";
import { checkAcme } from "./acme";
import { isSelfAddress, memberAddressProblem } from "./address";
import { ARG_KEYS, HaproxyLoadBalancerArgs, isAcmeTls, isPlain, RENDER_FIELDS, ResolvedArgs } from "./args";
import { checkPair, checkPeersPort, pairNodeNames, vipAddress, vipProblem } from "./pair";
import { applyDefaults, HaproxySettings } from "./settings";
import { Checker, SettingsError, settingsProblems } from "./validate";

/*
 * The component's one validation path (now, or when a value resolves) and
 * the rules across its args that no single setting's rule can see.
 */

/**
 * A bad input, reported once on the component, naming each field. The SDK
 * prefixes the message of every rejected input property it serializes and
 * rethrows the same object (@pulumi/pulumi runtime/rpc.js,
 * serializeFilteredProperties), so one bad value that feeds several
 * properties would read `error serializing property "stdin": error
 * serializing property "triggers": ...`; the message is therefore fixed. The
 * SDK's handler reports a ResourceError once per object, on its resource,
 * without a stack when hideStack is set (cmd/run/run.js, uncaughtHandler).
 */
export class InputError extends pulumi.ResourceError {
    constructor(
        public readonly problems: string[],
        resource: pulumi.Resource,
    ) {
        const message = problems.join("\n");
        super(message, resource, true);
        Object.defineProperty(this, "message", { get: () => message, set: () => undefined });
    }
}

/**
 * The one validation path: checks `value` now when it is fully known (the
 * constructor throws, so `pulumi preview` fails before any resource is
 * declared), otherwise when it resolves (the returned Output rejects, and no
 * step built from it is registered). A SettingsError becomes an InputError on
 * `resource`.
 */
export function validateNowOrLater<T>(resource: pulumi.Resource, value: pulumi.Input<T>, check: (value: T) => void): pulumi.Output<T> {
    const guarded = (v: T): T => {
        onResource(resource, () => check(v));
        return v;
    };
    if (isPlain(value)) return pulumi.output(guarded(value as T)) as pulumi.Output<T>;
    return pulumi.output(value).apply((v) => guarded(v as T)) as pulumi.Output<T>;
}

/** Runs `check`, turning a SettingsError into an InputError on `resource`. */
export function onResource(resource: pulumi.Resource, check: () => void): void {
    try {
        check();
    } catch (error) {
        if (error instanceof SettingsError) throw new InputError(error.problems, resource);
        throw error;
    }
}

/** Valid stand-ins for required inputs only known later (a generated password, pools from other resources). */
const LATE_PLACEHOLDERS: Record<string, unknown> = {
    statsPassword: "placeholder-password",
    apiServers: [{ name: "placeholder", address: "placeholder" }],
    streamServers: [{ name: "placeholder", address: "placeholder" }],
};

/**
 * Every rule over the settings that are known now, whatever else is an
 * Output: late fields get their default or a valid stand-in, and a problem
 * that involves a late field waits for its real value.
 */
export function checkKnownSettings(args: HaproxyLoadBalancerArgs, a: ResolvedArgs): void {
    const c = new Checker();
    // Typos are refused, not ignored: a misspelt key would silently keep its default.
    c.knownKeys("", args, ARG_KEYS);
    if (isAcmeTls(args.tls)) {
        c.knownKeys("tls", args.tls, ["acme"]);
        if (isPlain(args.tls.acme)) checkAcme(c, "tls.acme", args.tls.acme);
    } else if (args.tls !== undefined) c.knownKeys("tls", args.tls, ["certificatePem", "privateKeyPem"]);
    if (args.pair !== undefined && isPlain(args.pair)) checkPairNames(c, args.pair, a.containerName);
    const settings: Record<string, unknown> = {};
    const late = new Set<string>();
    for (const field of [...RENDER_FIELDS, "statsPassword", "cookieSecret"] as const) {
        const value = a[field];
        if (value !== undefined && isPlain(value)) {
            settings[field] = value;
        } else if (value !== undefined || field === "statsPassword") {
            late.add(field);
            settings[field] = LATE_PLACEHOLDERS[field];
        }
    }
    const resolved = applyDefaults(settings as unknown as HaproxySettings);
    c.found.push(...settingsProblems(resolved));
    if (args.pair !== undefined) checkPeersPort(c, resolved);
    if (isPlain(a.containerName)) {
        const vip = isPlain(args.pair) ? (args.pair as { vip?: unknown } | undefined)?.vip : undefined;
        checkNotSelf(c, settings, ownContainers(a.containerName as string, args.pair !== undefined), vip);
    }
    // A pushed certificate is written into the container: only where nothing else lives.
    if (a.tls && !late.has("tlsCertPath")) c.certPath("tlsCertPath", a.tlsCertPath);
    const problems = c.found.filter((p) => !p.fields.some((f) => late.has(f.split(/[.[]/)[0])));
    if (problems.length > 0) throw new SettingsError(problems.map((p) => p.message));
}

/** `pair`'s own rules, and node b's name (`<containerName>-b`) must be an instance name too. */
export function checkPairNames(c: Checker, pair: unknown, containerName: unknown): void {
    checkPair(c, "pair", pair);
    const base = new Checker();
    if (typeof containerName === "string") base.containerName("containerName", containerName);
    if (typeof containerName === "string" && base.found.length === 0) {
        const before = c.found.length;
        c.containerName("containerName", pairNodeNames(containerName).b);
        for (const p of c.found.slice(before)) p.message = `${p.message} (with pair set, node b is named <containerName>-b)`;
    }
}

/**
 * A pool member that is this load balancer's own container (by its name, or
 * on a loopback address, which inside the container is the container) would
 * send requests back into it: refused, whatever the port. The product runs
 * nothing else in the container for a member to reach.
 */
export function checkNotSelf(c: Checker, settings: Record<string, unknown>, ownNames: string[], vip?: unknown): void {
    // The pair's VIP is this load balancer too (checked only once the VIP itself is valid).
    const ownVip = vipProblem(vip) === undefined ? vipAddress(vip as string) : undefined;
    for (const pool of ["apiServers", "streamServers"] as const) {
        const servers = settings[pool];
        if (!Array.isArray(servers)) continue;
        servers.forEach((server: unknown, i) => {
            const address = (server as { address?: unknown } | null)?.address;
            if (typeof address !== "string") return;
            const host = address.toLowerCase();
            const own = ownNames.find((name) => host === name.toLowerCase() || host.startsWith(`${name.toLowerCase()}.`));
            if (own !== undefined) {
                c.fail(
                    `${pool}[${i}].address`,
                    `is this load balancer's own container ${JSON.stringify(own)}: requests would loop back into it (got ${JSON.stringify(address)})`,
                );
            } else if (ownVip !== undefined && address === ownVip) {
                c.fail(
                    `${pool}[${i}].address`,
                    `is this load balancer's own VIP (pair.vip ${JSON.stringify(vip)}): requests would loop back into it (got ${JSON.stringify(address)})`,
                    "pair.vip",
                );
            } else if (memberAddressProblem(address) === undefined && isSelfAddress(address)) {
                c.fail(
                    `${pool}[${i}].address`,
                    `is a loopback address, which inside the container is this load balancer itself: pool members are other machines (got ${JSON.stringify(address)})`,
                );
            }
        });
    }
}

/** The containers this load balancer runs in: its own, and with a pair node b's too. */
export function ownContainers(containerName: string, pair: boolean): string[] {
    return pair ? Object.values(pairNodeNames(containerName)) : [containerName];
}
