import { isIPv4, isIPv6 } from "net";
import { BackendServer, CERT_DIR, ResolvedSettings } from "./settings";

/*
 * Every value that ends up in haproxy.cfg or a shell script passes through
 * here first, so the character rules are deliberately narrow: a value that
 * matches them cannot break out of a config token or a quoted shell word.
 */

const NAME = /^[A-Za-z0-9._-]{1,64}$/;
const ADDRESS = /^[A-Za-z0-9._-]+$/;
const COOKIE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const HTTP_PATH = /^\/[A-Za-z0-9._~\/-]*$/;
const PATH_PREFIX = /^\/([A-Za-z0-9._~-]+\/)+$/;
const ABSOLUTE_PATH = /^(\/[A-Za-z0-9._-]+)+$/;
const UNIX_USER = /^[a-z_][a-z0-9_-]{0,31}$/;
const PASSWORD = /^[A-Za-z0-9._~+=-]{8,128}$/;
const CHARSET_NAME = "A-Z a-z 0-9 . _ -";
const INSTANCE_NAME = /^[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const IMAGE = /^[A-Za-z0-9][A-Za-z0-9._:\/-]{0,254}$/;
const CERT_FILE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,59}\.pem$/;

/** Thrown for invalid settings; `problems` lists every offending field, one message each. */
export class SettingsError extends Error {
    constructor(public readonly problems: string[]) {
        super(problems.join("\n"));
        this.name = "SettingsError";
    }
}

function shown(value: unknown): string {
    return JSON.stringify(value) ?? String(value);
}

/** One problem: its message, and every field it involves (the first is the one it is about). */
export interface Problem {
    fields: string[];
    message: string;
}

/** Collects problems; each message starts with the field it is about. */
export class Checker {
    readonly found: Problem[] = [];

    get problems(): string[] {
        return this.found.map((p) => p.message);
    }

    /** `related`: other fields a cross-field rule reads. */
    fail(field: string, message: string, ...related: string[]): void {
        this.found.push({ fields: [field, ...related], message: `${field} ${message}` });
    }

    integer(field: string, value: unknown, min: number, max: number): void {
        if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
            this.fail(field, `must be an integer from ${min} to ${max} (got ${shown(value)})`);
        }
    }

    port(field: string, value: unknown): void {
        this.integer(field, value, 1, 65535);
    }

    matches(field: string, value: unknown, pattern: RegExp, allowed: string): boolean {
        if (typeof value !== "string" || !pattern.test(value)) {
            this.fail(field, `${allowed} (got ${shown(value)})`);
            return false;
        }
        return true;
    }

    containerName(field: string, value: unknown): void {
        this.matches(field, value, INSTANCE_NAME,
            "must be an Incus instance name: 1-63 letters, digits and -, starting with a letter, not ending with -");
    }

    /** Where a pushed certificate is written: directly in CERT_DIR, never over a config or system file. */
    certPath(field: string, value: unknown): void {
        const file = typeof value === "string" && value.startsWith(`${CERT_DIR}/`) ? value.slice(CERT_DIR.length + 1) : undefined;
        if (file === undefined || !CERT_FILE.test(file)) {
            this.fail(field, `must be a .pem file directly in ${CERT_DIR}/ (name of A-Z a-z 0-9 . _ -), e.g. "${CERT_DIR}/veza.pem", ` +
                `when the component pushes the certificate (got ${shown(value)})`);
        }
    }

    absolutePath(field: string, value: unknown, emptyMeans?: string): void {
        if (emptyMeans !== undefined && value === "") return;
        const ok = typeof value === "string" && ABSOLUTE_PATH.test(value) && !value.split("/").includes("..");
        if (!ok) {
            const empty = emptyMeans ? `, or "" for ${emptyMeans}` : "";
            this.fail(field, `must be an absolute path of A-Z a-z 0-9 . _ - segments without ".."${empty} (got ${shown(value)})`);
        }
    }
}

