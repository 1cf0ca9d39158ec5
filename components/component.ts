import * as pulumi from "@pulumi/pulumi";
import { createHmac } from "crypto";
import { HaproxyLoadBalancerArgs } from "./args";
import { resolveInputs } from "./inputs";
import { vipAddress } from "./pair";
import { afterChecks, certificateReport, createSteps, StepCommand } from "./steps";

export { HaproxyAcmeTlsArgs, HaproxyLoadBalancerArgs, HaproxyTlsArgs } from "./args";
export { InputError } from "./input-checks";

/** Keyed fingerprint of the rendered config: readable, changes exactly when the config does, and cannot be recomputed without the key. */
function fingerprint(key: string, config: string): string {
    return createHmac("sha256", key).update(config, "utf8").digest("hex");
}

/**
 * The HAProxy load balancer in front of the Veza platform: one Incus
 * container (or a pair's two), provisioned and reconfigured through commands
 * on the Incus host. Pool membership changes only re-run the config step
 * (validate + hitless reload); the container is left alone. It reads
 * resolve → validate (inputs.ts) → render → steps (steps.ts) → outputs.
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
    constructor(name: string, args: HaproxyLoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("veza:infra:HaproxyLoadBalancer", name, {}, opts);
        this.warnContainerFollowsRename(name, args.containerName, opts?.aliases);
        const inputs = resolveInputs(this, name, args);
        const steps = createSteps(this, name, inputs);
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
        this.certificate = steps.acmeIssue
            ? afterChecks(inputs.valid, steps.acmeIssue.stdout).apply(certificateReport)
            : pulumi.output(undefined);
        this.containerName = inputs.provisioning.containerName;
        this.nodes = steps.nodeList;
        const pair = inputs.pair;
        this.vip = pair ? pair.apply((p) => p.vip) : pulumi.output("");
        this.vipNode = pair
            ? afterChecks(inputs.valid, steps.config.stdout).apply((out) => /^vip_node=(.*)$/m.exec(out)?.[1] ?? "")
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
}
