import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import { writeFileSync } from "fs";
import { request as httpsRequest } from "https";
import * as path from "path";
import { onCleanup } from "./cleanup";
import { assertTestNetwork } from "./http";
import { freePort } from "./ports";
import { findBinary } from "./requirements";
import { waitFor } from "./time";
import { makeTestCert, TestCert } from "./tls-cert";

/*
 * Pebble, Let's Encrypt's test ACME server, and its DNS helper
 * (pebble-challtestsrv), from Debian's pebble package: a real CA for the ACME
 * tests. Pebble keeps its defaults but the random sleep before validating:
 * it still rejects a share of nonces on purpose, which a client must retry.
 */

export interface PebbleCa {
    /** The ACME directory URL. */
    directory: string;
    /** Pebble's own HTTPS certificate (made here), which the ACME client must trust. */
    apiCert: TestCert;
    /** The root Pebble signs certificates with, as PEM (a new one per Pebble run). */
    rootPem(): Promise<string>;
    /** Stops Pebble and its DNS helper now (also done at cleanup). */
    stop(): void;
}

export interface PebbleOptions {
    /** Where the CA's own files go. */
    dir: string;
    /** The address Pebble listens on: 127.0.0.1, or the lab bridge's host address for containers to reach it. */
    host: string;
    /** The port Pebble fetches HTTP-01 challenges from, on the address every name resolves to. */
    httpPort: number;
    /** The address every name resolves to (the load balancer). */
    resolveTo: string;
}

function spawnKilledAtCleanup(bin: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
    const path_ = findBinary(bin);
    if (path_ === undefined) throw new Error(`${bin} not found: apt-get install -y pebble`);
    const child = spawn(path_, args, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...env } });
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    onCleanup(() => void child.kill("SIGKILL"), `${bin} (last words: ${stderr.split("\n").slice(-3).join(" | ")})`);
    return child;
}

/** GET over HTTPS from a Pebble port, trusting its own certificate. */
function fetchFrom(host: string, port: number, urlPath: string, ca: Buffer): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
        const req = httpsRequest({ host, port, path: urlPath, ca, servername: "localhost", timeout: 5_000 }, (res) => {
            let body = "";
            res.on("data", (d: Buffer) => (body += d.toString()));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on("timeout", () => req.destroy(new Error(`no answer from ${host}:${port}${urlPath}`)));
        req.on("error", reject);
        req.end();
    });
}

/** Pebble's ports: its ACME API, its management API (roots), the DNS helper and its management API, and a TLS-ALPN port it is never asked on. */
export interface PebblePorts {
    listen: number;
    management: number;
    dns: number;
    dnsManagement: number;
    tls: number;
}

/**
 * How Pebble runs with `apiCert` as its own HTTPS certificate (one with the
 * listen address in its names: makeTestCert(dir, [host])): writes its config
 * into `o.dir` and returns both programs' argv and environment, for a caller
 * that starts them (the tests, killed at cleanup; `lab:up --acme`, as daemons).
 */
export function pebblePrograms(
    o: PebbleOptions,
    ports: PebblePorts,
    apiCert: TestCert,
): { bin: string; args: string[]; env: NodeJS.ProcessEnv }[] {
    assertTestNetwork(o.host);
    const config = path.join(o.dir, "pebble.json");
    writeFileSync(
        config,
        JSON.stringify({
            pebble: {
                listenAddress: `${o.host}:${ports.listen}`,
                managementListenAddress: `${o.host}:${ports.management}`,
                certificate: apiCert.certPath,
                privateKey: apiCert.keyPath,
                httpPort: o.httpPort,
                tlsPort: ports.tls,
                ocspResponderURL: "",
                externalAccountBindingRequired: false,
            },
        }),
    );
    return [
        {
            bin: "pebble-challtestsrv",
            args: [
                ...["-defaultIPv4", o.resolveTo, "-defaultIPv6", "", "-dns01", `127.0.0.1:${ports.dns}`],
                ...["-http01", "", "-https01", "", "-tlsalpn01", "", "-management", `127.0.0.1:${ports.dnsManagement}`],
            ],
            env: {},
        },
        // No random wait before validating (up to 15 s by default); nonce rejection stays on.
        { bin: "pebble", args: ["-config", config, "-dnsserver", `127.0.0.1:${ports.dns}`], env: { PEBBLE_VA_NOSLEEP: "1" } },
    ];
}

