import { isIPv4 } from "net";
import { isSelfAddress, memberAddressProblem } from "./address";
import { primaryServerId } from "./identity";
import { BackendServer, CERT_DIR, DEFAULT_SETTINGS, ResolvedSettings } from "./settings";

/*
 * Every value that ends up in haproxy.cfg or a shell script passes through
 * here first, so the character rules are deliberately narrow: a value that
 * matches them cannot break out of a config token or a quoted shell word.
 */

const NAME = /^[A-Za-z0-9._-]{1,64}$/;
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

/** Any value as it can be shown in a message: never throws (BigInt, circular objects, NaN, symbols). */
export function shown(value: unknown): string {
    if (typeof value === "bigint") return `${value}n`;
    if (typeof value === "number" && !Number.isFinite(value)) return String(value);
    if (typeof value === "symbol" || typeof value === "function") return String(value);
    if (value === undefined) return "undefined";
    try {
        const text = JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? `${v}n` : v));
        return text.length > 200 ? `${text.slice(0, 200)}...` : text;
    } catch {
        return Array.isArray(value) ? "an array that contains itself" : "an object that contains itself";
    }
}

/** Levenshtein distance, for "did you mean" hints. */
function distance(a: string, b: string): number {
    const row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
        let diagonal = row[0];
        row[0] = i;
        for (let j = 1; j <= b.length; j++) {
            const above = row[j];
            row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
            diagonal = above;
        }
    }
    return row[b.length];
}

/** The known key nearest to a typo, if one is near enough to be what was meant. */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
    let best: string | undefined;
    let bestDistance = Infinity;
    for (const candidate of known) {
        const d = candidate.toLowerCase() === key.toLowerCase() ? 0 : distance(key, candidate);
        if (d < bestDistance) [best, bestDistance] = [candidate, d];
    }
    return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
    return typeof value === "object" && value !== null && !Array.isArray(value);
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

    /** Every key of `value` must be one of `known`; a typo gets the nearest known key as a hint. */
    knownKeys(field: string, value: unknown, known: readonly string[]): void {
        if (!isRecord(value)) return;
        for (const key of Object.keys(value)) {
            if (known.includes(key)) continue;
            const hint = nearestKey(key, known);
            const at = field === "" ? key : `${field}.${key}`;
            this.fail(at, hint ? `is not a known setting: did you mean ${hint}?` : `is not a known setting (known: ${known.join(", ")})`);
        }
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
    const problem = memberAddressProblem(address);
    if (problem !== undefined) c.fail(field, `${problem} (got ${shown(address)})`);
}

/** The fields of a pool entry. */
export const SERVER_KEYS = ["name", "address", "port", "weight"] as const;

/**
 * A member on a loopback address and one of the load balancer's own ports
 * is the load balancer itself: a loop through the public listener, or the
 * stats listener published without its password.
 */
function checkNotOwnListener(c: Checker, field: string, servers: unknown, defaultPort: unknown, own: [string, unknown][]): void {
    if (!Array.isArray(servers)) return;
    servers.forEach((server: unknown, i) => {
        if (!isRecord(server) || typeof server.address !== "string" || memberAddressProblem(server.address) !== undefined) return;
        if (!isSelfAddress(server.address)) return;
        const port = server.port ?? defaultPort;
        const hit = own.find(([, p]) => p === port);
        if (hit) {
            c.fail(`${field}[${i}].address`, `with port ${shown(port)} is this load balancer's own ${hit[0]} listener (a loopback address): ` +
                `requests would loop back into it${hit[0] === "statsPort" ? " and publish the stats without their password" : ""} (got ${shown(server.address)})`, hit[0]);
        }
    });
}

