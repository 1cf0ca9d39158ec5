/*
 * ACME against a real CA: Pebble, Let's Encrypt's test server, and
 * its DNS helper on loopback; the product's rendered config with the ACME
 * route; Debian's lego driven by the renew script the container runs
 * (templates/_acme-renew.sh). Pebble validates HTTP-01 by fetching the token
 * from the load balancer's HTTP listener, which hands it to lego's responder.
 *
 * Pebble keeps its defaults, rejecting a share of nonces on purpose: lego
 * retries those, as it must with a real CA.
 */
import { execFileSync, spawn } from "child_process";
import { readFileSync, rmSync, writeFileSync } from "fs";
import * as path from "path";
import { renderAcmeEnv } from "../../components/acme";
import {
    cleanupAll,
    freePort,
    get,
    Lab,
    makeTempDir,
    makeTestCert,
    onCleanup,
    openWebSocket,
    PebbleCa,
    requireBinary,
    servedCertificate,
    startLab,
    startPebble,
    underLoad,
} from "../support";

jest.setTimeout(120_000);

const describeWithAcme = requireBinary("haproxy", "pebble", "pebble-challtestsrv", "lego", "socat", "openssl");
const RENEW_SCRIPT = path.join(__dirname, "..", "..", "templates", "_acme-renew.sh");
const DOMAIN = "veza.acme.test";

/** The certificate the HTTPS listener serves for DOMAIN, checked against `caFile`. */
const served = (port: number, caFile: string) => servedCertificate("127.0.0.1", port, DOMAIN, caFile);

/** The renew script as the timer runs it; resolves with its exit code, stderr and how long it took. */
function renew(envFile: string, force = false): Promise<{ code: number; stderr: string; ms: number }> {
    return new Promise((resolve) => {
        const started = Date.now();
        const child = spawn("bash", [RENEW_SCRIPT, ...(force ? ["--force"] : []), envFile], { stdio: ["ignore", "ignore", "pipe"] });
        let stderr = "";
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        onCleanup(() => void child.kill("SIGKILL"), "the renew script");
        child.on("exit", (code) => resolve({ code: code ?? -1, stderr, ms: Date.now() - started }));
    });
}