/** Waits for Pebble's directory; the handle to use it. */
export async function pebbleReady(host: string, ports: PebblePorts, apiCert: TestCert, stop: () => void): Promise<PebbleCa> {
    await waitFor(async () => (await fetchFrom(host, ports.listen, "/dir", apiCert.cert)).status === 200, {
        what: "Pebble's directory",
        timeoutMs: 15_000,
        intervalMs: 100,
    });
    return {
        directory: `https://${host}:${ports.listen}/dir`,
        apiCert,
        rootPem: async () => (await fetchFrom(host, ports.management, "/roots/0", apiCert.cert)).body,
        stop,
    };
}

/** Pebble and its DNS helper (every name resolves to `resolveTo`) on free ports, killed at cleanup; ready when its directory answers. */
export async function startPebble(o: PebbleOptions): Promise<PebbleCa> {
    const ports = {
        listen: await freePort(),
        management: await freePort(),
        dns: await freePort(),
        dnsManagement: await freePort(),
        tls: await freePort(),
    };
    const apiCert = makeTestCert(o.dir, o.host.startsWith("127.") ? [] : [o.host]);
    const children = pebblePrograms(o, ports, apiCert).map((p) => spawnKilledAtCleanup(p.bin, p.args, p.env));
    return pebbleReady(o.host, ports, apiCert, () => children.forEach((child) => child.kill("SIGKILL")));
}

export interface ServedCertificate {
    serial: string;
    issuer: string;
    /** openssl's verdict: "Verify return code: 0 (ok)" when the chain, the name and the dates check out against the CA file. */
    verify: string;
}

/** The certificate a TLS listener serves for `servername`, checked by `openssl s_client -verify_return_error` against `caFile`. */
export function servedCertificate(host: string, port: number, servername: string, caFile: string): ServedCertificate {
    assertTestNetwork(host);
    const s = spawnSync(
        findBinary("openssl") as string,
        ["s_client", "-connect", `${host}:${port}`, "-servername", servername, "-verify_hostname", servername].concat([
            "-verify_return_error",
            "-CAfile",
            caFile,
        ]),
        { input: "", encoding: "utf8", timeout: 10_000 },
    );
    const pem = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(s.stdout)?.[0] ?? "";
    const fields = pem ? execFileSync("openssl", ["x509", "-noout", "-serial", "-issuer"], { input: pem, encoding: "utf8" }) : "";
    return {
        serial: /serial=(\S+)/.exec(fields)?.[1] ?? "",
        issuer: /issuer=(.*)/.exec(fields)?.[1]?.trim() ?? "",
        verify: /Verify return code: .*/.exec(s.stdout)?.[0] ?? `no verdict: ${s.stderr.slice(-300)}`,
    };
}

/** What a real TLS scanner (Debian's sslscan) found on a listener. */
export interface TlsScan {
    /** "SSLv3", "TLSv1.0", ... -> "enabled" | "disabled". */
    protocols: Record<string, string>;
    /** Every cipher the server accepted: protocol, key bits, OpenSSL name. */
    ciphers: { protocol: string; bits: number; name: string }[];
    /** sslscan's report, for a note. */
    report: string;
}

/** Runs sslscan against host:port with SNI `servername`. */
export function scanTls(host: string, port: number, servername: string): TlsScan {
    assertTestNetwork(host);
    const run = spawnSync(findBinary("sslscan") as string, ["--no-colour", `--sni-name=${servername}`, `${host}:${port}`], {
        encoding: "utf8",
        timeout: 60_000,
    });
    const report = run.stdout;
    const protocols: Record<string, string> = {};
    for (const m of report.matchAll(/^(SSLv[23]|TLSv1\.[0-3])\s+(enabled|disabled)$/gm)) protocols[m[1]] = m[2];
    const ciphers = [...report.matchAll(/^(?:Preferred|Accepted)\s+(TLSv1\.[0-3]|SSLv[23])\s+(\d+) bits\s+(\S+)/gm)].map((m) => ({
        protocol: m[1],
        bits: Number(m[2]),
        name: m[3],
    }));
    return { protocols, ciphers, report };
}
