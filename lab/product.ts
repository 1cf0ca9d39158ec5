/**
 * Runs the product's own provisioning steps against the lab: builds
 * HaproxyLoadBalancer under `pulumi.runtime.setMocks`, captures the command
 * resources it registers (`<name>-container`, `<name>-tls`, `<name>-config`)
 * and executes their scripts exactly as @pulumi/command's local provider
 * would: `/bin/sh -c <script>` with the registered stdin (header + payload).
 *
 * The mocks must be installed ONCE per test file, before the component module
 * is loaded: call `installProductMocks()` at the top of the test file, then
 * `buildSteps()` as often as needed: each build is one program run (one
 * `pulumi up`), so the same component name may be built again.
 */
import { spawn } from "node:child_process";
import { isDeepStrictEqual } from "node:util";
import { deepUnwrap, installMocks, parseStepStdin, registeredAll, Registered, setMockAddress, withHeader } from "../tests/support";
import type { HaproxyLoadBalancerArgs } from "../components";

let registered: Registered[] | undefined;

/** Install the Pulumi mocks (idempotent: the mock monitor is installed once per module registry). */
export function installProductMocks(): Registered[] {
    if (!registered) registered = installMocks();
    return registered;
}

/** One registered command resource, inputs unwrapped. */
export interface StepCommand {
    /** Registered resource name, e.g. `lab1-container`. */
    resource: string;
    type: string;
    create: string;
    update: string;
    delete: string;
    stdin: string;
    /** The veza-step/1 header fields at the start of stdin. */
    header: Record<string, string>;
    /** What follows the header on stdin (a config, a certificate bundle). */
    payload: string;
    interpreter: string[];
    /** Every registered input, unwrapped (for "would Pulumi run this step?" comparisons). */
    inputs: Record<string, unknown>;
}

export interface ProductSteps {
    container: StepCommand;
    tls?: StepCommand;
    config: StepCommand;
    /** With tls.acme: the ACME step (before the config) and the issue step (after it); with a pair, node a's. */
    acme?: { setup: StepCommand; issue: StepCommand };
    /** With tls.acme on a pair: node b's. */
    acmeB?: { setup: StepCommand; issue: StepCommand };
    /** With a pair: node a's peers certificate step (node b's is in nodeB). */
    peersTls?: StepCommand;
    /** With a pair: node b's container, TLS and peers certificate steps, and each node's keepalived step (a, b). */
    nodeB?: { container: StepCommand; tls?: StepCommand; peersTls?: StepCommand };
    keepalived?: StepCommand[];
}

function toStep(r: Registered): StepCommand {
    const inputs = deepUnwrap(r.inputs) as Record<string, unknown>;
    const str = (k: string): string => (typeof inputs[k] === "string" ? (inputs[k] as string) : "");
    return {
        resource: r.name,
        type: r.type,
        create: str("create"),
        update: str("update"),
        delete: str("delete"),
        stdin: str("stdin"),
        ...parseStepStdin(str("stdin")),
        interpreter: (inputs.interpreter ?? []) as string[],
        inputs,
    };
}

/**
 * Build the component under mocks as `componentName`, as one program run
 * would, and return the steps that build registered.
 */
