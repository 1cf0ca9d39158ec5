import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
import { createHmac } from "crypto";
import { isSelfAddress, memberAddressProblem } from "./address";
import { sha256Hex } from "./identity";
import {
    checkPair,
    checkPeersPort,
    DEFAULT_VIRTUAL_ROUTER_ID,
    PAIR_NODES,
    PairArgs,
    PairNode,
    pairNodeNames,
    pairWarnings,
    PEERS_CERT_VALIDITY_HOURS,
    renderKeepalivedConfig,
    vipAddress,
    vipProblem,
} from "./pair";
import { openFilesNeeded, PeerNode, renderResolved } from "./render";
import { ACME_CHALLENGE_PORT, AcmeArgs, checkAcme } from "./acme";
import {
    acmeIssueStep,
    acmeStep,
    configStep,
    containerStep,
    keepalivedStep,
    ownerToken,
    stackIdentity,
    pairConfigStep,
    stepScripts,
    StepKind,
    tlsStep,
} from "./scripts";
import {
    applyDefaults,
    BackendServer,
    DEFAULT_SETTINGS,
    DEFAULT_TLS_CERT_PATH,
    HaproxySettings,
    PublicSettingName,
    ResolvedSettings,
    SETTINGS,
    SETTINGS_KEYS,
} from "./settings";
import {
    Checker,
    ProvisioningSettings,
    SettingsError,
    settingsProblems,
    settingsWarnings,
    shown,
    validateProvisioning,
    validateTlsPair,
} from "./validate";

type Inputs<T> = { [K in keyof T]?: pulumi.Input<T[K]> };
type StepCommand = command.local.Command | command.remote.Command;

/** Certificate and key served on the HTTPS listener. Both are kept as Pulumi secrets. */
export interface HaproxyTlsArgs {
    /** PEM certificate (chain allowed). */
    certificatePem: pulumi.Input<string>;
    /** PEM private key of the certificate. */
    privateKeyPem: pulumi.Input<string>;
}

/** A certificate from an ACME CA (Let's Encrypt by default), obtained and renewed in the container: docs/certificates.md. */
export interface HaproxyAcmeTlsArgs {
    acme: pulumi.Input<AcmeArgs>;
}

function isAcmeTls(tls: unknown): tls is HaproxyAcmeTlsArgs {
    return typeof tls === "object" && tls !== null && "acme" in tls;
}

/** The haproxy.cfg settings a component user sets, as Inputs; each is defined once in SETTINGS (settings.ts): default, rule, doc. */
type SettingArgs = { [K in Exclude<PublicSettingName, "apiServers" | "streamServers">]?: pulumi.Input<ResolvedSettings[K]> };

/**
 * Inputs of HaproxyLoadBalancer: the haproxy.cfg settings (the config
 * table; defaults and rules in settings.ts), plus where and how the container
 * is provisioned.
 */
export interface HaproxyLoadBalancerArgs extends SettingArgs {
    /** api_pool members. Required. */
    apiServers: pulumi.Input<pulumi.Input<BackendServer>[]>;
    /** stream_pool members. Required. */
    streamServers: pulumi.Input<pulumi.Input<BackendServer>[]>;
    /**
     * SSH connection to the Incus host. Default: none, run the local `incus` CLI.
     * Needs `hostKey` (the host's public key line, e.g. the contents of
     * /etc/ssh/ssh_host_ed25519_key.pub) unless `insecureSkipHostKeyCheck` is true.
     */
    connection?: pulumi.Input<command.types.input.remote.ConnectionArgs>;
    /** Run over SSH without verifying the host key (anyone on the path could take the session). Default: false; a warning on every run when true. */
    insecureSkipHostKeyCheck?: boolean;
    /** Incus instance name. Default: the component's name. */
    containerName?: pulumi.Input<string>;
    /**
     * Take over the container even when another stack recorded it as its own
     * (Incus key user.veza.stack). Default: false: refused, naming both stacks,
     * since every stack defaults to the same container name and the second
     * would reconfigure the first one's load balancer, and delete it on its
     * own destroy. A warning on every run while true.
     */
    adoptContainer?: boolean;
    /** Incus image. Default: "images:debian/13" (Debian 12, "images:debian/12", works as well). */
    image?: pulumi.Input<string>;
    /** Incus profiles. Default: ["default"]. */
    profiles?: pulumi.Input<pulumi.Input<string>[]>;
    /**
     * HTTPS on `listenHttps`: a certificate + key to push into the container,
     * or `{ acme }` to have the container obtain and renew one from an ACME CA.
     * Default: none (HTTP only).
     */
    tls?: HaproxyTlsArgs | HaproxyAcmeTlsArgs;
    /**
     * Two nodes holding a floating address (the VIP) with keepalived, instead
     * of one container (docs/pair.md). Node a is the
     * container `containerName` (a single load balancer turned into a pair
     * keeps serving as node a), node b is `<containerName>-b`. Default: none.
     */
    pair?: pulumi.Input<PairArgs>;
}

export const COMPONENT_DEFAULTS = {
    image: "images:debian/13",
    profiles: ["default"],
};

/**
 * The container step's trigger for an image left to the default. 0.2 put its
 * default, "images:debian/12", in the trigger; keeping that token means a new
 * default never replaces a running container (a `triggers` change replaces,
 * and a replace deletes: see the step's comment). New containers launch from
 * the new default; an image that is set is its own token, so only setting it
 * rebuilds.
 */
export const DEFAULTED_IMAGE_TRIGGER = "images:debian/12";

/** Settings that go straight from the args to the renderer (the password and cookie key get generated defaults). */
const RENDER_FIELDS = SETTINGS_KEYS.filter(
    (key): key is Exclude<PublicSettingName, "statsPassword" | "cookieSecret"> =>
        !("internal" in SETTINGS[key]) && key !== "statsPassword" && key !== "cookieSecret",
);

