import { execFileSync } from "child_process";
import { accessSync, constants } from "fs";
import * as path from "path";

/** Directories searched besides $PATH: haproxy lives in /usr/sbin, often not on a normal user's PATH. */
const EXTRA_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

const INSTALL_HINTS: Record<string, string> = {
    haproxy: "apt-get install -y haproxy",
    openssl: "apt-get install -y openssl",
    wrk: "apt-get install -y wrk",
    socat: "apt-get install -y socat",
    keepalived: "apt-get install -y keepalived",
    sshd: "apt-get install -y openssh-server",
    ssh: "apt-get install -y openssh-client",
    "ssh-keygen": "apt-get install -y openssh-client",
    slowhttptest: "apt-get install -y slowhttptest",
    pebble: "apt-get install -y pebble",
    "pebble-challtestsrv": "apt-get install -y pebble",
    lego: "apt-get install -y lego",
    sslscan: "apt-get install -y sslscan",
    promtool: "apt-get install -y --no-install-recommends prometheus",
    prometheus: "apt-get install -y --no-install-recommends prometheus",
};

/** Absolute path of an executable named `name`, or undefined. */
export function findBinary(name: string): string | undefined {
    const dirs = [...(process.env.PATH ?? "").split(path.delimiter).filter(Boolean), ...EXTRA_DIRS];
    for (const dir of dirs) {
        const candidate = path.join(dir, name);
        try {
            accessSync(candidate, constants.X_OK);
            return candidate;
        } catch {
            // not here
        }
    }
    return undefined;
}

export function isCI(): boolean {
    const ci = (process.env.CI ?? "").toLowerCase();
    return ci === "true" || ci === "1";
}

/**
 * Gate a suite on binaries. Returns `describe` when every binary is present.
 * When one is missing: under CI=true it throws (the suite fails loudly, with
 * the reason); elsewhere it warns "SKIPPED: ..." and returns `describe.skip`,
 * so jest reports the tests as skipped, never silently passed.
 *
 *   const describeWithHaproxy = requireBinary("haproxy");
 *   describeWithHaproxy("api_pool", () => { ... });
 */
export function requireBinary(...names: string[]): jest.Describe {
    const missing = names.filter((name) => findBinary(name) === undefined);
    if (missing.length === 0) return describe;
    const reason = missing
        .map((name) => `${name} not found (searched $PATH and ${EXTRA_DIRS.join(", ")}): ${INSTALL_HINTS[name] ?? `install ${name}`}`)
        .join("; ");
    if (isCI()) {
        throw new Error(`CI=true and a required binary is missing: ${reason}`);
    }

    console.warn(`SKIPPED: ${reason}`);
    return describe.skip;
}

/** The version of the `haproxy` the tests run ("3.0.11" from "HAProxy version 3.0.11-1+deb13u4 ..."). */
export function haproxyVersion(): string {
    const bin = findBinary("haproxy");
    if (bin === undefined) throw new Error("haproxy not found");
    const text = execFileSync(bin, ["-v"], { encoding: "utf8" });
    const m = /HA-?Proxy version (\d+\.\d+(?:\.\d+)?)/.exec(text);
    if (m === null) throw new Error(`no version in "haproxy -v": ${text.slice(0, 200)}`);
    return m[1];
}