export async function buildSteps(
    componentName: string,
    args: HaproxyLoadBalancerArgs,
    opts: { type?: string } = {},
): Promise<ProductSteps> {
    const reg = installProductMocks();
    const start = reg.length;
    // Loaded lazily, after the mocks are installed, as the SDK requires.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { HaproxyLoadBalancer } = require("../components") as typeof import("../components");
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    (require("../components/claims") as typeof import("../components/claims")).forgetClaims();
    const lb = new HaproxyLoadBalancer(componentName, args);
    await registeredAll([
        lb.configCommand,
        ...lb.nodeCommands.flatMap((n) => [
            n.container,
            ...(n.tls ? [n.tls] : []),
            ...(n.acme ? [n.acme] : []),
            ...(n.keepalived ? [n.keepalived] : []),
        ]),
        ...(lb.acmeIssueCommand ? [lb.acmeIssueCommand] : []),
    ]);
    const find = (suffix: string): Registered | undefined => {
        const found = reg.slice(start).filter((r) => r.name === `${componentName}-${suffix}`);
        if (found.length > 1) throw new Error(`${found.length} resources named ${componentName}-${suffix}`);
        return found[0];
    };
    const container = find("container");
    const config = find("config");
    if (!container || !config) throw new Error(`component ${componentName} did not register its container and config steps`);
    const tls = find("tls");
    const steps: ProductSteps = { container: toStep(container), config: toStep(config) };
    if (tls) steps.tls = toStep(tls);
    const acme = find("acme");
    const acmeIssue = find("acme-issue");
    if (acme && acmeIssue) steps.acme = { setup: toStep(acme), issue: toStep(acmeIssue) };
    const acmeB = find("b-acme");
    const acmeIssueB = find("b-acme-issue");
    if (acmeB && acmeIssueB) steps.acmeB = { setup: toStep(acmeB), issue: toStep(acmeIssueB) };
    const containerB = find("b-container");
    if (containerB) {
        const tlsB = find("b-tls");
        const peersTls = [find("peers-tls"), find("b-peers-tls")];
        if (!peersTls[0] || !peersTls[1]) throw new Error(`pair ${componentName} did not register both peers certificate steps`);
        steps.peersTls = toStep(peersTls[0]);
        steps.nodeB = { container: toStep(containerB), ...(tlsB ? { tls: toStep(tlsB) } : {}), peersTls: toStep(peersTls[1]) };
        const keepalived = [find("keepalived"), find("b-keepalived")];
        if (!keepalived[0] || !keepalived[1]) throw new Error(`pair ${componentName} did not register both keepalived steps`);
        steps.keepalived = keepalived.map((k) => toStep(k as Registered));
    }
    const type = opts.type ?? "command:local:Command";
    const all = [
        steps.container,
        steps.config,
        steps.tls,
        steps.acme?.setup,
        steps.acme?.issue,
        steps.acmeB?.setup,
        steps.acmeB?.issue,
    ].concat([steps.peersTls, steps.nodeB?.container, steps.nodeB?.tls, steps.nodeB?.peersTls, ...(steps.keepalived ?? [])]);
    for (const s of all.filter((x): x is StepCommand => x !== undefined)) {
        if (s.type !== type) throw new Error(`${s.resource} is ${s.type}, expected ${type}`);
        if (type === "command:local:Command" && !isDeepStrictEqual(s.interpreter, ["/bin/sh", "-c"])) {
            throw new Error(`${s.resource} interpreter is ${JSON.stringify(s.interpreter)}, expected ["/bin/sh","-c"]`);
        }
    }
    return steps;
}

export interface StepRun {
    code: number;
    stdout: string;
    stderr: string;
    ms: number;
}

export type StepOp = "create" | "update" | "delete";

/**
 * Run one operation of a step like the local command provider: the registered
 * interpreter (`/bin/sh -c`) with the script as its argument and the
 * registered stdin. The provider would also pass its own environment on
 * (os.Environ(): pulumi/pulumi-command provider/pkg/provider/local/
 * commandOutputs.go, run); this passes only PATH and HOME, on purpose, so a
 * step that leaned on any other variable fails here. `override` replaces header fields or the whole stdin
 * (for fault injection).
 */
