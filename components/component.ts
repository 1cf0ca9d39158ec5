import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { sha256Hex } from "./identity";
import { renderHaproxyConfig } from "./render";
import { configStep, containerStep, DEFAULT_TLS_CERT_PATH, ScriptStep, tlsStep } from "./scripts";
import { applyDefaults, BackendServer, DEFAULT_SETTINGS, HaproxySettings, StreamHashMode } from "./settings";
import { ProvisioningSettings, validateProvisioning, validateSettings, validateTlsPair } from "./validate";

type Inputs<T> = { [K in keyof T]?: pulumi.Input<T[K]> };
type StepCommand = command.local.Command | command.remote.Command;

/** Certificate and key served on the HTTPS listener. Both are kept as Pulumi secrets. */
export interface HaproxyTlsArgs {
    /** PEM certificate (chain allowed). */
    certificatePem: pulumi.Input<string>;
    /** PEM private key of the certificate. */
    privateKeyPem: pulumi.Input<string>;
}

/**
 * Inputs of HaproxyLoadBalancer: the HaproxySettings fields as Inputs (same
 * defaults, see settings.ts), plus where and how the container is provisioned.
 */
export interface HaproxyLoadBalancerArgs {
    /** api_pool members. Required. */
    apiServers: pulumi.Input<pulumi.Input<BackendServer>[]>;
    /** stream_pool members. Required. */
    streamServers: pulumi.Input<pulumi.Input<BackendServer>[]>;
    /** HTTP listener port. Default: 80. */
    listenHttp?: pulumi.Input<number>;
    /** HTTPS listener port (TLS only). Default: 443. */
    listenHttps?: pulumi.Input<number>;
    /** PEM path inside the container. Default: "" (HTTP only), or /etc/haproxy/certs/veza.pem when `tls` is given. */
    tlsCertPath?: pulumi.Input<string>;
    /** Redirect HTTP to HTTPS when TLS is on. Default: true. */
    httpsRedirect?: pulumi.Input<boolean>;
    /** Default upstream port of api servers. Default: 8080. */
    backendApiPort?: pulumi.Input<number>;
    /** Default upstream port of stream servers. Default: 8082. */
    streamServerPort?: pulumi.Input<number>;
    /** Health-check cadence in ms. Default: 5000. */
    healthCheckIntervalMs?: pulumi.Input<number>;
    /** Failed checks before DOWN. Default: 3. */
    healthCheckFall?: pulumi.Input<number>;
    /** Successful checks before UP. Default: 2. */
    healthCheckRise?: pulumi.Input<number>;
    /** Post-recovery weight ramp in seconds. Default: 30. */
    gracefulDrainSeconds?: pulumi.Input<number>;
    /** Sticky cookie name. Default: "VEZA_SERVERID". */
    stickyCookieName?: pulumi.Input<string>;
    /** HMAC key for cookie values. Default: a random id kept in the stack state. */
    cookieSecret?: pulumi.Input<string>;
    /** api_pool health path. Default: "/api/v1/health". */
    apiHealthPath?: pulumi.Input<string>;
    /** stream_pool health path. Default: "/health". */
    streamHealthPath?: pulumi.Input<string>;
    /** Path prefix routed to stream_pool. Default: "/stream/". */
    streamPathPrefix?: pulumi.Input<string>;
    /** "track" or "uri-whole". Default: "track". */
    streamHashMode?: pulumi.Input<StreamHashMode>;
    /** Loopback stats/metrics port. Default: 9100. */
    statsPort?: pulumi.Input<number>;
    /** Stats user. Default: "admin". */
    statsUser?: pulumi.Input<string>;
    /** Stats password (kept secret). Default: 32 random characters from @pulumi/random. */
    statsPassword?: pulumi.Input<string>;
    /** Global maxconn. Default: 4000. */
    maxConnections?: pulumi.Input<number>;
    /** Client timeout in ms. Default: 30000. */
    timeoutClientMs?: pulumi.Input<number>;
    /** Server timeout in ms. Default: 30000. */
    timeoutServerMs?: pulumi.Input<number>;
    /** Connect timeout in ms. Default: 5000. */
    timeoutConnectMs?: pulumi.Input<number>;
    /** WebSocket tunnel idle timeout in ms. Default: 3600000. */
    timeoutTunnelMs?: pulumi.Input<number>;
    /** Old-worker lifetime after a reload, in seconds. Default: 600. */
    hardStopAfterSeconds?: pulumi.Input<number>;
    /** SSH connection to the Incus host. Default: none, run the local `incus` CLI. */
    connection?: pulumi.Input<command.types.input.remote.ConnectionArgs>;
    /** Incus instance name. Default: "haproxy". */
    containerName?: pulumi.Input<string>;
    /** Incus image. Default: "images:debian/12". */
    image?: pulumi.Input<string>;
    /** Incus profiles. Default: ["default"]. */
    profiles?: pulumi.Input<pulumi.Input<string>[]>;
    /** Certificate + key to push into the container and serve on `listenHttps`. Default: none (HTTP only). */
    tls?: HaproxyTlsArgs;
}