function checkAddress(c: Checker, field: string, address: unknown): void {
    if (typeof address === "string" && isIPv6(address)) return;
    c.matches(field, address, ADDRESS, `must be a DNS name or IP address of ${CHARSET_NAME} (or an IPv6 address)`);
}

function checkPool(c: Checker, field: string, servers: unknown): void {
    if (!Array.isArray(servers) || servers.length === 0) {
        c.fail(field, "must list at least one server ({ name, address, port?, weight? })");
        return;
    }
    const seen = new Map<string, number>();
    servers.forEach((server: Partial<BackendServer>, i) => {
        const at = `${field}[${i}]`;
        if (typeof server !== "object" || server === null) {
            c.fail(at, `must be an object { name, address, port?, weight? } (got ${shown(server)})`);
            return;
        }
        if (c.matches(`${at}.name`, server.name, NAME, `must be 1-64 characters of ${CHARSET_NAME}`)) {
            const name = server.name as string;
            const first = seen.get(name);
            if (first !== undefined) {
                c.fail(`${at}.name`, `duplicates ${field}[${first}].name ${shown(name)}; server names must be unique in a pool`);
            } else {
                seen.set(name, i);
            }
        }
        checkAddress(c, `${at}.address`, server.address);
        if (server.port !== undefined) c.port(`${at}.port`, server.port);
        if (server.weight !== undefined) c.integer(`${at}.weight`, server.weight, 0, 256);
    });
}

function checkListeners(c: Checker, s: ResolvedSettings): void {
    const listeners: [string, unknown][] = [["listenHttp", s.listenHttp], ["statsPort", s.statsPort]];
    if (s.tlsCertPath !== "") listeners.push(["listenHttps", s.listenHttps]);
    for (let i = 0; i < listeners.length; i++) {
        for (let j = i + 1; j < listeners.length; j++) {
            if (listeners[i][1] === listeners[j][1]) {
                c.fail(listeners[j][0], `must differ from ${listeners[i][0]}: both are ${shown(listeners[i][1])}; two listeners cannot share a port`, listeners[i][0], "tlsCertPath");
            }
        }
    }
}

/** Checks resolved settings; throws a SettingsError naming every offending field and what is allowed. */
export function validateSettings(s: ResolvedSettings): void {
    const problems = settingsProblems(s);
    if (problems.length > 0) throw new SettingsError(problems.map((p) => p.message));
}

