// Stack wiring for index.ts: reads the `haproxy:*` stack config into the
// component's args. Not part of the library: a larger stack passes args itself.
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { AcmeArgs, DEFAULT_SETTINGS, HaproxyLoadBalancerArgs, SettingsError } from "./components";
import { COMPONENT_DEFAULTS } from "./components/args";
import { Checker, shown } from "./components/checker";
import { SETTINGS } from "./components/settings";

/** SSH access to the Incus host; the private key is read separately as a secret. */
export interface IncusHostConfig {
    host: string;
    user?: string;
    port?: number;
    /** The host's SSH public key line (e.g. /etc/ssh/ssh_host_ed25519_key.pub). Required unless insecureSkipHostKeyCheck. */
    hostKey?: string;
    /** Run without verifying the host key (warned on every run). Default: false. */
    insecureSkipHostKeyCheck?: boolean;
}

const INCUS_HOST_KEYS = ["host", "user", "port", "hostKey", "insecureSkipHostKeyCheck"] as const;

type Kind = "number" | "string" | "boolean" | "object" | "secret";

/** One `haproxy:*` key: how it is read and its row in docs/configuration.md's config table (default shown, meaning). */
interface StackKey {
    key: string;
    kind: Kind;
    shownDefault: string;
    doc: string;
    /** Read straight into the component arg of the same name (the certificate and SSH keys are assembled below instead). */
    arg?: true;
}

const code = (value: unknown) => (value === "" ? '`""`' : `\`${typeof value === "string" ? value : JSON.stringify(value)}\``);

/**
 * Every key the stack reads, in the config table's order (docs/configuration.md): each haproxy.cfg setting
 * that has a stack kind (settings.ts), then where the container runs and
 * where its certificate comes from.
 */
export const STACK_KEYS: readonly StackKey[] = [
    ...Object.entries(SETTINGS).flatMap(([key, spec]) =>
        "stack" in spec && spec.stack
            ? [
                  {
                      key,
                      kind: spec.stack,
                      shownDefault:
                          "shownDefault" in spec && spec.shownDefault
                              ? spec.shownDefault
                              : code(DEFAULT_SETTINGS[key as keyof typeof DEFAULT_SETTINGS]),
                      doc: spec.doc,
                      arg: true as const,
                  },
              ]
            : [],
    ),
    {
        key: "containerName",
        arg: true,
        kind: "string",
        shownDefault: "the component's name (`haproxy` in this stack)",
        doc: "Incus instance name",
    },
    {
        key: "image",
        arg: true,
        kind: "string",
        shownDefault: code(COMPONENT_DEFAULTS.image),
        doc: "Incus image (the lab uses `veza-debian13`)",
    },
    {
        key: "adoptContainer",
        arg: true,
        kind: "boolean",
        shownDefault: "`false`",
        doc: "take over the container even when another stack recorded it as its own (refused otherwise, naming both stacks); warned on every run while true",
    },
    { key: "profiles", arg: true, kind: "object", shownDefault: code(COMPONENT_DEFAULTS.profiles), doc: "Incus profiles" },
    {
        key: "pair",
        arg: true,
        kind: "object",
        shownDefault: "none (one container)",
        doc: '`{ vip: "198.18.0.250/24", targets?: ["member-1", "member-2"], virtualRouterId?: 51 }`: two nodes and a floating VIP (docs/pair.md)',
    },
    { key: "labTls", kind: "boolean", shownDefault: "`false`", doc: "make a self-signed lab certificate with `@pulumi/tls`" },
    { key: "tlsCertificatePem", kind: "secret", shownDefault: "none", doc: "certificate PEM (secret); needs `tlsPrivateKeyPem`" },
    { key: "tlsPrivateKeyPem", kind: "secret", shownDefault: "none", doc: "its private key (secret)" },
    {
        key: "acme",
        kind: "object",
        shownDefault: "none",
        doc: '`{ domains: ["veza.example.com"], email, directoryUrl?, caBundlePem? }`: a certificate from Let\'s Encrypt (or another ACME CA), obtained and renewed in the container (docs/certificates.md); not with `tlsCertificatePem` or `labTls`',
    },
    {
        key: "incusHost",
        kind: "object",
        shownDefault: "none",
        doc: "`{ host, user?, port?, hostKey, insecureSkipHostKeyCheck? }`: run the steps over SSH instead of the local `incus`; `hostKey` is the host's public key line, required unless `insecureSkipHostKeyCheck: true`",
    },
    { key: "incusSshPrivateKey", kind: "secret", shownDefault: "none", doc: "SSH key for `incusHost` (secret)" },
];

/** The config table rows of docs/configuration.md, made from STACK_KEYS. */
export function configTableRows(): string[] {
    return STACK_KEYS.map((k) => `| \`haproxy:${k.key}\` | ${k.shownDefault} | ${k.doc} |`);
}

/** Every `haproxy:*` key set in the stack must be one the program reads: a typo would silently keep a default. */
function checkStackKeys(config: pulumi.Config): void {
    const prefix = `${config.name}:`;
    const known = STACK_KEYS.map((k) => `${prefix}${k.key}`);
    const set = Object.keys(pulumi.runtime.allConfig()).filter((key) => key.startsWith(prefix));
    const c = new Checker();
    c.knownKeys("", Object.fromEntries(set.map((key) => [key, true])), known);
    if (c.problems.length > 0) throw new SettingsError(c.problems);
}

