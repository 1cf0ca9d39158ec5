import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { HaproxyLoadBalancerArgs } from "./component";
import { BackendServer } from "./settings";
import { Checker, SettingsError, shown } from "./validate";

/** Stack config keys (namespace `haproxy`) that map one-to-one onto numeric settings. */
const NUMBER_KEYS = [
    "listenHttp", "listenHttps", "backendApiPort", "streamServerPort", "healthCheckIntervalMs",
    "healthCheckFall", "healthCheckRise", "gracefulDrainSeconds", "statsPort", "maxConnections",
    "timeoutClientMs", "timeoutServerMs", "timeoutConnectMs", "timeoutTunnelMs", "hardStopAfterSeconds",
] as const;
const STRING_KEYS = [
    "tlsCertPath", "stickyCookieName", "apiHealthPath", "streamHealthPath", "streamPathPrefix",
    "statsUser", "containerName", "image",
] as const;

/** Every `haproxy:*` key the stack reads: the README's config table lists exactly these. */
export const STACK_CONFIG_KEYS: readonly string[] = [
    "apiServers", "streamServers", ...NUMBER_KEYS, ...STRING_KEYS, "httpsRedirect", "streamHashMode", "statsPassword",
    "profiles", "labTls", "tlsCertificatePem", "tlsPrivateKeyPem", "incusHost", "incusSshPrivateKey",
];

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

/** Every `haproxy:*` key set in the stack must be one the program reads: a typo would silently keep a default. */
function checkStackKeys(config: pulumi.Config): void {
    const prefix = `${config.name}:`;
    const c = new Checker();
    for (const key of Object.keys(pulumi.runtime.allConfig())) {
        if (!key.startsWith(prefix)) continue;
        c.knownKeys("", { [`${prefix}${key.slice(prefix.length)}`]: true }, STACK_CONFIG_KEYS.map((k) => `${prefix}${k}`));
    }
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

/**
 * Reads the `haproxy:*` stack config into component args. Wrong types fail
 * here, naming the key; values are validated by the component before anything
 * reaches a container.
 */
export function readStackConfig(config: pulumi.Config, name: string, parent?: pulumi.Resource): HaproxyLoadBalancerArgs {
    checkStackKeys(config);
    const args: Record<string, unknown> = {
        apiServers: config.requireObject<BackendServer[]>("apiServers"),
        streamServers: config.requireObject<BackendServer[]>("streamServers"),
        profiles: config.getObject<string[]>("profiles"),
        httpsRedirect: config.getBoolean("httpsRedirect"),
        streamHashMode: config.get("streamHashMode"),
        statsPassword: config.getSecret("statsPassword"),
    };
    for (const key of NUMBER_KEYS) args[key] = wholeNumber(config, key);
    for (const key of STRING_KEYS) args[key] = config.get(key);

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
    if (certificatePem && privateKeyPem) {
        if (labTls) throw new SettingsError(["haproxy:labTls must be false when haproxy:tlsCertificatePem is set: choose one certificate"]);
        args.tls = { certificatePem, privateKeyPem };
    } else if (labTls) {
        args.tls = labCertificate(name, (args.containerName as string | undefined) ?? name, parent);
    }
    return args as unknown as HaproxyLoadBalancerArgs;
}

/** A self-signed certificate for the lab (browsers will warn): made and kept in the stack by @pulumi/tls. */
export function labCertificate(name: string, containerName: string, parent?: pulumi.Resource) {
    const key = new tls.PrivateKey(`${name}-lab-tls-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent });
    const cert = new tls.SelfSignedCert(`${name}-lab-tls-cert`, {
        privateKeyPem: key.privateKeyPem,
        subject: { commonName: `${containerName}.lxd`, organization: "Veza lab" },
        dnsNames: [`${containerName}.lxd`, "localhost"],
        validityPeriodHours: 24 * 365,
        allowedUses: ["key_encipherment", "digital_signature", "server_auth"],
    }, { parent });
    return { certificatePem: cert.certPem, privateKeyPem: key.privateKeyPem };
}