/** Every problem of resolved settings, with the fields each involves. */
export function settingsProblems(s: ResolvedSettings): Problem[] {
    const c = new Checker();
    checkPool(c, "apiServers", s.apiServers);
    checkPool(c, "streamServers", s.streamServers);

    for (const field of ["listenHttp", "listenHttps", "backendApiPort", "streamServerPort", "statsPort"] as const) {
        c.port(field, s[field]);
    }
    checkListeners(c, s);

    c.integer("healthCheckIntervalMs", s.healthCheckIntervalMs, 1, 3600000);
    c.integer("healthCheckFall", s.healthCheckFall, 1, 100);
    c.integer("healthCheckRise", s.healthCheckRise, 1, 100);
    c.integer("gracefulDrainSeconds", s.gracefulDrainSeconds, 0, 3600);
    c.integer("maxConnections", s.maxConnections, 1, 500000);
    c.integer("timeoutClientMs", s.timeoutClientMs, 1, 86400000);
    c.integer("timeoutServerMs", s.timeoutServerMs, 1, 86400000);
    c.integer("timeoutConnectMs", s.timeoutConnectMs, 1, 86400000);
    c.integer("timeoutTunnelMs", s.timeoutTunnelMs, 1, 86400000);
    c.integer("hardStopAfterSeconds", s.hardStopAfterSeconds, 1, 86400);

    c.matches("stickyCookieName", s.stickyCookieName, COOKIE_NAME, "must be 1-64 characters of A-Z a-z 0-9 _ - (a safe cookie token)");
    if (typeof s.cookieSecret !== "string") c.fail("cookieSecret", `must be a string (got ${typeof s.cookieSecret})`);
    c.matches("apiHealthPath", s.apiHealthPath, HTTP_PATH, "must be an absolute URL path of A-Z a-z 0-9 . _ ~ / -");
    c.matches("streamHealthPath", s.streamHealthPath, HTTP_PATH, "must be an absolute URL path of A-Z a-z 0-9 . _ ~ / -");
    c.matches("streamPathPrefix", s.streamPathPrefix, PATH_PREFIX, 'must start and end with "/" and hold segments of A-Z a-z 0-9 . _ ~ -, e.g. "/stream/"');
    if (s.streamHashMode !== "track" && s.streamHashMode !== "uri-whole") {
        c.fail("streamHashMode", `must be "track" or "uri-whole" (got ${shown(s.streamHashMode)})`);
    }
    if (typeof s.httpsRedirect !== "boolean") c.fail("httpsRedirect", `must be true or false (got ${shown(s.httpsRedirect)})`);

    c.matches("statsUser", s.statsUser, /^[A-Za-z0-9._-]{1,64}$/, `must be 1-64 characters of ${CHARSET_NAME}`);
    // Never echo the password itself: the message ends up in logs.
    if (typeof s.statsPassword !== "string" || !PASSWORD.test(s.statsPassword)) {
        c.fail("statsPassword", "must be 8-128 characters of A-Z a-z 0-9 . _ ~ + = - (value not shown)");
    }

    if (s.bindAddress !== "*" && !isIPv4(String(s.bindAddress))) {
        c.fail("bindAddress", `must be "*" or an IPv4 address (got ${shown(s.bindAddress)})`);
    }
    if (!isIPv4(String(s.statsBindAddress)) || !String(s.statsBindAddress).startsWith("127.")) {
        c.fail("statsBindAddress", `must be a loopback address in 127.0.0.0/8; stats are never exposed publicly (got ${shown(s.statsBindAddress)})`);
    }

    c.absolutePath("tlsCertPath", s.tlsCertPath, "HTTP only");
    c.absolutePath("adminSocketPath", s.adminSocketPath);
    c.absolutePath("serverStateFile", s.serverStateFile);
    c.absolutePath("chrootDir", s.chrootDir, "no chroot");
    if (!["stdout", "stderr", "none"].includes(s.logTarget)) {
        c.absolutePath("logTarget", s.logTarget);
    }
    for (const field of ["runAsUser", "runAsGroup"] as const) {
        if (s[field] !== "") c.matches(field, s[field], UNIX_USER, 'must be a Unix user/group name ([a-z_][a-z0-9_-]*), or "" to keep the current one');
    }

    return c.found;
}

/** Where and how the HAProxy container is provisioned: checked before any command runs. */
export interface ProvisioningSettings {
    containerName: string;
    image: string;
    profiles: string[];
}

export function validateProvisioning(p: ProvisioningSettings): void {
    const c = new Checker();
    c.containerName("containerName", p.containerName);
    c.matches("image", p.image, IMAGE, 'must be an Incus image reference such as "images:debian/12" or a local alias (A-Z a-z 0-9 . _ : / -)');
    if (!Array.isArray(p.profiles) || p.profiles.length === 0) {
        c.fail("profiles", 'must list at least one Incus profile, e.g. ["default"]');
    } else {
        p.profiles.forEach((profile, i) => c.matches(`profiles[${i}]`, profile, NAME, `must be an Incus profile name of ${CHARSET_NAME}`));
    }
    if (c.problems.length > 0) throw new SettingsError(c.problems);
}

/** A certificate is only usable with its key, and the other way round. */
export function validateTlsPair(certificatePem: string, privateKeyPem: string): void {
    const problems: string[] = [];
    if (!/-----BEGIN CERTIFICATE-----/.test(certificatePem)) {
        problems.push("tls.certificatePem must be a PEM certificate (-----BEGIN CERTIFICATE-----)");
    }
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(privateKeyPem)) {
        problems.push("tls.privateKeyPem must be the certificate's PEM private key (-----BEGIN ... PRIVATE KEY-----); a certificate without its key cannot serve HTTPS (value not shown)");
    }
    if (problems.length > 0) throw new SettingsError(problems);
}
