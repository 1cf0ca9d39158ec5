/**
 * End-to-end: tls.acme on a real Incus container with a real CA. Pebble runs
 * on the Incus host at the lab bridge's address (198.18.0.1), its DNS helper
 * resolves every name to the load balancer's container, and the steps are
 * the ones HaproxyLoadBalancer registers (captured under mocks, run with their
 * stdin: product.ts). Proven here: the ACME step installs the client and the
 * timer and a placeholder HAProxy starts with; the issue step obtains the
 * certificate through HAProxy's HTTP-01 route; a forced renewal under HTTPS
 * load swaps it without a reload; a failed renewal is in the journal while
 * the old certificate serves; the ACME step's delete leaves the certificate.
 */
import { readFileSync, rmSync, writeFileSync } from "fs";
import * as path from "path";
import type { HaproxyLoadBalancerArgs } from "../../components";
import {
    makeTempDir,
    makeTestCert,
    onCleanup,
    PebbleCa,
    requireBinary,
    scanTls,
    servedCertificate,
    startPebble,
    underLoad,
    waitFor,
} from "../support";
import {
    API_PORT,
    buildSteps,
    deleteContainers,
    execIn,
    execInOk,
    installProductMocks,
    LAB_IMAGE,
    launchBackend,
    ProductSteps,
    requireIncusLab,
    runStep,
    runStepOk,
    scrapeNodeMetrics,
    showProc,
} from "../support/lab";
import { cleanUpAfterSuite, noteBook } from "./suite";

// Once per file, before the component module is loaded (buildSteps loads it).
installProductMocks();

// The CA, its DNS helper and the scanner run on the Incus host.
const tools = requireBinary("pebble", "pebble-challtestsrv", "sslscan", "openssl");
const describeLab = tools === describe ? requireIncusLab() : tools;
const LB = "haproxy-acme";
const API = "acme-api-1";
const DOMAIN = "veza.acme.test";
/** The Incus host's address on the lab bridge (lab/setup-incus.sh): where the containers reach Pebble. */
const BRIDGE_HOST = "198.18.0.1";
/** The component's default tlsCertPath. */
const CERT_PATH = "/etc/haproxy/certs/veza.pem";
const RENEW = ["/usr/local/lib/veza-haproxy/acme-renew.sh", "--force", "/etc/veza-haproxy/acme.env"];

const notes = noteBook("e2e acme");
const note = notes.note;

function args(directoryUrl: string, caBundlePem: string): HaproxyLoadBalancerArgs {
    return {
        containerName: LB,
        image: LAB_IMAGE,
        apiServers: [{ name: API, address: `${API}.lxd` }],
        streamServers: [{ name: API, address: `${API}.lxd`, port: API_PORT }],
        healthCheckIntervalMs: 1000,
        tls: { acme: { domains: [DOMAIN], email: "ops@example.com", directoryUrl, caBundlePem } },
    };
}

