/**
 * `npm run lab:up`: the lab stack (Pulumi.lab.yaml) on this Incus host without
 * the Pulumi CLI. The stack's own config reader (stack-config.ts) makes the
 * component's args; the component is built under Pulumi's mocks, and the
 * scripts it registers run in the engine's order (container, TLS, config: the
 * dependency order, each create done before the next registration returns,
 * pulumi/pulumi pkg/resource/deploy/source_eval.go; see lifecycle.test.ts), as
 * the e2e suite runs them. The four backends are the test fixture's fake
 * backend (as `npm run lab:backends`). Idempotent: a second run adopts the
 * running container and reloads only if the config changed.
 *
 * Its last line is one JSON object for scripts and CI:
 *   {"httpUrl": "http://198.18.0.x/", "vip": null, "nodes": [{"name": "haproxy", "address": "198.18.0.x"}]}
 * `npm run lab:down` removes everything it made.
 *
 * `--pair` is refused for now: the component does not build the pair yet.
 * A `haproxy:labTls` certificate needs `pulumi up` (the mocks make no real
 * key), so that is refused too.
 */
import type { HaproxyLoadBalancerArgs } from "../../components";
import { labStackConfig, setStackConfig } from "../support";
import { API_PORT, launchBackend, listContainers, STREAM_PORT } from "./lab";
import { buildSteps, installProductMocks, parseStepStdin, runStepOk } from "./product";

const BACKENDS: [string, number][] = [
    ["backend-api-1", API_PORT],
    ["backend-api-2", API_PORT],
    ["stream-srv-1", STREAM_PORT],
    ["stream-srv-2", STREAM_PORT],
];

/** The lab stack's args, read by the stack's own reader from Pulumi.lab.yaml. */
function labArgs(): HaproxyLoadBalancerArgs {
    const config = labStackConfig();
    if (config["haproxy:labTls"] === "true")
        throw new Error("haproxy:labTls needs `pulumi up` (a real key and certificate): lab:up runs without it");
    setStackConfig(config);
    // Loaded after the mocks are installed, as the SDK requires.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const pulumi = require("@pulumi/pulumi") as typeof import("@pulumi/pulumi");
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { readStackConfig } = require("../../stack-config") as typeof import("../../stack-config");
    return readStackConfig(new pulumi.Config("haproxy"), "haproxy");
}

async function main(): Promise<void> {
    if (process.argv.includes("--pair")) throw new Error("--pair: the component does not build a load balancer pair yet (issue 12)");
    installProductMocks();
    const args = labArgs();

    const existing = new Set(await listContainers());
    for (const [name, port] of BACKENDS) {
        if (existing.has(name)) console.error(`lab:up: ${name} exists, left as it is`);
        else console.error(`lab:up: ${name} at ${await launchBackend(name, port)} (port ${port})`);
    }

    const steps = await buildSteps("haproxy", args);
    const container = await runStepOk(steps.container, "create");
    process.stderr.write(container.stderr);
    const address = container.stdout.trim();
    if (steps.tls) process.stderr.write((await runStepOk(steps.tls, "create")).stderr);
    process.stderr.write((await runStepOk(steps.config, "create")).stderr);
    const name = parseStepStdin(steps.config.stdin).header.container;
    console.log(JSON.stringify({ httpUrl: `http://${address}/`, vip: null, nodes: [{ name, address }] }));
}

main().catch((error: unknown) => {
    console.error(`lab:up: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
});