export function runStep(
    step: StepCommand,
    op: StepOp,
    override: { header?: Record<string, string>; payload?: string; stdin?: string; timeoutMs?: number } = {},
): Promise<StepRun> {
    const script = step[op];
    if (!script) throw new Error(`${step.resource} has no ${op} script`);
    const [shell, ...shellArgs] = step.interpreter;
    const env: Record<string, string> = {
        PATH: process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        HOME: process.env.HOME ?? "/root",
    };
    const stdin =
        override.stdin ??
        (override.header || override.payload !== undefined ? withHeader(step.stdin, override.header ?? {}, override.payload) : step.stdin);
    const timeoutMs = override.timeoutMs ?? 180_000;
    const started = Date.now();
    return new Promise((resolve, reject) => {
        const child = spawn(shell, [...shellArgs, script], { env, stdio: ["pipe", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
        child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
        const timer = setTimeout(() => {
            stderr += `\n[${step.resource} ${op} killed after ${timeoutMs} ms]`;
            child.kill("SIGKILL");
        }, timeoutMs);
        child.on("error", (e) => {
            clearTimeout(timer);
            reject(e);
        });
        child.on("close", (code, signal) => {
            clearTimeout(timer);
            resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr, ms: Date.now() - started });
        });
        child.stdin.on("error", () => undefined);
        child.stdin.end(stdin);
    });
}

/** A pair brought up: its steps (built with the nodes' real addresses) and what each printed. */
export interface PairUp {
    steps: ProductSteps;
    nodes: { name: string; address: string }[];
    /** stderr of every step, in the order they ran. */
    log: string;
    /** The config step's stdout: "vip_node=<holder>". */
    configStdout: string;
}

/**
 * A pair's steps run as `pulumi up` would: both containers first; then, as
 * the engine hands the containers' real stdout to the steps that read it,
 * the program is built again with the real addresses (the mock returns
 * them, as the provider would) for the TLS, keepalived and config steps.
 */
export async function upPair(componentName: string, args: HaproxyLoadBalancerArgs): Promise<PairUp> {
    const first = await buildSteps(componentName, args);
    if (!first.nodeB) throw new Error(`${componentName} is not a pair`);
    // Steps that do not depend on one another run at once, as the engine runs them (a worker per degree of
    // parallelism: pulumi/pulumi pkg/resource/deploy/step_executor.go, DegreeOfParallelism).
    const [a, b] = await Promise.all([runStepOk(first.container, "create"), runStepOk(first.nodeB.container, "create")]);
    const nodes = [
        { name: first.container.header.container, address: a.stdout.trim().split("\n").pop() ?? "" },
        { name: first.nodeB.container.header.container, address: b.stdout.trim().split("\n").pop() ?? "" },
    ];
    setMockAddress(`${componentName}-container`, nodes[0].address);
    setMockAddress(`${componentName}-b-container`, nodes[1].address);
    const steps = await buildSteps(componentName, args);
    let log = a.stderr + b.stderr;
    const tls = [steps.tls, steps.nodeB?.tls, steps.peersTls, steps.nodeB?.peersTls].filter(
        (step): step is StepCommand => step !== undefined,
    );
    log += (await Promise.all(tls.map((step) => runStepOk(step, "create")))).map((r) => r.stderr).join("");
    const acmeSetups = [steps.acme?.setup, steps.acmeB?.setup].filter((step): step is StepCommand => step !== undefined);
    log += (await Promise.all(acmeSetups.map((step) => runStepOk(step, "create")))).map((r) => r.stderr).join("");
    // Node b's keepalived depends on node a's: one after the other.
    for (const step of steps.keepalived ?? []) log += (await runStepOk(step, "create")).stderr;
    const config = await runStepOk(steps.config, "create");
    log += config.stderr;
    // With tls.acme, each node orders its certificate once the config routes the challenges: node a, then node b.
    for (const step of [steps.acme?.issue, steps.acmeB?.issue]) if (step) log += (await runStepOk(step, "create")).stderr;
    return { steps, nodes, log, configStdout: config.stdout };
}

/** Like runStep but throws with the step's stderr on a non-zero exit. */
export async function runStepOk(step: StepCommand, op: StepOp, override?: Parameters<typeof runStep>[2]): Promise<StepRun> {
    const r = await runStep(step, op, override);
    if (r.code !== 0) {
        throw new Error(`${step.resource} ${op} failed (exit ${r.code}) after ${r.ms} ms:\n${r.stderr.trim()}\n${r.stdout.trim()}`);
    }
    return r;
}