describeLab("tls.acme on real Incus with Pebble", () => {
    let steps: ProductSteps;
    let ca: PebbleCa;
    let address = "";
    let rootFile = "";
    const served = () => servedCertificate(address, 443, DOMAIN, rootFile);

    beforeAll(() => deleteContainers([LB, API]), 120_000);
    cleanUpAfterSuite([LB, API], notes);

    test("the ACME step sets up the client, the timer and a placeholder; after the config step, the issue step obtains a certificate from Pebble through HAProxy's challenge route", async () => {
        await launchBackend(API, API_PORT);
        // The container step does not depend on tls: its address tells the CA's DNS where the name points.
        const firstDir = makeTempDir("veza-e2e-acme-first-");
        onCleanup(() => rmSync(firstDir, { recursive: true, force: true }), "the first build's stand-in CA certificate");
        const first = await buildSteps("acme", args("https://198.18.0.1:1/dir", readFileSync(makeTestCert(firstDir).certPath, "utf8")));
        address = (await runStepOk(first.container, "create")).stdout.trim();
        const dir = makeTempDir("veza-e2e-acme-");
        onCleanup(() => rmSync(dir, { recursive: true, force: true }), "Pebble's files");
        ca = await startPebble({ dir, host: BRIDGE_HOST, httpPort: 80, resolveTo: address });
        rootFile = path.join(dir, "pebble-root.pem");
        writeFileSync(rootFile, await ca.rootPem());
        steps = await buildSteps("acme", args(ca.directory, ca.apiCert.cert.toString()));
        expect(steps.container.stdin).toBe(first.container.stdin);
        if (!steps.acme) throw new Error("no ACME steps registered");

        const setup = await runStepOk(steps.acme.setup, "create");
        expect(setup.stderr).toContain(`a self-signed placeholder for ${DOMAIN} until the CA answers`);
        expect((await execIn(LB, ["systemctl", "is-enabled", "veza-acme-renew.timer"])).stdout.trim()).toBe("enabled");
        expect((await execIn(LB, ["systemctl", "is-active", "veza-acme-renew.timer"])).stdout.trim()).toBe("active");
        await runStepOk(steps.config, "create");
        const placeholder = served();
        expect(placeholder.verify).not.toBe("Verify return code: 0 (ok)");

        const issue = await runStepOk(steps.acme.issue, "create");
        expect(issue.stdout).toMatch(/^not_after=.+\nissuer=.*Pebble Intermediate CA/);
        const now = served();
        expect(now.verify).toBe("Verify return code: 0 (ok)");
        note("issued", `${issue.ms} ms (the issue step, lego through HAProxy's route); ${issue.stdout.trim().replace(/\n/g, "; ")}`);
        // The node metrics: the certificate HAProxy serves now (its end of validity, as the issue step reported it) and the run's result.
        const notAfter = Math.floor(Date.parse(/^not_after=(.+)$/m.exec(issue.stdout)?.[1] ?? "") / 1000);
        const metrics = await scrapeNodeMetrics(LB);
        expect(metrics).toContain(`veza_haproxy_certificate_expiry_timestamp_seconds{node="${LB}"} ${notAfter}\n`);
        expect(metrics).toContain(`veza_haproxy_acme_renew_last_result{node="${LB}"} 0\n`);
        // Run again, it has nothing to do: the certificate is valid for far more than 30 days.
        const again = await runStepOk(steps.acme.issue, "update");
        expect(again.stderr).toContain("the served certificate is lego's and valid for more than 30 days: nothing to install");
        expect(served().serial).toBe(now.serial);
    }, 240_000);

    test("a real TLS scanner (sslscan) on the HTTPS listener: nothing below TLS 1.2, only AEAD ciphers of 128 bits or more, forward secrecy", async () => {
        const scan = scanTls(address, 443, DOMAIN);
        expect(scan.protocols).toEqual({
            SSLv2: "disabled",
            SSLv3: "disabled",
            "TLSv1.0": "disabled",
            "TLSv1.1": "disabled",
            "TLSv1.2": "enabled",
            "TLSv1.3": "enabled",
        });
        expect(scan.ciphers.length).toBeGreaterThan(0);
        const weak = scan.ciphers.filter(
            (c) => c.bits < 128 || !/GCM|CHACHA20/.test(c.name) || (c.protocol === "TLSv1.2" && !/^(ECDHE|DHE)-/.test(c.name)),
        );
        expect(weak).toEqual([]);
        note(
            "sslscan",
            `protocols ${Object.entries(scan.protocols)
                .map(([p, v]) => `${p} ${v}`)
                .join(", ")}; accepted: ${scan.ciphers.map((c) => `${c.protocol} ${c.name} (${c.bits})`).join(", ")}`,
        );
    }, 90_000);

    test("a forced renewal in the container under HTTPS load (new connections and keep-alive): the serial changes, 0 failed requests, the same worker (no reload)", async () => {
        const before = served();
        const procBefore = await showProc(LB);
        const tls = { ca: ca.apiCert.cert, servername: DOMAIN };
        // Trust Pebble's root, which signs what HAProxy serves.
        tls.ca = Buffer.from(await ca.rootPem());
        const started = Date.now();
        const { counts } = await underLoad({ host: address, port: 443, path: "/api/v1/health", tls, timeoutMs: 3_000 }, () =>
            execInOk(LB, RENEW),
        );
        const renewMs = Date.now() - started - 600;
        const after = served();
        note(
            "renewed under load",
            `${renewMs} ms; serial ${before.serial} -> ${after.serial}; ${counts.fresh} new-connection and ${counts.keepAlive} keep-alive requests, ${counts.failed.length} failed`,
        );
        expect(after.verify).toBe("Verify return code: 0 (ok)");
        expect(after.serial).not.toBe(before.serial);
        expect(counts.failed).toEqual([]);
        expect(counts.fresh + counts.keepAlive).toBeGreaterThan(10);
        expect(await showProc(LB)).toEqual(procBefore);
    }, 120_000);

    test("ACME, then a pushed PEM, then ACME again, in the engine's order (deletes of removed steps last): a PEM whose key is not its own is refused in the step, lego's certificate serves again at once, and the PEM step's delete leaves it", async () => {
        if (!steps.acme) throw new Error("no ACME steps registered");
        const lego = served();
        const [pushed, other] = ["pushed", "other"].map((name) => {
            const dir = makeTempDir(`veza-e2e-acme-${name}-`);
            onCleanup(() => rmSync(dir, { recursive: true, force: true }), `the ${name} certificate`);
            const cert = makeTestCert(dir);
            return { certificatePem: readFileSync(cert.certPath, "utf8"), privateKeyPem: readFileSync(cert.keyPath, "utf8") };
        });
        const pem = await buildSteps("acme", { ...args(ca.directory, ca.apiCert.cert.toString()), tls: pushed });
        if (!pem.tls) throw new Error("no TLS step registered");
        expect(pem.container.stdin).toBe(steps.container.stdin);

        // ACME -> PEM: the TLS step's create, the config's update, then the ACME step's delete.
        await runStepOk(pem.tls, "create");
        await runStepOk(pem.config, "update");
        await runStepOk(steps.acme.setup, "delete");
        const pemServed = served();
        expect(pemServed.serial).not.toBe(lego.serial);

        // A key that is not the certificate's (preview refuses it; the step checks again before the swap).
        const bundle = await execInOk(LB, ["sha256sum", CERT_PATH]);
        const mismatched = await runStep(pem.tls, "update", { payload: pushed.certificatePem + other.privateKeyPem });
        expect(mismatched.code).toBe(1);
        expect(mismatched.stderr).toContain(
            `veza-haproxy[tls]: HAProxy cannot load the certificate and key (is the key the certificate's own?): ${CERT_PATH} is untouched`,
        );
        expect(await execInOk(LB, ["sha256sum", CERT_PATH])).toBe(bundle);
        expect(served()).toEqual(pemServed);

        // PEM -> ACME: the ACME step's create, the config's update, the issue step's create, then the TLS step's delete.
        await runStepOk(steps.acme.setup, "create");
        await runStepOk(steps.config, "update");
        const issued = await runStepOk(steps.acme.issue, "create");
        expect(served()).toEqual(lego);
        const removed = await runStepOk(pem.tls, "delete");
        expect(removed.stderr).toContain(`${CERT_PATH} holds another certificate now: leaving it`);
        expect(served()).toEqual(lego);
        expect((await execIn(LB, ["test", "-s", CERT_PATH])).code).toBe(0);
        note(
            "ACME -> PEM -> ACME",
            `lego's certificate served again after the issue step (${issued.ms} ms), kept by the PEM step's delete`,
        );
    }, 180_000);

    test("with the CA gone a renewal run by systemd fails, its reason is in the journal (veza-acme), and the current certificate keeps serving", async () => {
        const before = served();
        ca.stop();
        // The timer's own unit, forced by a drop-in (the image has no D-Bus for systemd-run).
        const dropin = "/etc/systemd/system/veza-acme-renew.service.d/veza-e2e-force.conf";
        await execInOk(
            LB,
            ["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1" && systemctl daemon-reload', "sh", dropin],
            `[Service]\nExecStart=\nExecStart=${RENEW.join(" ")}\n`,
        );
        const run = await execIn(LB, ["systemctl", "start", "veza-acme-renew.service"]);
        await execInOk(LB, ["sh", "-c", 'rm -f "$1" && systemctl daemon-reload', "sh", dropin]);
        expect(run.code).not.toBe(0);
        expect((await execIn(LB, ["systemctl", "is-failed", "veza-acme-renew.service"])).stdout.trim()).toBe("failed");
        // journald may index the last lines a moment after the unit is done.
        const journal = await waitFor(
            async () => {
                const text = await execInOk(LB, ["journalctl", "-t", "veza-acme", "--no-pager", "-o", "cat"]);
                return text.includes("veza-acme[obtain]: ERROR: lego could not renew; the current certificate keeps serving")
                    ? text
                    : undefined;
            },
            { what: "the failed renewal in the journal (tag veza-acme)", timeoutMs: 10_000, intervalMs: 250 },
        );
        expect(served()).toEqual(before);
        expect(await scrapeNodeMetrics(LB)).toContain(`veza_haproxy_acme_renew_last_result{node="${LB}"} 21\n`);
        note("CA gone", `the run failed (${run.code}); journal: ${journal.trim().split("\n").pop()}`);
    }, 120_000);

    test("the ACME step's delete removes the timer and the settings, and leaves the certificate serving", async () => {
        if (!steps.acme) throw new Error("no ACME steps registered");
        const before = served();
        const removed = await runStep(steps.acme.setup, "delete");
        expect(removed.code).toBe(0);
        expect((await execIn(LB, ["systemctl", "is-enabled", "veza-acme-renew.timer"])).stdout.trim()).not.toBe("enabled");
        expect((await execIn(LB, ["test", "-e", "/etc/veza-haproxy/acme.env"])).code).not.toBe(0);
        expect(served()).toEqual(before);
    }, 60_000);
});
