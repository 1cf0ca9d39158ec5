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
 * `npm run lab:up -- --acme` serves HTTPS with a certificate from an ACME CA:
 * Pebble (Let's Encrypt's test server) runs on this host at the lab bridge's
 * address (198.18.0.1:14000), its DNS helper points LAB_ACME_DOMAIN at the
 * container, and the component's tls.acme steps obtain the certificate
 * through HAProxy. The JSON gains
 *   "acme": {"domain": "veza.lab.test", "caRootPem": "/var/lib/veza-lab/pebble/root.pem"}
 * (verify with `openssl s_client -connect <address>:443 -servername veza.lab.test -CAfile <caRootPem>`).
 * Pebble keeps running (its root with it) until `npm run lab:down`. With
 * `--pair` too, the domain points at the VIP and each node orders its own.
 * `npm run lab:down` removes everything it made.
 *
 * A `haproxy:labTls` certificate needs `pulumi up` (the mocks make no real
 * key), so that is refused.
 */
import { spawn } from "child_process";
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "fs";
import * as path from "path";
import type { HaproxyLoadBalancerArgs } from "../components";
import {
    findBinary,
    labStackConfig,
    parseStepStdin,
    makeTestCert,
    PebbleCa,
    pebblePrograms,
    PebblePorts,
    pebbleReady,
    setStackConfig,
    TestCert,
    waitFor,
} from "../tests/support";
import { API_PORT, launchBackend, listContainers, STREAM_PORT } from "./lab";
import { buildSteps, installProductMocks, runStepOk, upPair } from "./product";

/** The lab pair's VIP: in the bridge's range kept free of DHCP leases (setup-incus.sh), apart from the e2e pair's. */
export const LAB_VIP = "198.18.0.240/24";

/** lab:up --acme: the name the certificate is for, where Pebble keeps its files (and lab:down finds its pids), its fixed ports. */
export const LAB_ACME_DOMAIN = "veza.lab.test";
export const LAB_PEBBLE_DIR = "/var/lib/veza-lab/pebble";
const LAB_PEBBLE_PORTS: PebblePorts = { listen: 14000, management: 15000, dns: 8053, dnsManagement: 8055, tls: 5001 };
/** The Incus host's address on the lab bridge (setup-incus.sh): where the containers reach Pebble. */
const BRIDGE_HOST = "198.18.0.1";

/** The pid in `file` if it is still one of Pebble's programs (not a recycled pid). */
function labPid(file: string): number | undefined {
    const pid = Number(readFileSync(file, "utf8").trim());
    try {
        return readFileSync(`/proc/${pid}/comm`, "utf8").startsWith("pebble") ? pid : undefined;
    } catch {
        return undefined;
    }
}

/** Stops the lab's Pebble programs named in `which` (pid files in LAB_PEBBLE_DIR), and waits until they are gone (their ports free). */
async function stopLabPebble(which: string[]): Promise<void> {
    for (const bin of which) {
        const file = path.join(LAB_PEBBLE_DIR, `${bin}.pid`);
        if (!existsSync(file)) continue;
        const pid = labPid(file);
        rmSync(file, { force: true });
        if (pid === undefined) continue;
        process.kill(pid, "SIGTERM");
        await waitFor(() => !existsSync(`/proc/${pid}`), { what: `${bin} (pid ${pid}) to exit`, timeoutMs: 5_000, intervalMs: 50 });
    }
}

/**
 * Pebble as a daemon for the lab: its DNS helper is started afresh (pointing
 * the domain at `resolveTo`), Pebble itself only when it is not running, so
 * its root, and the certificates it signed, stay valid across runs.
 */
async function startLabPebble(resolveTo: string): Promise<PebbleCa> {
    mkdirSync(LAB_PEBBLE_DIR, { recursive: true });
    const running = existsSync(path.join(LAB_PEBBLE_DIR, "pebble.pid")) && labPid(path.join(LAB_PEBBLE_DIR, "pebble.pid")) !== undefined;
    await stopLabPebble(running ? ["pebble-challtestsrv"] : ["pebble-challtestsrv", "pebble"]);
    const options = { dir: LAB_PEBBLE_DIR, host: BRIDGE_HOST, httpPort: 80, resolveTo };
    // A running Pebble keeps the HTTPS certificate it started with; a new one gets a new certificate.
    const apiCert = running ? labApiCert() : makeTestCert(LAB_PEBBLE_DIR, [BRIDGE_HOST]);
    const programs = pebblePrograms(options, LAB_PEBBLE_PORTS, apiCert);
    for (const program of programs.filter((p) => !running || p.bin !== "pebble")) {
        const bin = findBinary(program.bin);
        if (bin === undefined) throw new Error(`${program.bin} not found: apt-get install -y pebble`);
        const log = openSync(path.join(LAB_PEBBLE_DIR, `${program.bin}.log`), "a");
        const child = spawn(bin, program.args, { detached: true, stdio: ["ignore", log, log], env: { ...process.env, ...program.env } });
        writeFileSync(path.join(LAB_PEBBLE_DIR, `${program.bin}.pid`), String(child.pid));
        child.unref();
    }
    return pebbleReady(BRIDGE_HOST, LAB_PEBBLE_PORTS, apiCert, () => void stopLabPebble(["pebble-challtestsrv", "pebble"]));
}