export const COMPONENT_DEFAULTS = {
    containerName: "haproxy",
    image: "images:debian/12",
    profiles: ["default"],
};

/** Returns a new args object with the component-level defaults applied; `args` is never modified. */
export function applyComponentDefaults(args: HaproxyLoadBalancerArgs) {
    return {
        ...args,
        containerName: args.containerName ?? COMPONENT_DEFAULTS.containerName,
        image: args.image ?? COMPONENT_DEFAULTS.image,
        profiles: args.profiles ?? COMPONENT_DEFAULTS.profiles,
        // A pushed certificate needs a place: the default path unless one is given.
        tlsCertPath: args.tls
            ? pulumi.output(args.tlsCertPath ?? "").apply((p) => p || DEFAULT_TLS_CERT_PATH)
            : args.tlsCertPath,
    };
}

/** Fields of HaproxyLoadBalancerArgs that are passed straight to the renderer. */
const RENDER_FIELDS = [
    "apiServers", "streamServers", "listenHttp", "listenHttps", "tlsCertPath", "httpsRedirect",
    "backendApiPort", "streamServerPort", "healthCheckIntervalMs", "healthCheckFall", "healthCheckRise",
    "gracefulDrainSeconds", "stickyCookieName", "apiHealthPath", "streamHealthPath", "streamPathPrefix",
    "streamHashMode", "statsPort", "statsUser", "maxConnections", "timeoutClientMs", "timeoutServerMs",
    "timeoutConnectMs", "timeoutTunnelMs", "hardStopAfterSeconds",
] as const;

function isPlain(value: unknown): boolean {
    if (pulumi.Output.isInstance(value) || value instanceof Promise) return false;
    if (Array.isArray(value)) return value.every(isPlain);
    if (typeof value === "object" && value !== null) return Object.values(value).every(isPlain);
    return true;
}

/**
 * Fails the constructor, naming the field, when the inputs already known are
 * invalid: a bad stack config stops `pulumi preview` before any resource is
 * declared. Inputs that come from other resources are checked by the gate in
 * the constructor instead, still before any command runs.
 */
function validatePlainInputs(a: ReturnType<typeof applyComponentDefaults>): void {
    const settings: Record<string, unknown> = {};
    for (const field of [...RENDER_FIELDS, "statsPassword"] as const) {
        const value = a[field];
        const missingPassword = field === "statsPassword" && value === undefined;
        if (isPlain(value) && !missingPassword) {
            settings[field] = value;
        } else if (field in LATE_PLACEHOLDERS) {
            // No cross-field rule reads these, so a stand-in cannot hide or
            // invent a problem elsewhere; the real value meets the gate.
            settings[field] = LATE_PLACEHOLDERS[field as keyof typeof LATE_PLACEHOLDERS];
        } else {
            return;
        }
    }
    validateSettings(applyDefaults(settings as unknown as HaproxySettings));
    if (isPlain(a.containerName) && isPlain(a.image) && isPlain(a.profiles)) {
        validateProvisioning({ containerName: a.containerName, image: a.image, profiles: a.profiles } as ProvisioningSettings);
    }
}