describeWithAcme("ACME certificates from a real CA (Pebble), through the load balancer's HTTP-01 route", () => {
    let dir: string;
    let lab: Lab;
    let ca: PebbleCa;
    let envFile: string;
    let rootFile: string;

    beforeAll(async () => {
        dir = makeTempDir("veza-acme-");
        // What haproxy starts with before the first certificate: a placeholder (the component makes one in the container).
        const placeholder = makeTestCert(makeTempDir("veza-acme-placeholder-"));
        const certPath = path.join(dir, "veza.pem");
        writeFileSync(certPath, readFileSync(placeholder.pemPath), { mode: 0o600 });
        const challengePort = await freePort();
        lab = await startLab({
            api: 2,
            stream: 1,
            settings: { healthCheckIntervalMs: 1000, tlsCertPath: certPath, acmeChallengePort: challengePort },
        });
        ca = await startPebble({ dir, host: "127.0.0.1", httpPort: lab.hp.httpPort, resolveTo: "127.0.0.1" });
        envFile = path.join(dir, "acme.env");
        writeEnv(ca, "ops@example.com");
        rootFile = path.join(dir, "pebble-root.pem");
        writeFileSync(rootFile, await ca.rootPem());
    });
    /** acme.env as the component writes it, for the CA `to` and the account `email`. */
    function writeEnv(to: PebbleCa, email: string): void {
        writeFileSync(
            envFile,
            renderAcmeEnv(
                { domains: [DOMAIN], email, directoryUrl: to.directory },
                {
                    certPath: lab.hp.settings.tlsCertPath as string,
                    adminSocket: lab.hp.settings.adminSocketPath as string,
                    stateDir: path.join(dir, "state"),
                    caBundlePath: to.apiCert.certPath,
                    challengePort: lab.hp.settings.acmeChallengePort as number,
                },
            ),
        );
    }
    /** What lego holds for DOMAIN, as the renew script installs it: certificate, then key. */
    const legoBundle = () =>
        ["crt", "key"].map((ext) => readFileSync(path.join(dir, "state", "certificates", `${DOMAIN}.${ext}`), "utf8")).join("");
    /** The serial of lego's current certificate for DOMAIN. */
    const legoSerial = () =>
        /serial=(\S+)/.exec(
            execFileSync("openssl", ["x509", "-noout", "-serial", "-in", path.join(dir, "state", "certificates", `${DOMAIN}.crt`)], {
                encoding: "utf8",
            }),
        )?.[1];

    afterAll(async () => {
        await cleanupAll();
        rmSync(dir, { recursive: true, force: true });
    });

    test("the challenge path reaches the ACME client's responder over plain HTTP, ahead of the HTTPS redirect; without a client it is a 503, never a backend", async () => {
        expect((await get(lab.hp.httpPort, "/api/v1/me")).status).toBe(301);
        const noClient = await get(lab.hp.httpPort, "/.well-known/acme-challenge/abc");
        expect(noClient.status).toBe(503);
        expect(lab.api.reduce((n, b) => n + b.requests, 0)).toBe(0);
    });

    test("the first run obtains a certificate for the domain from Pebble, and the running haproxy serves it at once (verified against Pebble's root), without a reload", async () => {
        const workerBefore = await lab.hp.workerPid();
        const first = await renew(envFile);
        expect({ code: first.code, stderr: first.code === 0 ? "" : first.stderr }).toEqual({ code: 0, stderr: "" });
        const now = served(lab.hp.httpsPort as number, rootFile);
        console.log(`acme: obtained in ${first.ms} ms; serving serial ${now.serial}, issuer ${now.issuer}; ${now.verify}`);
        expect(now.verify).toBe("Verify return code: 0 (ok)");
        expect(now.issuer).toMatch(/Pebble/);
        expect(await lab.hp.workerPid()).toBe(workerBefore);
        // The node metrics' source (veza_haproxy_acme_renew_last_result): a run that installed a certificate is a 0.
        expect(readFileSync(path.join(dir, "state", "veza-last-run"), "utf8")).toMatch(/^0 \d{10}\n$/);
        // The key never went through a command line: it is only in lego's state and the certificate file, mode 600.
        expect(readFileSync(lab.hp.settings.tlsCertPath as string, "utf8")).toContain("PRIVATE KEY-----");
    });

    test("a forced renewal under HTTPS load (new connections and keep-alive) and an open WebSocket: the serial changes, 0 failed requests, the WebSocket lives, no new worker", async () => {
        const before = served(lab.hp.httpsPort as number, rootFile);
        const root = readFileSync(rootFile);
        const tls = { ca: root, servername: DOMAIN };
        const workerBefore = await lab.hp.workerPid();
        const ws = await openWebSocket(lab.hp.httpsPort as number, "/ws", { tls });
        await ws.echo("before");
        const { result: rotation, counts } = await underLoad({ port: lab.hp.httpsPort as number, path: "/api/v1/me", tls }, () =>
            renew(envFile, true),
        );
        const after = served(lab.hp.httpsPort as number, rootFile);
        console.log(
            `acme: forced renewal in ${rotation.ms} ms; serial ${before.serial} -> ${after.serial}; ` +
                `${counts.fresh} new-connection and ${counts.keepAlive} keep-alive requests, ${counts.failed.length} failed`,
        );
        expect(rotation.code).toBe(0);
        expect(after.verify).toBe("Verify return code: 0 (ok)");
        expect(after.serial).not.toBe(before.serial);
        expect(counts.failed).toEqual([]);
        expect(counts.fresh + counts.keepAlive).toBeGreaterThan(10);
        await ws.echo("after");
        expect(await lab.hp.workerPid()).toBe(workerBefore);
        ws.close();
    });

    test("a certificate at the served path that is not lego's (a placeholder after a path change, a pushed PEM after ACME was off) is replaced by lego's at the next run, without a new order", async () => {
        const certPath = lab.hp.settings.tlsCertPath as string;
        const orderedSerial = legoSerial();
        writeFileSync(certPath, readFileSync(makeTestCert(makeTempDir("veza-acme-foreign-")).pemPath), { mode: 0o600 });
        const run = await renew(envFile);
        expect({ code: run.code, stderr: run.code === 0 ? "" : run.stderr }).toEqual({ code: 0, stderr: "" });
        expect(readFileSync(certPath, "utf8")).toBe(legoBundle());
        expect(legoSerial()).toBe(orderedSerial);
        expect(served(lab.hp.httpsPort as number, rootFile).serial).toBe(orderedSerial);
    });

    test("the timer and the issue step running at once (both bind the challenge port): the second waits for the first, and both succeed", async () => {
        const [first, second] = await Promise.all([renew(envFile, true), renew(envFile, true)]);
        console.log(`acme: two forced renewals at once took ${first.ms} and ${second.ms} ms`);
        expect([first.code, second.code, first.stderr + second.stderr]).toEqual([0, 0, expect.stringContaining("waiting for it")]);
        expect(served(lab.hp.httpsPort as number, rootFile).serial).toBe(legoSerial());
    });

    test.each([
        ["the CA (staging, then production)", "ops@example.com"],
        ["the account's email", "sre@example.com"],
    ])("a change of %s orders a new certificate under the new account at once, not a renewal lego would refuse", async (_what, email) => {
        const next = await startPebble({
            dir: makeTempDir("veza-acme-next-ca-"),
            host: "127.0.0.1",
            httpPort: lab.hp.httpPort,
            resolveTo: "127.0.0.1",
        });
        const nextRoot = path.join(dir, `next-root-${email}.pem`);
        writeFileSync(nextRoot, await next.rootPem());
        writeEnv(next, email);
        const run = await renew(envFile);
        expect({ code: run.code, stderr: run.code === 0 ? "" : run.stderr }).toEqual({ code: 0, stderr: "" });
        const now = served(lab.hp.httpsPort as number, nextRoot);
        expect(now.verify).toBe("Verify return code: 0 (ok)");
        expect(now.serial).toBe(legoSerial());
        // The next run is a renewal under that account: nothing to do.
        const again = await renew(envFile);
        expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: expect.stringContaining("nothing to install") });
        ca.stop();
        ca = next;
        rootFile = nextRoot;
    });

    test("with the CA unreachable the renewal fails with exit 21 and says so, and the current certificate keeps serving", async () => {
        const before = served(lab.hp.httpsPort as number, rootFile);
        ca.stop();
        const failed = await renew(envFile, true);
        expect(failed.code).toBe(21);
        expect(failed.stderr).toContain("veza-acme[obtain]: ERROR: lego could not renew; the current certificate keeps serving");
        const after = served(lab.hp.httpsPort as number, rootFile);
        expect(after).toEqual(before);
        // The node metrics' source (veza_haproxy_acme_renew_last_result): this run's code, beside lego's state.
        expect(readFileSync(path.join(dir, "state", "veza-last-run"), "utf8")).toMatch(/^21 \d{10}\n$/);
    });
});
