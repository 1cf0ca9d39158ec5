import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { AcmeArgs } from "./acme";
import { VRRP_ALIVE_SCRIPT, VRRP_NOTIFY_SCRIPT } from "./container-paths";
import { sha256Hex } from "./identity";
import { InputError } from "./input-checks";
import { ResolvedInputs } from "./inputs";
import { DEFAULT_VIRTUAL_ROUTER_ID, PAIR_NODES, PairNode, pairNodeNames, renderKeepalivedConfig, vipAddress } from "./pair";
import { openFilesNeeded, PeerNode, renderResolved } from "./render";
import {
    acmeIssueStep,
    acmeStep,
    configStep,
    containerStep,
    keepalivedStep,
    ownerToken,
    pairConfigStep,
    stepScripts,
    StepKind,
    tlsStep,
} from "./scripts";
import { DEFAULT_SETTINGS, ResolvedSettings } from "./settings";
import { shown } from "./validate";

/*
 * render → steps: the component's children, the commands that provision
 * and configure its containers on the Incus host, each with its inputs on
 * stdin and its order given by dependsOn.
 */

export type StepCommand = command.local.Command | command.remote.Command;

/** One node to build: node a is the component's container, node b its pair partner. */
interface NodePlan {
    node: PairNode;
    /** Its steps' resource names start with this. */
    prefix: string;
    containerName: pulumi.Output<string>;
}

export interface NodeSteps {
    container: StepCommand;
    tls?: StepCommand;
    /** With tls.acme: the ACME client, its settings, the renewal timer and a placeholder certificate. */
    acme?: StepCommand;
    /** With a pair: the peers certificate and key, for mutual TLS between the nodes. */
    peersTls?: StepCommand;
    /** What the container step printed: its IPv4 on the bridge. */
    address: pulumi.Output<string>;
}

export interface Steps {
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
export function afterChecks<T>(valid: pulumi.Output<boolean>, value: pulumi.Output<T>): pulumi.Output<T> {
    return pulumi.all([valid, value]).apply(([, v]) => v) as pulumi.Output<T>;
}

/** The step graph of one component: its children, parented to it. */
class StepGraph {
    constructor(
        private readonly parent: pulumi.ComponentResource,
        private readonly inputs: ResolvedInputs,
    ) {}

    /**
     * The steps, in the order the engine runs them: per node, its container
     * and TLS; with a pair, each node's keepalived; then the config.
     */
    steps(name: string): Steps {
        const inputs = this.inputs;
        const { connection, runsOn, provisioning, settings, pair } = inputs;
        // The URN's value only: an input that depends on this component waits
        // for all of its children, the step itself included (the SDK expands a
        // component dependency to its children: @pulumi/pulumi
        // runtime/dependsOn.js, getAllTransitivelyReferencedResourceURNs).
        const componentUrn = pulumi.output(new Promise<string>((resolve) => this.parent.urn.apply(resolve)));
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
                                    this.parent,
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
        const address = afterChecks(this.inputs.valid, container.stdout).apply((out) => out.trim().split("\n").pop() ?? "");
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
     * One provisioning step as a command on the Incus host: over SSH when a
     * connection is given, else with the local `incus` CLI. Its scripts are
     * constants; stdin carries every value. `update` re-runs the idempotent
     * create whenever an input changes; a `triggers` change replaces the step.
     */
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
        const common = { ...stepScripts(kind), stdin: afterChecks(this.inputs.valid, stdin), triggers, addPreviousOutputInEnv: false };
        const options = { ...opts, parent: this.parent };
        return connection === undefined
            ? new command.local.Command(name, { ...common, interpreter: ["/bin/sh", "-c"] }, options)
            : new command.remote.Command(name, { ...common, connection }, options);
    }
}

/** Every step of a component named `name`, from its checked inputs, in the order the engine runs them. */
export function createSteps(parent: pulumi.ComponentResource, name: string, inputs: ResolvedInputs): Steps {
    return new StepGraph(parent, inputs).steps(name);
}
