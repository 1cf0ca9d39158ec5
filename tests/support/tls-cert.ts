import { execFileSync } from "child_process";
import { readFileSync, writeFileSync } from "fs";
import * as path from "path";

export interface TestCert {
    /** cert + key in one PEM: what haproxy's `crt` (tlsCertPath) takes. */
    pemPath: string;
    certPath: string;
    keyPath: string;
    /** The certificate, to pass as `ca` to clients (self-signed). */
    cert: Buffer;
}

/**
 * A throw-away self-signed certificate for CN=localhost (SAN localhost,
 * 127.0.0.1 and any `extraIps`), valid one day, made with openssl into `dir`.
 */
export function makeTestCert(dir: string, extraIps: string[] = []): TestCert {
    const keyPath = path.join(dir, "key.pem");
    const certPath = path.join(dir, "cert.pem");
    const pemPath = path.join(dir, "site.pem");
    const san = ["DNS:localhost", "IP:127.0.0.1", ...extraIps.map((ip) => `IP:${ip}`)].join(",");
    execFileSync(
        "openssl",
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-addext", `subjectAltName=${san}`].concat([
            "-days",
            "1",
            "-keyout",
            keyPath,
            "-out",
            certPath,
        ]),
        { stdio: ["ignore", "ignore", "pipe"] },
    );
    const cert = readFileSync(certPath);
    writeFileSync(pemPath, Buffer.concat([cert, readFileSync(keyPath)]), { mode: 0o600 });
    return { pemPath, certPath, keyPath, cert };
}
