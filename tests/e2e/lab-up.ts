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
 * `npm run lab:up -- --pair` makes it a pair (`pair: { vip: LAB_VIP }`): the
 * running `haproxy` becomes node a, `haproxy-b` is added, keepalived on
 * both, and the JSON names the VIP:
 *   {"httpUrl": "http://198.18.0.240/", "vip": "198.18.0.240", "nodes": [{"name": "haproxy", ...}, {"name": "haproxy-b", ...}]}
 * `npm run lab:down` removes everything it made.
 *
 * A `haproxy:labTls` certificate needs `pulumi up` (the mocks make no real
 * key), so that is refused.
 */
import type { HaproxyLoadBalancerArgs } from "../../components";
import { labStackConfig, setStackConfig } from "../support";
import { API_PORT, launchBackend, listContainers, STREAM_PORT } from "./lab";
import { buildSteps, installProductMocks, parseStepStdin, runStepOk, upPair } from "./product";

/** The lab pair's VIP: in the bridge's range kept free of DHCP leases (setup-incus.sh), apart from the e2e pair's. */
export const LAB_VIP = "198.18.0.240/24";

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
    const pair = process.argv.includes("--pair");
    const unknown = process.argv.slice(2).filter((arg) => arg !== "--pair");
    if (unknown.length > 0) throw new Error(`unknown argument ${unknown.join(" ")}: the only option is --pair`);
    installProductMocks();
    const args = labArgs();

    const existing = new Set(await listContainers());
    await Promise.all(
        BACKENDS.map(async ([name, port]) => {
            if (existing.has(name)) console.error(`lab:up: ${name} exists, left as it is`);
            else console.error(`lab:up: ${name} at ${await launchBackend(name, port)} (port ${port})`);
        }),
    );

    if (pair) {
        const up = await upPair("haproxy", { ...args, pair: { vip: LAB_VIP } });
        process.stderr.write(up.log);
        const vip = LAB_VIP.split("/")[0];
        console.log(JSON.stringify({ httpUrl: `http://${vip}/`, vip, nodes: up.nodes }));
        return;
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