/** A whole number, read strictly: "80abc" and "8.5e1" are refused, not read as 80 and 85. */
function wholeNumber(config: pulumi.Config, key: string): number | undefined {
    const text = config.get(key);
    if (text === undefined) return undefined;
    if (!/^(0|[1-9][0-9]{0,8})$/.test(text)) {
        throw new SettingsError([`haproxy:${key} must be a whole number written in decimal digits, such as 80 (got ${shown(text)})`]);
    }
    return Number(text);
}

function read(config: pulumi.Config, key: string, kind: Kind): unknown {
    switch (kind) {
        case "number":
            return wholeNumber(config, key);
        case "string":
            return config.get(key);
        case "boolean":
            return config.getBoolean(key);
        case "object":
            return config.getObject(key);
        case "secret":
            return config.getSecret(key);
    }
}

/**
 * Reads the `haproxy:*` stack config into component args. Wrong types fail
 * here, naming the key; values are validated by the component before anything
 * reaches a container. A lab certificate is a LabCertificate component
 * (under `parent` when given).
 */
export function readStackConfig(config: pulumi.Config, name: string, parent?: pulumi.Resource): HaproxyLoadBalancerArgs {
    checkStackKeys(config);
    const args: Record<string, unknown> = {};
    for (const { key, kind } of STACK_KEYS.filter((k) => k.arg)) args[key] = read(config, key, kind);
    args.apiServers = config.requireObject("apiServers");
    args.streamServers = config.requireObject("streamServers");

    const incusHost = config.getObject<IncusHostConfig>("incusHost");
    if (incusHost) {
        const c = new Checker();
        c.knownKeys("haproxy:incusHost", incusHost, INCUS_HOST_KEYS);
        if (c.problems.length > 0) throw new SettingsError(c.problems);
        args.connection = {
            host: incusHost.host,
            user: incusHost.user ?? "root",
            port: incusHost.port ?? 22,
            hostKey: incusHost.hostKey,
            privateKey: config.requireSecret("incusSshPrivateKey"),
        };
        args.insecureSkipHostKeyCheck = incusHost.insecureSkipHostKeyCheck;
    }

    const certificatePem = config.getSecret("tlsCertificatePem");
    const privateKeyPem = config.getSecret("tlsPrivateKeyPem");
    const labTls = config.getBoolean("labTls") ?? false;
    if ((certificatePem === undefined) !== (privateKeyPem === undefined)) {
        throw new SettingsError([
            "haproxy:tlsCertificatePem and haproxy:tlsPrivateKeyPem go together: set both (`pulumi config set --secret`) or neither",
        ]);
    }
    const acme = config.getObject<AcmeArgs>("acme");
    if (acme !== undefined) {
        if (certificatePem || labTls) {
            throw new SettingsError([
                "haproxy:acme cannot be set with haproxy:tlsCertificatePem or haproxy:labTls: choose where the certificate comes from",
            ]);
        }
        args.tls = { acme };
    } else if (certificatePem && privateKeyPem) {
        if (labTls) throw new SettingsError(["haproxy:labTls must be false when haproxy:tlsCertificatePem is set: choose one certificate"]);
        args.tls = { certificatePem, privateKeyPem };
    } else if (labTls) {
        const lab = new LabCertificate(`${name}-lab-tls`, (args.containerName as string | undefined) ?? name, { parent });
        args.tls = { certificatePem: lab.certificatePem, privateKeyPem: lab.privateKeyPem };
    }
    return args as unknown as HaproxyLoadBalancerArgs;
}

/**
 * A self-signed certificate for the lab (browsers will warn), made and kept
 * in the stack by @pulumi/tls. Its key and certificate are its children; the
 * aliases keep stacks made before it existed (key and certificate at the
 * stack's root) from making a new key.
 */
export class LabCertificate extends pulumi.ComponentResource {
    public readonly certificatePem: pulumi.Output<string>;
    public readonly privateKeyPem: pulumi.Output<string>;

    constructor(name: string, containerName: string, opts?: pulumi.ComponentResourceOptions) {
        super("veza:infra:LabCertificate", name, {}, opts);
        const fromRoot = { aliases: [{ parent: pulumi.rootStackResource }], parent: this };
        const key = new tls.PrivateKey(`${name}-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, fromRoot);
        const cert = new tls.SelfSignedCert(
            `${name}-cert`,
            {
                privateKeyPem: key.privateKeyPem,
                subject: { commonName: `${containerName}.lxd`, organization: "Veza lab" },
                dnsNames: [`${containerName}.lxd`, "localhost"],
                validityPeriodHours: 24 * 365,
                allowedUses: ["key_encipherment", "digital_signature", "server_auth"],
            },
            fromRoot,
        );
        this.certificatePem = cert.certPem;
        this.privateKeyPem = key.privateKeyPem;
        this.registerOutputs({ certificatePem: this.certificatePem });
    }
}