/** The args that are not haproxy.cfg settings; with PublicSettingName they are every key of HaproxyLoadBalancerArgs (the compiler checks). */
const PROVISIONING_KEYS = [
    "connection",
    "insecureSkipHostKeyCheck",
    "containerName",
    "adoptContainer",
    "image",
    "profiles",
    "tls",
    "pair",
] as const satisfies readonly (keyof HaproxyLoadBalancerArgs)[];
type MissingArgKeys = Exclude<keyof HaproxyLoadBalancerArgs, PublicSettingName | (typeof PROVISIONING_KEYS)[number]>;
const allArgKeysListed: MissingArgKeys extends never ? true : MissingArgKeys = true;
void allArgKeysListed;
const ARG_KEYS: readonly string[] = [...RENDER_FIELDS, "statsPassword", "cookieSecret", ...PROVISIONING_KEYS];

function isPlain(value: unknown): boolean {
    if (pulumi.Output.isInstance(value) || value instanceof Promise) return false;
    if (Array.isArray(value)) return value.every(isPlain);
    if (typeof value === "object" && value !== null) return Object.values(value).every(isPlain);
    return true;
}

/**
 * Returns a new args object with the component-level defaults applied; `args`
 * is never modified. The container is named after the component unless
 * `containerName` is given, so two components never share one by default.
 */
export function applyComponentDefaults(name: string, args: HaproxyLoadBalancerArgs) {
    // A pushed certificate needs a place: the default path unless one is given.
    const certPath = (p: string | undefined) => p || DEFAULT_TLS_CERT_PATH;
    return {
        ...args,
        containerName: args.containerName ?? name,
        image: args.image ?? COMPONENT_DEFAULTS.image,
        profiles: args.profiles ?? COMPONENT_DEFAULTS.profiles,
        tlsCertPath: !args.tls
            ? args.tlsCertPath
            : isPlain(args.tlsCertPath)
              ? certPath(args.tlsCertPath as string | undefined)
              : pulumi.output(args.tlsCertPath).apply(certPath),
    };
}