/** The HTTPS certificate the running lab Pebble was started with (makeTestCert's files in LAB_PEBBLE_DIR). */
function labApiCert(): TestCert {
    const certPath = path.join(LAB_PEBBLE_DIR, "cert.pem");
    return {
        certPath,
        keyPath: path.join(LAB_PEBBLE_DIR, "key.pem"),
        pemPath: path.join(LAB_PEBBLE_DIR, "site.pem"),
        cert: readFileSync(certPath),
    };
}

/** The lab's Pebble, resolving LAB_ACME_DOMAIN to `resolveTo`; the tls.acme args pointing at it, and what the JSON reports. */
async function labAcme(resolveTo: string): Promise<{ tls: HaproxyLoadBalancerArgs["tls"]; report: { domain: string; caRootPem: string } }> {
    const ca = await startLabPebble(resolveTo);
    const caRootPem = path.join(LAB_PEBBLE_DIR, "root.pem");
    writeFileSync(caRootPem, await ca.rootPem());
    return {
        tls: {
            acme: {
                domains: [LAB_ACME_DOMAIN],
                email: "ops@example.com",
                directoryUrl: ca.directory,
                caBundlePem: ca.apiCert.cert.toString(),
            },
        },
        report: { domain: LAB_ACME_DOMAIN, caRootPem },
    };
}

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
    const { readStackConfig } = require("../stack-config") as typeof import("../stack-config");
    return readStackConfig(new pulumi.Config("haproxy"), "haproxy");
}

async function main(): Promise<void> {
    const pair = process.argv.includes("--pair");
    const acme = process.argv.includes("--acme");
    const unknown = process.argv.slice(2).filter((arg) => arg !== "--pair" && arg !== "--acme");
    if (unknown.length > 0) throw new Error(`unknown argument ${unknown.join(" ")}: the options are --pair and --acme`);
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
        const vip = LAB_VIP.split("/")[0];
        // With --acme the CA's DNS points the domain at the VIP: known before any node exists.
        const withAcme = acme ? await labAcme(vip) : undefined;
        const up = await upPair("haproxy", { ...args, pair: { vip: LAB_VIP }, ...(withAcme ? { tls: withAcme.tls } : {}) });
        process.stderr.write(up.log);
        console.log(JSON.stringify({ httpUrl: `http://${vip}/`, vip, nodes: up.nodes, ...(withAcme ? { acme: withAcme.report } : {}) }));
        return;
    }
    let steps = await buildSteps("haproxy", args);
    const container = await runStepOk(steps.container, "create");
    process.stderr.write(container.stderr);
    const address = container.stdout.trim();
    let acmeReport: { domain: string; caRootPem: string } | undefined;
    if (acme) {
        // The CA's DNS points the domain at the container: Pebble starts once its address is known.
        const withAcme = await labAcme(address);
        steps = await buildSteps("haproxy", { ...args, tls: withAcme.tls });
        acmeReport = withAcme.report;
    }
    if (steps.tls) process.stderr.write((await runStepOk(steps.tls, "create")).stderr);
    if (steps.acme) process.stderr.write((await runStepOk(steps.acme.setup, "create")).stderr);
    process.stderr.write((await runStepOk(steps.config, "create")).stderr);
    if (steps.acme) {
        const issued = await runStepOk(steps.acme.issue, "create");
        process.stderr.write(issued.stderr + issued.stdout);
    }
    const name = parseStepStdin(steps.config.stdin).header.container;
    console.log(
        JSON.stringify({
            httpUrl: `http://${address}/`,
            vip: null,
            nodes: [{ name, address }],
            ...(acmeReport ? { acme: acmeReport } : {}),
        }),
    );
}

// Run as `npm run lab:up`; imported (its constants), it does nothing.
if (require.main === module) {
    main().catch((error: unknown) => {
        console.error(`lab:up: ${error instanceof Error ? error.message : String(error)}`);
        process.exit(1);
    });
}