/** Valid stand-ins for inputs only known later (a secret password, pools from other resources). */
const LATE_PLACEHOLDERS = {
    statsPassword: "placeholder-password",
    apiServers: [{ name: "placeholder", address: "placeholder" }],
    streamServers: [{ name: "placeholder", address: "placeholder" }],
};

/**
 * The HAProxy load balancer in front of the Veza platform: one Incus
 * container, provisioned and reconfigured through commands on the Incus host.
 * Pool membership changes only re-run the config step (validate + hitless
 * reload); the container is left alone.
 */
export class HaproxyLoadBalancer extends pulumi.ComponentResource {
    /** Incus instance name. */
    public readonly containerName: pulumi.Output<string>;
    /** The container's IPv4 address on the Incus bridge. */
    public readonly address: pulumi.Output<string>;
    /** Where the platform is served over HTTP. */
    public readonly httpUrl: pulumi.Output<string>;
    /** Where the platform is served over HTTPS; "" when TLS is off. */
    public readonly httpsUrl: pulumi.Output<string>;
    /** Stats UI, loopback inside the container (reach it with `ssh -L` or `incus exec`). */
    public readonly statsUrl: pulumi.Output<string>;
    /** Prometheus endpoint, loopback inside the container. */
    public readonly metricsUrl: pulumi.Output<string>;
    /** SHA-256 of the rendered haproxy.cfg: changes exactly when the config does. */
    public readonly configSha256: pulumi.Output<string>;
    /** The rendered haproxy.cfg (secret: it holds the stats password). */
    public readonly renderedConfig: pulumi.Output<string>;
    /** Stats UI password (secret). */
    public readonly statsPassword: pulumi.Output<string>;
    /** The container step; depend on it to run after the container exists. */
    public readonly containerCommand: StepCommand;
    /** The config step; depend on it to run after HAProxy serves the current config. */
    public readonly configCommand: StepCommand;
    /** The TLS step, when a certificate is pushed. */
    public readonly tlsCommand?: StepCommand;