function checkPool(c: Checker, field: string, servers: unknown): void {
    if (!Array.isArray(servers) || servers.length === 0) {
        c.fail(field, "must list at least one server ({ name, address, port?, weight? })");
        return;
    }
    const seen = new Map<string, number>();
    const ids = new Map<number, number>();
    servers.forEach((server: Partial<BackendServer>, i) => {
        const at = `${field}[${i}]`;
        if (!isRecord(server)) {
            c.fail(at, `must be an object { name, address, port?, weight? } (got ${shown(server)})`);
            return;
        }
        c.knownKeys(at, server, SERVER_KEYS);
        if (c.matches(`${at}.name`, server.name, NAME, `must be 1-64 characters of ${CHARSET_NAME}`)) {
            const name = server.name as string;
            const first = seen.get(name);
            if (first !== undefined) {
                c.fail(`${at}.name`, `duplicates ${field}[${first}].name ${shown(name)}; server names must be unique in a pool`);
            } else {
                seen.set(name, i);
                // A server's id (its place on the hash ring) comes from its name
                // alone, so no other server can ever move it; two names on one id
                // cannot both have it, and one of them would move.
                const id = primaryServerId(name);
                const holder = ids.get(id);
                if (holder !== undefined) {
                    c.fail(`${at}.name`, `takes the same server id (${id}) as ${field}[${holder}].name ${shown((servers[holder] as BackendServer).name)}: ` +
                        "ids come from names so that adding a server never moves another; rename one of the two");
                } else {
                    ids.set(id, i);
                }
            }
        }
        checkAddress(c, `${at}.address`, server.address);
        if (server.port !== undefined) c.port(`${at}.port`, server.port);
        if (server.weight !== undefined) c.integer(`${at}.weight`, server.weight, 0, 256);
    });
    if (servers.length > 0 && servers.every((server) => isRecord(server) && server.weight === 0)) {
        c.fail(field, "has every server at weight 0: the pool could never serve a request; give at least one server a weight of 1-256");
    }
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

/** Every field HaproxySettings has. */
export const SETTINGS_KEYS: readonly string[] = ["apiServers", "streamServers", "statsPassword", ...Object.keys(DEFAULT_SETTINGS)];

/**
 * Legal but unusual values: said as warnings (the component logs them on
 * itself), never refused.
 */
export function settingsWarnings(s: ResolvedSettings): string[] {
    const warnings: string[] = [];
    if (Number.isInteger(s.healthCheckIntervalMs) && s.healthCheckIntervalMs < 1000) {
        warnings.push(`healthCheckIntervalMs is ${s.healthCheckIntervalMs}: every server gets a check more than once a second from each pool it is in; 1000-5000 is usual`);
    }
    for (const pool of ["apiServers", "streamServers"] as const) {
        const servers = Array.isArray(s[pool]) ? s[pool] : [];
        const idle = servers.filter((server) => isRecord(server) && server.weight === 0);
        if (idle.length > 0 && idle.length < servers.length) {
            warnings.push(`${pool}: ${idle.map((server) => server.name).join(", ")} at weight 0 take no new traffic (as if drained)`);
        }
    }
    if (Number.isInteger(s.timeoutServerMs) && Number.isInteger(s.healthCheckIntervalMs) && s.timeoutServerMs < 1000) {
        warnings.push(`timeoutServerMs is ${s.timeoutServerMs}: a response slower than that is cut with a 504`);
    }
    return warnings;
}

/** Checks resolved settings; throws a SettingsError naming every offending field and what is allowed. */
export function validateSettings(s: ResolvedSettings): void {
    const problems = settingsProblems(s);
    if (problems.length > 0) throw new SettingsError(problems.map((p) => p.message));
}

/** Every problem of resolved settings, with the fields each involves. */
export function settingsProblems(s: ResolvedSettings): Problem[] {
    const c = new Checker();
    c.knownKeys("", s, SETTINGS_KEYS);
    checkPool(c, "apiServers", s.apiServers);
    checkPool(c, "streamServers", s.streamServers);

    for (const field of ["listenHttp", "listenHttps", "backendApiPort", "streamServerPort", "statsPort"] as const) {
        c.port(field, s[field]);
    }
    checkListeners(c, s);
    const own: [string, unknown][] = [["statsPort", s.statsPort], ["listenHttp", s.listenHttp]];
    if (s.tlsCertPath !== "") own.push(["listenHttps", s.listenHttps]);
    checkNotOwnListener(c, "apiServers", s.apiServers, s.backendApiPort, own);
    checkNotOwnListener(c, "streamServers", s.streamServers, s.streamServerPort, own);

    // Below 100 ms the checks are load, not health: each server would take 10+ per second per pool.
    c.integer("healthCheckIntervalMs", s.healthCheckIntervalMs, 100, 3600000);
    c.integer("healthCheckFall", s.healthCheckFall, 1, 100);
    c.integer("healthCheckRise", s.healthCheckRise, 1, 100);
    c.integer("gracefulDrainSeconds", s.gracefulDrainSeconds, 0, 3600);
    // ~2 open files per connection: 100000 needs ~200k, which the step checks against the container's limit.
    c.integer("maxConnections", s.maxConnections, 1, 100000);
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