type ResolvedArgs = ReturnType<typeof applyComponentDefaults>;

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
function onResource(resource: pulumi.Resource, check: () => void): void {
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
function checkKnownSettings(args: HaproxyLoadBalancerArgs, a: ResolvedArgs): void {
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
function checkPairNames(c: Checker, pair: unknown, containerName: unknown): void {
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
function checkNotSelf(c: Checker, settings: Record<string, unknown>, ownNames: string[], vip?: unknown): void {
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
function ownContainers(containerName: string, pair: boolean): string[] {
    return pair ? Object.values(pairNodeNames(containerName)) : [containerName];
}

/** What the SSH host key must look like: one public key line as in known_hosts/authorized_keys. */
const HOST_KEY = /^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}( [^\r\n]*)?$/;
const SSH_HOST = /^[A-Za-z0-9]([A-Za-z0-9.:-]{0,252})$/;

interface SshTarget {
    host?: unknown;
    port?: unknown;
    hostKey?: unknown;
    /** The bastion (connection.proxy): checked by the same rules. */
    proxy?: SshTarget;
}

/**
 * The checked fields of a connection (no key or password): the host's, and
 * the bastion's when there is one (a bastion has no bastion of its own:
 * ProxyConnection, remote/proxyConnection.go).
 */
function sshTargetOf(c: { host?: unknown; port?: unknown; hostKey?: unknown; proxy?: unknown }): SshTarget {
    const proxy = c.proxy as SshTarget | undefined | null;
    return {
        host: c.host,
        port: c.port,
        hostKey: c.hostKey,
        ...(proxy == null ? {} : { proxy: { host: proxy.host, port: proxy.port, hostKey: proxy.hostKey } }),
    };
}

/**
 * @pulumi/command accepts any host key when `hostKey` is unset
 * (pulumi/pulumi-command provider/pkg/provider/remote/connection.go,
 * SSHConfig: ssh.InsecureIgnoreHostKey) and pins the one given, parsed with
 * ssh.ParseAuthorizedKey, with HostKeyAlgorithms limited to its type. An
 * ssh-rsa key would pin the SHA-1 "ssh-rsa" signature, which OpenSSH 8.8+
 * servers no longer offer, so only ed25519 and ECDSA keys are accepted.
 */
function checkSshTarget(target: SshTarget, insecure: boolean): void {
    const c = new Checker();
    checkSshEnd(c, "connection", target, insecure, {
        host: "the Incus host's DNS name or IP address",
        missingKey:
            "must be set to the Incus host's SSH public key line (stack config haproxy:incusHost.hostKey), " +
            "e.g. the contents of /etc/ssh/ssh_host_ed25519_key.pub on that host: without it any host key is accepted and whoever " +
            "answers in its place gets root commands, the TLS key and the stats password. To run unverified anyway, set insecureSkipHostKeyCheck: true",
    });
    // The provider treats a bastion's host key as the main connection's (remote/proxyConnection.go embeds connectionBase).
    if (target.proxy !== undefined && target.proxy !== null) {
        checkSshEnd(c, "connection.proxy", target.proxy, insecure, {
            host: "the bastion's DNS name or IP address",
            missingKey:
                "must be set to the bastion's SSH public key line, e.g. the contents of /etc/ssh/ssh_host_ed25519_key.pub on that host: " +
                "without it any host key is accepted, and whoever answers in its place sees every command and secret the steps send. " +
                "To run unverified anyway, set insecureSkipHostKeyCheck: true",
        });
    }
    if (c.problems.length > 0) throw new SettingsError(c.problems);
}

/**
 * Why a host key line that looks right is not a whole key, or undefined: its
 * blob (SSH wire format: length-prefixed strings) must name the same type as
 * the line and hold exactly that type's key, as `ssh-keygen -l` reads it. A
 * label that does not match its blob would get round the no-ssh-rsa rule.
 */
export function hostKeyBlobProblem(line: string): string | undefined {
    const [type, base64] = line.split(" ");
    const blob = Buffer.from(base64, "base64");
    const fields: Buffer[] = [];
    for (let at = 0; at < blob.length;) {
        if (at + 4 > blob.length) return "its key data is cut short";
        const length = blob.readUInt32BE(at);
        if (at + 4 + length > blob.length) return "its key data is cut short";
        fields.push(blob.subarray(at + 4, at + 4 + length));
        at += 4 + length;
    }
    const named = fields[0]?.toString("latin1");
    if (named !== type) return `its key data is ${named === undefined ? "empty" : `a ${JSON.stringify(named)} key`}, not ${type}`;
    const sizes: Record<string, number[]> = {
        "ssh-ed25519": [32],
        "ecdsa-sha2-nistp256": [8, 65],
        "ecdsa-sha2-nistp384": [8, 97],
        "ecdsa-sha2-nistp521": [8, 133],
    };
    const want = sizes[type];
    const got = fields.slice(1).map((f) => f.length);
    if (want === undefined || JSON.stringify(got) !== JSON.stringify(want)) return `its key data is not a whole ${type} key`;
    return undefined;
}

/** One end of the SSH path (the Incus host, or the bastion before it): its host, port and pinned host key. */
function checkSshEnd(c: Checker, field: string, end: SshTarget, insecure: boolean, say: { host: string; missingKey: string }): void {
    c.matches(`${field}.host`, end.host, SSH_HOST, `must be ${say.host}`);
    if (end.port !== undefined) c.port(`${field}.port`, end.port);
    if (end.hostKey === undefined || end.hostKey === "") {
        if (!insecure) c.fail(`${field}.hostKey`, say.missingKey);
    } else {
        c.matches(
            `${field}.hostKey`,
            end.hostKey,
            HOST_KEY,
            'must be one public key line, "ssh-ed25519 AAAA..." or "ecdsa-sha2-nistp256 AAAA..." (ssh-rsa host keys are not accepted: the provider would pin SHA-1 signatures)',
        );
        const problem = typeof end.hostKey === "string" && HOST_KEY.test(end.hostKey) ? hostKeyBlobProblem(end.hostKey) : undefined;
        if (problem !== undefined) {
            c.fail(
                `${field}.hostKey`,
                `is not a usable public key: ${problem} (ssh-keygen -l refuses it too); copy the whole line from the host's /etc/ssh/ssh_host_ed25519_key.pub (got ${shown(end.hostKey)})`,
            );
        }
    }
}

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

function claimContainer(component: string, runsOn: string, containerName: string): void {
    const holder = heldByAnother(component, runsOn, `container/${containerName}`);
    if (holder === undefined) return;
    throw new SettingsError([
        `containerName "${containerName}" on ${hostShown(runsOn)} is already the container of ` +
            `HaproxyLoadBalancer "${holder}"; "${component}" would overwrite its config, and destroying either would delete it: give each its own containerName`,
    ]);
}

/** A pair's VIP and VRRP router id, each held by one pair per host. */
function claimPairAddresses(component: string, runsOn: string, pair: PairArgs): void {
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

/** Every input, resolved and checked (now, or when it resolves). */
interface ResolvedInputs {
    /** true once every input above is checked; fails with the first problem found. */
    valid: pulumi.Output<boolean>;
    connection: HaproxyLoadBalancerArgs["connection"];
    runsOn: pulumi.Input<string>;
    provisioning: pulumi.Output<ProvisioningSettings & { runsOn: string }>;
    /** The image as the container step's trigger: DEFAULTED_IMAGE_TRIGGER unless set. */
    imageTrigger: pulumi.Input<string>;
    tlsPair?: pulumi.Output<[string, string]>;
    /** With a pair: the peers certificate and key both nodes present and trust (secret). */
    peersTlsPair?: pulumi.Output<[string, string]>;
    /** tls.acme, checked; absent when the certificate is pushed (or TLS is off). */
    acme?: pulumi.Output<AcmeArgs>;
    /** Checked; absent for one container. */
    pair?: pulumi.Output<PairArgs>;
    settings: pulumi.Output<ResolvedSettings>;
    statsPassword: pulumi.Output<string>;
    fingerprintKey: pulumi.Output<string>;
    /** This stack, `<project>/<stack>`: recorded in the container beside the owner token. */
    stack: string;
    adoptContainer: boolean;
}

/** One node to build: node a is the component's container, node b its pair partner. */
interface NodePlan {
    node: PairNode;
    /** Its steps' resource names start with this. */
    prefix: string;
    containerName: pulumi.Output<string>;
}

interface NodeSteps {
    container: StepCommand;
    tls?: StepCommand;
    /** With tls.acme: the ACME client, its settings, the renewal timer and a placeholder certificate. */
    acme?: StepCommand;
    /** With a pair: the peers certificate and key, for mutual TLS between the nodes. */
    peersTls?: StepCommand;
    /** What the container step printed: its IPv4 on the bridge. */
    address: pulumi.Output<string>;
}

interface Steps {
    nodes: NodeSteps[];
    /** Each node's container name and bridge address, in node order. */
    nodeList: pulumi.Output<PeerNode[]>;
    keepalived: StepCommand[];
    config: StepCommand;
    /** With tls.acme: the last issue step (a pair's node b's, which runs after node a's). */
    acmeIssue?: StepCommand;
    /** What the config step sends (secret: it holds the stats password). */
    renderedConfig: pulumi.Output<string>;
}

/** What the ACME issue step prints (templates/acme-issue-create.sh.mustache): "not_after=..." and "issuer=..." lines. */
export function certificateReport(stdout: string): { notAfter: string; issuer: string } {
    return { notAfter: /^not_after=(.*)$/m.exec(stdout)?.[1] ?? "", issuer: /^issuer=(.*)$/m.exec(stdout)?.[1] ?? "" };
}

/** The two paths the ACME steps need, out of the (secret) settings: not secret themselves. */
function acmePaths(settings: pulumi.Output<ResolvedSettings>): pulumi.Output<{ certPath: string; adminSocketPath: string }> {
    return pulumi.unsecret(settings.apply((s) => ({ certPath: s.tlsCertPath, adminSocketPath: s.adminSocketPath })));
}

/** Where the keepalived step installs the track and notify scripts (templates/keepalived-create.sh.mustache). */
const VRRP_ALIVE_SCRIPT = "/usr/local/sbin/veza-haproxy-alive";
const VRRP_NOTIFY_SCRIPT = "/usr/local/sbin/veza-vrrp-notify";

/** Keyed fingerprint of the rendered config: readable, changes exactly when the config does, and cannot be recomputed without the key. */
function fingerprint(key: string, config: string): string {
    return createHmac("sha256", key).update(config, "utf8").digest("hex");
}

/**
 * The HAProxy load balancer in front of the Veza platform: one Incus
 * container, provisioned and reconfigured through commands on the Incus host.
 * Pool membership changes only re-run the config step (validate + hitless
 * reload); the container is left alone.
 */
export class HaproxyLoadBalancer extends pulumi.ComponentResource {
    /** Incus instance name (with a pair: node a's; node b's is in `nodes`). */
    public readonly containerName: pulumi.Output<string>;
    /** Where clients reach the load balancer: the container's IPv4 on the Incus bridge, or with a pair the VIP (no prefix). */
    public readonly address: pulumi.Output<string>;
    /** Each node's container and IPv4 on the bridge: one, or the pair's two (a, then b). */
    public readonly nodes: pulumi.Output<{ name: string; address: string }[]>;
    /** The pair's floating address with its prefix ("198.18.0.10/24"); "" without a pair. */
    public readonly vip: pulumi.Output<string>;
    /** The node that held the VIP when the config step last ran; "" without a pair (or when neither held it). */
    public readonly vipNode: pulumi.Output<string>;
    /** Where the platform is served over HTTP. */
    public readonly httpUrl: pulumi.Output<string>;
    /** Where the platform is served over HTTPS; "" when TLS is off. */
    public readonly httpsUrl: pulumi.Output<string>;
    /** Stats UI, loopback inside the container (reach it through an Incus proxy device: docs/operations.md). */
    public readonly statsUrl: pulumi.Output<string>;
    /** Prometheus endpoint, loopback inside the container. */
    public readonly metricsUrl: pulumi.Output<string>;
    /** HMAC-SHA256 of the rendered haproxy.cfg under a key kept secret in the stack: changes exactly when the config does. */
    public readonly configFingerprint: pulumi.Output<string>;
    /** The rendered haproxy.cfg (secret: it holds the stats password). */
    public readonly renderedConfig: pulumi.Output<string>;
    /** Stats UI password (secret). */
    public readonly statsPassword: pulumi.Output<string>;
    /** The container step (with a pair: node a's); depend on it to run after the container exists. */
    public readonly containerCommand: StepCommand;
    /** The config step; depend on it to run after HAProxy serves the current config (with a pair: on both nodes). */
    public readonly configCommand: StepCommand;
    /** The TLS step, when a certificate is pushed (with a pair: node a's). */
    public readonly tlsCommand?: StepCommand;
    /** Every node's container step, TLS step (or ACME step) and (pair) keepalived step, in node order. */
    public readonly nodeCommands: { container: StepCommand; tls?: StepCommand; acme?: StepCommand; keepalived?: StepCommand }[];
    /**
     * With tls.acme: the step that obtained the certificate, after the config
     * step (a pair's node b's, after node a's); depend on it to run once HTTPS
     * serves the CA's certificate.
     */
    public readonly acmeIssueCommand?: StepCommand;
    /**
     * With tls.acme: the served certificate's expiry and issuer when the issue
     * step last ran (not secret; a pair's node b's, node a's has its own);
     * renewals since are in the container's journal (`journalctl -t veza-acme`).
     */
    public readonly certificate: pulumi.Output<{ notAfter: string; issuer: string } | undefined>;
    /** Every input checked (ResolvedInputs.valid): what steps and outputs read from steps wait for. */
    private inputsValid: pulumi.Output<boolean> = pulumi.output(true);

    constructor(name: string, args: HaproxyLoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("veza:infra:HaproxyLoadBalancer", name, {}, opts);
        this.warnContainerFollowsRename(name, args.containerName, opts?.aliases);
        const inputs = this.resolveAndValidate(name, args);
        this.inputsValid = inputs.valid;
        const steps = this.steps(name, inputs);
        const renderedConfig = steps.renderedConfig;

        this.containerCommand = steps.nodes[0].container;
        this.tlsCommand = steps.nodes[0].tls;
        this.configCommand = steps.config;
        this.nodeCommands = steps.nodes.map((n, i) => ({
            container: n.container,
            tls: n.tls,
            acme: n.acme,
            keepalived: steps.keepalived[i],
        }));
        this.acmeIssueCommand = steps.acmeIssue;
        this.certificate = steps.acmeIssue ? this.afterChecks(steps.acmeIssue.stdout).apply(certificateReport) : pulumi.output(undefined);
        this.containerName = inputs.provisioning.containerName;
        this.nodes = steps.nodeList;
        const pair = inputs.pair;
        this.vip = pair ? pair.apply((p) => p.vip) : pulumi.output("");
        this.vipNode = pair
            ? this.afterChecks(steps.config.stdout).apply((out) => /^vip_node=(.*)$/m.exec(out)?.[1] ?? "")
            : pulumi.output("");
        this.address = pair ? pair.apply((p) => vipAddress(p.vip)) : steps.nodes[0].address;
        // `settings` is secret (it holds the password); the listeners are not.
        const listeners = pulumi.unsecret(
            inputs.settings.apply((s) => ({
                http: s.listenHttp,
                https: s.tlsCertPath === "" ? undefined : s.listenHttps,
                stats: `${s.statsBindAddress}:${s.statsPort}`,
            })),
        );
        this.httpUrl = pulumi
            .all([this.address, listeners])
            .apply(([address, l]) => (l.http === 80 ? `http://${address}/` : `http://${address}:${l.http}/`));
        this.httpsUrl = pulumi
            .all([this.address, listeners])
            .apply(([address, l]) =>
                l.https === undefined ? "" : l.https === 443 ? `https://${address}/` : `https://${address}:${l.https}/`,
            );
        this.statsUrl = listeners.apply((l) => `http://${l.stats}/stats`);
        this.metricsUrl = listeners.apply((l) => `http://${l.stats}/metrics`);
        this.configFingerprint = pulumi.unsecret(
            pulumi.all([inputs.fingerprintKey, renderedConfig]).apply(([key, config]) => fingerprint(key, config)),
        );
        this.renderedConfig = renderedConfig;
        this.statsPassword = inputs.statsPassword;
        this.registerOutputs({
            containerName: this.containerName,
            address: this.address,
            nodes: this.nodes,
            vip: this.vip,
            vipNode: this.vipNode,
            httpUrl: this.httpUrl,
            httpsUrl: this.httpsUrl,
            statsUrl: this.statsUrl,
            metricsUrl: this.metricsUrl,
            configFingerprint: this.configFingerprint,
            renderedConfig: this.renderedConfig,
            statsPassword: this.statsPassword,
            certificate: this.certificate,
        });
    }

    /**
     * Defaults applied, generated secrets made, every input checked: what is
     * known now fails the constructor, the rest when it resolves (then no step
     * built from it registers).
     */
    private resolveAndValidate(name: string, args: HaproxyLoadBalancerArgs): ResolvedInputs {
        const a = applyComponentDefaults(name, args);
        if (a.insecureSkipHostKeyCheck !== undefined && typeof a.insecureSkipHostKeyCheck !== "boolean") {
            throw new pulumi.ResourceError(
                `insecureSkipHostKeyCheck must be true or false (got ${shown(a.insecureSkipHostKeyCheck)})`,
                this,
            );
        }
        const insecure = a.insecureSkipHostKeyCheck === true;
        const hasPair = a.pair !== undefined;
        onResource(this, () => checkKnownSettings(args, a));
        const runsOn = this.runsOn(a.connection, insecure);
        const provisioning = validateNowOrLater(
            this,
            { containerName: a.containerName, image: a.image, profiles: a.profiles, runsOn } as pulumi.Input<
                ProvisioningSettings & { runsOn: string }
            >,
            (p) => {
                validateProvisioning(p);
                for (const node of ownContainers(p.containerName, hasPair)) claimContainer(name, p.runsOn, node);
            },
        );
        const pair =
            a.pair === undefined
                ? undefined
                : validateNowOrLater(
                      this,
                      { pair: a.pair, containerName: a.containerName, runsOn } as pulumi.Input<{
                          pair: PairArgs;
                          containerName: string;
                          runsOn: string;
                      }>,
                      (v) => {
                          const c = new Checker();
                          checkPairNames(c, v.pair, v.containerName);
                          if (c.problems.length > 0) throw new SettingsError(c.problems);
                          claimPairAddresses(name, v.runsOn, v.pair);
                      },
                  ).apply((v) => v.pair);
        pair?.apply((p) => pairWarnings("pair", p).forEach((warning) => pulumi.log.warn(warning, this)));
        const acme = isAcmeTls(a.tls)
            ? validateNowOrLater(this, a.tls.acme, (v) => {
                  const c = new Checker();
                  checkAcme(c, "tls.acme", v);
                  if (c.problems.length > 0) throw new SettingsError(c.problems);
              })
            : undefined;
        const tlsPair =
            a.tls &&
            !isAcmeTls(a.tls) &&
            validateNowOrLater(
                this,
                pulumi.all([pulumi.secret(a.tls.certificatePem), pulumi.secret(a.tls.privateKeyPem)]),
                ([certificatePem, privateKeyPem]) => validateTlsPair(certificatePem, privateKeyPem),
            );

        const statsPassword = pulumi.secret(a.statsPassword ?? this.randomKey(`${name}-stats-password`));
        const cookieSecret = a.cookieSecret ?? this.randomKey(`${name}-cookie-secret`);
        const renderInputs: Inputs<HaproxySettings> = { statsPassword, cookieSecret };
        for (const field of RENDER_FIELDS) (renderInputs as Record<string, unknown>)[field] = a[field];
        // HAProxy hands the CA's HTTP-01 challenges to the ACME client's responder in the container.
        if (acme) renderInputs.acmeChallengePort = ACME_CHALLENGE_PORT;
        const settings: pulumi.Output<ResolvedSettings> = validateNowOrLater(
            this,
            pulumi.all([pulumi.all(renderInputs), a.containerName, a.pair]).apply(([s, containerName, pairArgs]) => ({
                resolved: applyDefaults(s as unknown as HaproxySettings),
                containerName,
                vip: (pairArgs as PairArgs | undefined)?.vip,
            })),
            ({ resolved, containerName, vip }) => {
                const c = new Checker();
                c.found.push(...settingsProblems(resolved));
                checkNotSelf(c, resolved as unknown as Record<string, unknown>, ownContainers(containerName, hasPair), vip);
                if (hasPair) checkPeersPort(c, resolved);
                if (c.problems.length > 0) throw new SettingsError(c.problems);
            },
        ).apply(({ resolved }) => resolved);
        // Legal but unusual values: said on every run, never refused.
        settings.apply((s) => settingsWarnings(s).forEach((warning) => pulumi.log.warn(warning, this)));
        return {
            connection: a.connection,
            runsOn,
            provisioning,
            imageTrigger: args.image === undefined ? DEFAULTED_IMAGE_TRIGGER : provisioning.image,
            tlsPair: tlsPair || undefined,
            peersTlsPair: hasPair ? this.peersCertificate(name) : undefined,
            acme,
            pair,
            settings,
            statsPassword,
            fingerprintKey: this.randomKey(`${name}-fingerprint-key`),
            stack: stackIdentity(pulumi.getProject(), pulumi.getStack()),
            adoptContainer: this.adoptContainer(a.adoptContainer, a.containerName),
            valid: pulumi.unsecret(
                pulumi
                    .all([provisioning, settings, pair ?? true, tlsPair || true, acme ?? true] as pulumi.Input<unknown>[])
                    .apply(() => true),
            ),
        };
    }

    /**
     * The steps, in the order the engine runs them: per node, its container
     * and TLS; with a pair, each node's keepalived; then the config.
     */
    private steps(name: string, inputs: ResolvedInputs): Steps {
        const { connection, runsOn, provisioning, settings, pair } = inputs;
        // The URN's value only: an input that depends on this component waits
        // for all of its children, the step itself included (the SDK expands a
        // component dependency to its children: @pulumi/pulumi
        // runtime/dependsOn.js, getAllTransitivelyReferencedResourceURNs).
        const componentUrn = pulumi.output(new Promise<string>((resolve) => this.urn.apply(resolve)));
        const owner = pulumi.all([componentUrn, runsOn]).apply(([urn, on]) => ownerToken(urn, on));
        // Node a is what a single load balancer is, under the same resource
        // names, so adding a pair (or removing it) leaves it in place.
        const plans: NodePlan[] = [{ node: "a", prefix: name, containerName: provisioning.containerName }];
        if (pair) {
            plans.push({ node: "b", prefix: `${name}-b`, containerName: provisioning.containerName.apply((c) => pairNodeNames(c).b) });
        }
        const nodes = plans.map((plan) => this.nodeSteps(plan, inputs, owner));
        // Each node's container and address, once: the nodes output, and a pair's peers section.
        const nodeList: pulumi.Output<PeerNode[]> = pulumi.all(
            nodes.map((n, i) =>
                pulumi.all([plans[i].containerName, n.address]).apply(([nodeName, address]) => ({ name: nodeName, address })),
            ),
        );
        // A pair's config names both nodes in its peers section: it waits for their addresses.
        const peers: pulumi.Output<PeerNode[]> = pair ? nodeList : pulumi.output([]);
        const renderedConfig = pulumi.secret(pulumi.all([settings, peers]).apply(([s, p]) => renderResolved(s, p)));
        // The certificates HAProxy loads at start (the served one, a pair's peers one): a new one reloads,
        // even when the config text is unchanged.
        const certificates = [inputs.tlsPair, inputs.peersTlsPair].filter((p) => p !== undefined).map((p) => p.apply(([pem]) => pem));
        const certSha256 =
            certificates.length > 0
                ? pulumi.unsecret(pulumi.all(certificates).apply((pems) => sha256Hex(pems.join(""))))
                : pulumi.output("none");
        const before = nodes.flatMap((n) => [n.container, ...[n.tls, n.acme, n.peersTls].filter((step) => step !== undefined)]);

        if (!pair) {
            const [only] = nodes;
            const config = this.step(
                `${name}-config`,
                "config",
                connection,
                pulumi
                    .all([provisioning, renderedConfig, certSha256, settings])
                    .apply(
                        ([p, text, cert, s]) =>
                            configStep({ containerName: p.containerName, config: text, certSha256: cert, openFiles: openFilesNeeded(s) })
                                .stdin,
                    ),
                { dependsOn: before },
                // A replaced container starts without our config: push it again.
                [only.container.id],
            );
            const acmeIssue = this.acmeIssueSteps(plans, nodes, inputs, owner, config).pop();
            return { nodes, nodeList, keepalived: [], config, acmeIssue, renderedConfig };
        }

        const addresses = nodes.map((n) => n.address);
        const keepalived: StepCommand[] = [];
        let vipIsANode: InputError | undefined;
        nodes.forEach((n, i) =>
            keepalived.push(
                this.step(
                    `${plans[i].prefix}-keepalived`,
                    "keepalived",
                    connection,
                    pulumi
                        .all([plans[i].containerName, n.container.id, owner, pair, addresses[i], addresses[1 - i]])
                        .apply(([containerName, containerStep, ownerToken, p, self, peer]) => {
                            // Known only once the container steps printed the nodes' addresses: said on the
                            // component, naming pair.vip, once (both nodes' steps throw the same error, and the
                            // SDK reports an error once: @pulumi/pulumi cmd/run/run.js, isErrorReported).
                            if ([self, peer].includes(vipAddress(p.vip))) {
                                vipIsANode ??= new InputError(
                                    [
                                        `pair.vip must not be a node's own address (got ${shown(p.vip)}): pick a free address on the bridge's subnet, outside its DHCP range`,
                                    ],
                                    this,
                                );
                                throw vipIsANode;
                            }
                            return keepalivedStep({
                                containerName,
                                containerStep,
                                owner: ownerToken,
                                vip: p.vip,
                                keepalivedConf: renderKeepalivedConfig({
                                    node: plans[i].node,
                                    selfAddress: self,
                                    peerAddress: peer,
                                    vip: p.vip,
                                    virtualRouterId: p.virtualRouterId ?? DEFAULT_VIRTUAL_ROUTER_ID,
                                    interface: "eth0",
                                    aliveScript: VRRP_ALIVE_SCRIPT,
                                    notifyScript: VRRP_NOTIFY_SCRIPT,
                                }),
                            }).stdin;
                        }),
                    // The peer's address is an input: both containers first. Node
                    // b's keepalived starts after node a's, which has taken the VIP
                    // alone by then: the first election is node a's, every time (run
                    // side by side, as the engine runs independent steps (a worker
                    // per degree of parallelism: pulumi/pulumi
                    // pkg/resource/deploy/step_executor.go), either node could win
                    // it, and nopreempt keeps the winner).
                    { dependsOn: i === 0 ? before : [...before, keepalived[0]] },
                    [],
                ),
            ),
        );
        // keepalived runs before the first config: the config step reports
        // which node holds the VIP, and applies to the other one first.
        const config = this.step(
            `${name}-config`,
            "pairConfig",
            connection,
            pulumi.all([plans[0].containerName, plans[1].containerName, pair, renderedConfig, certSha256, settings]).apply(
                ([a, b, p, text, cert, s]) =>
                    pairConfigStep({
                        nodes: [a, b],
                        vip: vipAddress(p.vip),
                        config: text,
                        certSha256: cert,
                        openFiles: openFilesNeeded(s),
                    }).stdin,
            ),
            { dependsOn: [...before, ...keepalived] },
            // A replaced container starts without our config: push it again.
            nodes.map((n) => n.container.id),
        );
        const acmeIssue = this.acmeIssueSteps(plans, nodes, inputs, owner, config).pop();
        return { nodes, nodeList, keepalived, config, acmeIssue, renderedConfig };
    }

    /**
     * With tls.acme, once HAProxy routes the challenges: each node's issue
     * step, so its certificate is obtained now rather than at its timer's
     * next run. A pair's nodes order one after the other (node b after node
     * a): the CA's fetches reach the VIP holder, which passes them on to the
     * responder that knows the token.
     */
    private acmeIssueSteps(
        plans: NodePlan[],
        nodes: NodeSteps[],
        inputs: ResolvedInputs,
        owner: pulumi.Output<string>,
        config: StepCommand,
    ): StepCommand[] {
        const issues: StepCommand[] = [];
        if (!inputs.acme) return issues;
        nodes.forEach((n, i) =>
            issues.push(
                this.step(
                    `${plans[i].prefix}-acme-issue`,
                    "acmeIssue",
                    inputs.connection,
                    pulumi
                        .all([
                            plans[i].containerName,
                            owner,
                            inputs.acme as pulumi.Output<AcmeArgs>,
                            acmePaths(inputs.settings),
                            inputs.pair ? n.address : undefined,
                        ])
                        .apply(
                            ([containerName, ownerToken, acme, paths, pairNodeAddress]) =>
                                acmeIssueStep({ containerName, owner: ownerToken, acme, pairNodeAddress, ...paths }).stdin,
                        ),
                    { dependsOn: [config, ...(n.acme ? [n.acme] : []), ...issues] },
                    [n.container.id],
                ),
            ),
        );
        return issues;
    }

    /** One node's container step and, with a certificate, its TLS step. */
    private nodeSteps(plan: NodePlan, inputs: ResolvedInputs, owner: pulumi.Output<string>): NodeSteps {
        const { connection, runsOn, provisioning, imageTrigger, tlsPair, settings, pair, stack, adoptContainer } = inputs;
        const target = pair ? pair.apply((p) => p.targets?.[PAIR_NODES.indexOf(plan.node)]) : pulumi.output(undefined);
        // Only provisioning inputs reach the container step (never the pools),
        // so preview shows exactly when it is replaced.
        const container = this.step(
            `${plan.prefix}-container`,
            "container",
            connection,
            pulumi.all([provisioning, plan.containerName, owner, target]).apply(
                ([p, containerName, ownerToken, t]) =>
                    containerStep({
                        ...p,
                        containerName,
                        owner: ownerToken,
                        stack,
                        adopt: adoptContainer,
                        adminSocketPath: DEFAULT_SETTINGS.adminSocketPath,
                        serverStateFile: DEFAULT_SETTINGS.serverStateFile,
                        ...(t === undefined ? {} : { target: t }),
                    }).stdin,
            ),
            // The provider replaces on a `triggers` change (its SDK registers
            // replaceOnChanges "triggers[*]", @pulumi/command local/command.js);
            // deleteBeforeReplace makes the engine delete the old container,
            // with its old inputs, before creating the new one
            // (pulumi/pulumi pkg/resource/deploy/step_generator.go,
            // continueStepsFromDiff). Another host means the old host's
            // container is deleted first: never left behind unmanaged. A
            // pair's cluster member is not a trigger: a serving node is never
            // rebuilt to move it (the script refuses, and says how to move it).
            { deleteBeforeReplace: true },
            [plan.containerName, imageTrigger, provisioning.profiles.apply((p) => p.join(",")), runsOn],
        );

        // A replaced container needs the certificate again; a new path gets a
        // new file, and the old one is removed once the config no longer names it.
        const tls = tlsPair
            ? this.pemFileStep(
                  `${plan.prefix}-tls`,
                  plan,
                  container,
                  owner,
                  settings.apply((s) => s.tlsCertPath),
                  tlsPair,
                  connection,
              )
            : undefined;
        const address = this.afterChecks(container.stdout).apply((out) => out.trim().split("\n").pop() ?? "");
        let acme: StepCommand | undefined;
        if (inputs.acme) {
            acme = this.step(
                `${plan.prefix}-acme`,
                "acme",
                connection,
                pulumi
                    .all([plan.containerName, owner, inputs.acme, acmePaths(settings), pair ? address : undefined])
                    .apply(
                        ([containerName, ownerToken, acme, paths, pairNodeAddress]) =>
                            acmeStep({ containerName, owner: ownerToken, acme, pairNodeAddress, ...paths }).stdin,
                    ),
                { dependsOn: [container] },
                // A replaced container needs the client and its timer again.
                [container.id],
            );
        }
        const peersTls = inputs.peersTlsPair
            ? this.pemFileStep(
                  `${plan.prefix}-peers-tls`,
                  plan,
                  container,
                  owner,
                  settings.apply((s) => s.peersCertPath),
                  inputs.peersTlsPair,
                  connection,
              )
            : undefined;
        return { container, tls, acme, peersTls, address };
    }

    /**
     * 32 random characters, secret in the state. RandomPassword, not RandomId:
     * RandomId marks none of its outputs secret and its id is the value itself
     * (@pulumi/random randomId.js has no additionalSecretOutputs;
     * randomPassword.js marks "result").
     */
    private randomKey(name: string): pulumi.Output<string> {
        return new random.RandomPassword(name, { length: 32, special: false }, { parent: this }).result;
    }

    /**
     * One PEM bundle (certificate, then key) pushed to a node by the TLS step's
     * script: the served certificate, or a pair's peers one. Secret on stdin;
     * pushed again to a replaced container, and to a new path.
     */
    private pemFileStep(
        name: string,
        plan: NodePlan,
        container: StepCommand,
        owner: pulumi.Output<string>,
        path: pulumi.Output<string>,
        pem: pulumi.Output<[string, string]>,
        connection: ResolvedInputs["connection"],
    ): StepCommand {
        const certPath = pulumi.unsecret(path);
        return this.step(
            name,
            "tls",
            connection,
            pulumi.secret(
                pulumi
                    .all([plan.containerName, certPath, owner, pem])
                    .apply(
                        ([containerName, at, ownerToken, [certificatePem, privateKeyPem]]) =>
                            tlsStep({ containerName, certPath: at, owner: ownerToken, certificatePem, privateKeyPem }).stdin,
                    ),
            ),
            { dependsOn: [container] },
            [container.id, certPath],
        );
    }

    /**
     * Renamed with an alias, containerName unset: the container is named
     * after the component, a name is one of the container step's triggers,
     * so the run rebuilds it under the new name, old one first. Said at
     * preview, since the engine's plan only shows "replace".
     */
    private warnContainerFollowsRename(name: string, containerName: unknown, aliases: pulumi.ComponentResourceOptions["aliases"]): void {
        if (containerName !== undefined) return;
        for (const alias of aliases ?? []) {
            const old = typeof alias === "object" && alias !== null && "name" in alias ? alias.name : undefined;
            if (typeof old !== "string" || old === name) continue;
            pulumi.log.warn(
                `an alias names this component's old name ${old}, and containerName is not set: the container is named after the component, ` +
                    `so if a container ${old} serves, this run replaces it with a new ${name}, deleting ${old} first (a gap, and a new address). ` +
                    `Set containerName: "${old}" to keep it serving.`,
                this,
            );
        }
    }

    /**
     * A pair's peers certificate and key: self-signed, made once per
     * component, secret in the state. Both nodes present it and trust only
     * it (mutual TLS on the peers port). Nothing renews it, hence the
     * century; replacing the key resource is a deliberate rotation.
     */
    private peersCertificate(name: string): pulumi.Output<[string, string]> {
        const key = new tls.PrivateKey(`${name}-peers-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent: this });
        const cert = new tls.SelfSignedCert(
            `${name}-peers-cert`,
            {
                privateKeyPem: key.privateKeyPem,
                subject: { commonName: "veza-haproxy peers" },
                isCaCertificate: true,
                validityPeriodHours: PEERS_CERT_VALIDITY_HOURS,
                allowedUses: ["digital_signature", "cert_signing", "server_auth", "client_auth"],
            },
            { parent: this },
        );
        return pulumi.secret(pulumi.all([cert.certPem, key.privateKeyPem]));
    }

    /** adoptContainer, checked, with its warning on every run while it is true. */
    private adoptContainer(adopt: unknown, containerName: pulumi.Input<string>): boolean {
        if (adopt === undefined || adopt === false) return false;
        if (adopt !== true) {
            throw new pulumi.ResourceError(`adoptContainer must be true or false (got ${shown(adopt)})`, this);
        }
        pulumi
            .output(containerName)
            .apply((c) =>
                pulumi.log.warn(
                    `adoptContainer is set: if container ${c} belongs to another stack, this run takes it over, and this stack's destroy will delete it. ` +
                        "Unset it once the container is this stack's.",
                    this,
                ),
            );
        return true;
    }

    /**
     * Where the steps run: "local", or "ssh:<host>:<port>". Checks the SSH
     * rules (host key) now when the connection is known, else when it resolves.
     */
    private runsOn(connection: ResolvedArgs["connection"], insecure: boolean): pulumi.Input<string> {
        if (connection === undefined) return "local";
        if (insecure) {
            pulumi.log.warn(
                "insecureSkipHostKeyCheck is set: the Incus host's SSH key is not verified, so whoever answers at its address " +
                    "receives root commands, the TLS key and the stats password. Set connection.hostKey (haproxy:incusHost.hostKey) instead.",
                this,
            );
        }
        const describe = (t: SshTarget) => `ssh:${t.host}:${t.port ?? 22}`;
        // The connection is secret as a whole (its private key); host, port and host key are not.
        // A plain connection may still hold Outputs (a bastion from another resource): then it is checked when they resolve.
        const fields = pulumi.Output.isInstance(connection) || connection instanceof Promise ? undefined : sshTargetOf(connection);
        const target: pulumi.Input<SshTarget> =
            fields !== undefined && isPlain(fields) ? fields : pulumi.unsecret(pulumi.output(connection).apply((c) => sshTargetOf(c)));
        if (isPlain(target)) {
            onResource(this, () => checkSshTarget(target as SshTarget, insecure));
            return describe(target as SshTarget);
        }
        return validateNowOrLater(this, target, (t) => checkSshTarget(t, insecure)).apply(describe);
    }

    /**
     * One provisioning step as a command on the Incus host: over SSH when a
     * connection is given, else with the local `incus` CLI. Its scripts are
     * constants; stdin carries every value. `update` re-runs the idempotent
     * create whenever an input changes; a `triggers` change replaces the step.
     */
    /**
     * `value` once every input is known valid; it fails, and never waits,
     * when one is not. No step registers in a run that fails validation
     * (whenever the invalid value resolves): in a run that also changes the
     * image, the container step would otherwise delete the serving container
     * and its config step, and make a bare one (the real engine did:
     * tests/engine/lab-stack.test.ts). Outputs read from steps go through it
     * too: a step that never registers never settles its outputs, and a
     * program waiting on them would never end.
     */
    private afterChecks<T>(value: pulumi.Output<T>): pulumi.Output<T> {
        return pulumi.all([this.inputsValid, value]).apply(([, v]) => v) as pulumi.Output<T>;
    }

    private step(
        name: string,
        kind: StepKind,
        connection: pulumi.Input<command.types.input.remote.ConnectionArgs> | undefined,
        stdin: pulumi.Output<string>,
        opts: pulumi.CustomResourceOptions,
        triggers: pulumi.Input<unknown>[],
    ): StepCommand {
        // stdin comes before triggers in the provider's inputs, which the SDK
        // serializes in order (@pulumi/pulumi runtime/rpc.js,
        // serializeFilteredProperties): an invalid input fails the
        // registration there, before it waits for another step's id.
        const common = { ...stepScripts(kind), stdin: this.afterChecks(stdin), triggers, addPreviousOutputInEnv: false };
        const options = { ...opts, parent: this };
        return connection === undefined
            ? new command.local.Command(name, { ...common, interpreter: ["/bin/sh", "-c"] }, options)
            : new command.remote.Command(name, { ...common, connection }, options);
    }
}