    constructor(name: string, args: HaproxyLoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("veza:infra:HaproxyLoadBalancer", name, {}, opts);
        const a = applyComponentDefaults(args);
        validatePlainInputs(a);

        const statsPassword = pulumi.secret(a.statsPassword ??
            new random.RandomPassword(`${name}-stats-password`, { length: 32, special: false }, { parent: this }).result);
        const cookieSecret = a.cookieSecret ??
            new random.RandomId(`${name}-cookie-secret`, { byteLength: 16 }, { parent: this }).hex;

        const renderInputs: Inputs<HaproxySettings> = { statsPassword, cookieSecret };
        for (const field of RENDER_FIELDS) (renderInputs as Record<string, unknown>)[field] = a[field];
        // Inputs are resolved once; everything below derives from these plain values.
        const settings = pulumi.all(renderInputs).apply((s) => applyDefaults(s as unknown as HaproxySettings));
        const renderedConfig = pulumi.secret(settings.apply(renderHaproxyConfig));

        const provisioning = pulumi.all([a.containerName, a.image, a.profiles])
            .apply(([containerName, image, profiles]): ProvisioningSettings => ({ containerName, image, profiles }));
        // Nothing may reach a container until every input is valid: the
        // container step waits on this gate, which fails on a bad setting.
        const inputsValid = pulumi.unsecret(pulumi.all([renderedConfig, provisioning]).apply(([, p]) => {
            validateProvisioning(p);
            return true;
        }));

        const container = this.scriptCommand(`${name}-container`, a.connection,
            pulumi.all([inputsValid, provisioning]).apply(([, p]) => containerStep({
                ...p,
                adminSocketPath: DEFAULT_SETTINGS.adminSocketPath,
                serverStateFile: DEFAULT_SETTINGS.serverStateFile,
            })),
            {
                // A new name, image or profile set means a new container; the old one must go first.
                replaceOnChanges: ["environment.VEZA_CONTAINER", "environment.VEZA_IMAGE", "environment.VEZA_PROFILES"],
                deleteBeforeReplace: true,
            });

        let certSha256: pulumi.Output<string> = pulumi.output("none");
        const configDependsOn: pulumi.Resource[] = [container];
        if (a.tls) {
            const tls = a.tls;
            const tlsCommand = this.scriptCommand(`${name}-tls`, a.connection,
                pulumi.all([a.containerName, a.tlsCertPath, pulumi.secret(tls.certificatePem), pulumi.secret(tls.privateKeyPem)])
                    .apply(([containerName, certPath, certificatePem, privateKeyPem]) => {
                        validateTlsPair(certificatePem, privateKeyPem);
                        return tlsStep({ containerName, certPath: certPath as string, certificatePem, privateKeyPem });
                    }),
                { dependsOn: [container] }, [container.id]);
            certSha256 = pulumi.unsecret(pulumi.output(tls.certificatePem).apply(sha256Hex));
            configDependsOn.push(tlsCommand);
            this.tlsCommand = tlsCommand;
        }

        this.configCommand = this.scriptCommand(`${name}-config`, a.connection,
            pulumi.all([a.containerName, renderedConfig, certSha256]).apply(([containerName, config, cert]) =>
                configStep({ containerName, config, certSha256: cert })),
            { dependsOn: configDependsOn },
            // A replaced container starts without our config: push it again.
            [container.id]);

        this.containerCommand = container;
        this.containerName = pulumi.output(a.containerName);
        this.address = container.stdout.apply((out) => out.trim().split("\n").pop() ?? "");
        // `settings` is secret (it holds the password); the listeners are not.
        const listeners = pulumi.unsecret(settings.apply((s) => ({
            http: s.listenHttp, https: s.tlsCertPath === "" ? undefined : s.listenHttps, stats: `${s.statsBindAddress}:${s.statsPort}`,
        })));
        this.httpUrl = pulumi.all([this.address, listeners]).apply(([address, l]) =>
            l.http === 80 ? `http://${address}/` : `http://${address}:${l.http}/`);
        this.httpsUrl = pulumi.all([this.address, listeners]).apply(([address, l]) =>
            l.https === undefined ? "" : l.https === 443 ? `https://${address}/` : `https://${address}:${l.https}/`);
        this.statsUrl = listeners.apply((l) => `http://${l.stats}/stats`);
        this.metricsUrl = listeners.apply((l) => `http://${l.stats}/metrics`);
        this.configSha256 = pulumi.unsecret(renderedConfig.apply(sha256Hex));
        this.renderedConfig = renderedConfig;
        this.statsPassword = statsPassword;

        this.registerOutputs({
            containerName: this.containerName,
            address: this.address,
            httpUrl: this.httpUrl,
            httpsUrl: this.httpsUrl,
            statsUrl: this.statsUrl,
            metricsUrl: this.metricsUrl,
            configSha256: this.configSha256,
            renderedConfig: this.renderedConfig,
            statsPassword: this.statsPassword,
        });
    }

    /**
     * One provisioning step as a command on the Incus host: over SSH when a
     * connection is given, else with the local `incus` CLI. `update` re-runs
     * the (idempotent) create script whenever an input changes.
     */
    private scriptCommand(
        name: string,
        connection: pulumi.Input<command.types.input.remote.ConnectionArgs> | undefined,
        step: pulumi.Output<ScriptStep>,
        opts: pulumi.CustomResourceOptions,
        triggers?: pulumi.Input<unknown>[],
    ): StepCommand {
        // Only stdin carries secrets. The scripts are constant text and the
        // environment holds names, paths and hashes: kept readable so that
        // `pulumi preview` shows why a step re-runs (VEZA_CONFIG_SHA256).
        const common = {
            create: pulumi.unsecret(step.create),
            update: pulumi.unsecret(step.update),
            delete: pulumi.unsecret(step.apply((s) => s.delete ?? "")),
            environment: pulumi.unsecret(step.environment),
            stdin: step.apply((s) => s.stdin ?? ""),
            triggers,
            addPreviousOutputInEnv: false,
        };
        const options = { ...opts, parent: this };
        return connection === undefined
            ? new command.local.Command(name, { ...common, interpreter: ["/bin/sh", "-c"] }, options)
            : new command.remote.Command(name, { ...common, connection }, options);
    }
}
