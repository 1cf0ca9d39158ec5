import { isIPv4 } from "net";
import { Checker, shown } from "./checker";
import { checkCidrList, checkRateLimit, RateLimit } from "./edge";
import { BackendServer, checkPool } from "./pools";

export { BackendServer } from "./pools";
export { RateLimit } from "./edge";
export { CERT_DIR, DEFAULT_TLS_CERT_PATH } from "./container-paths";

/** How stream_pool picks a server for a request. */
export type StreamHashMode = "track" | "uri-whole";
/** The sticky cookie's SameSite attribute. */
export type CookieSameSite = "Lax" | "Strict" | "None";
/** Which requests may take an idle connection to a server (HAProxy's http-reuse). */
export type ServerConnectionReuse = "always" | "safe";

/**
 * One setting, defined once: its default, a one-line doc (the docs'
 * config table row is made from it), the rule its value must follow, and
 * how the stack config reads it (`haproxy:<name>`). `internal` settings are
 * process details the test harness changes; they are not component args.
 */
interface Setting<T> {
    default?: T;
    /** How the config table shows the default when it is not a plain value. */
    shownDefault?: string;
    doc: string;
    check: (c: Checker, field: string, value: unknown) => void;
    stack?: "number" | "string" | "boolean" | "object" | "secret";
    internal?: true;
}

const setting = <T>(spec: Setting<T>): Setting<T> => spec;

const COOKIE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const HTTP_PATH = /^\/[A-Za-z0-9._~/-]*$/;
const PATH_PREFIX = /^\/([A-Za-z0-9._~-]+\/)+$/;
const UNIX_USER = /^[a-z_][a-z0-9_-]{0,31}$/;
const PASSWORD = /^[A-Za-z0-9._~+=-]{8,128}$/;
const USER = /^[A-Za-z0-9._-]{1,64}$/;

const port = (c: Checker, field: string, value: unknown) => c.port(field, value);
const int = (min: number, max: number) => (c: Checker, field: string, value: unknown) => c.integer(field, value, min, max);
const path = (pattern: RegExp, allowed: string) => (c: Checker, field: string, value: unknown) =>
    void c.matches(field, value, pattern, allowed);
const absolute = (emptyMeans?: string) => (c: Checker, field: string, value: unknown) => c.absolutePath(field, value, emptyMeans);
const unixName = (c: Checker, field: string, value: unknown) => {
    if (value !== "")
        c.matches(field, value, UNIX_USER, 'must be a Unix user/group name ([a-z_][a-z0-9_-]*), or "" to keep the current one');
};
const HEALTH_PATH = "must be an absolute URL path of A-Z a-z 0-9 . _ ~ / -";

/**
 * Every haproxy.cfg setting, in the order their rules are checked. Adding a
 * setting is one entry here plus its use in templates/haproxy.cfg.mustache.
 */
export const SETTINGS = {
    apiServers: setting<BackendServer[]>({
        shownDefault: "required",
        doc: "api_pool members (backend-api)",
        check: checkPool,
        stack: "object",
    }),
    streamServers: setting<BackendServer[]>({
        shownDefault: "required",
        doc: "stream_pool members (stream-server)",
        check: checkPool,
        stack: "object",
    }),
    listenHttp: setting<number>({ default: 80, doc: "HTTP listener", check: port, stack: "number" }),
    listenHttps: setting<number>({ default: 443, doc: "HTTPS listener, bound only with a certificate", check: port, stack: "number" }),
    backendApiPort: setting<number>({ default: 8080, doc: "upstream port for backend-api", check: port, stack: "number" }),
    streamServerPort: setting<number>({ default: 8082, doc: "upstream port for stream-server", check: port, stack: "number" }),
    statsPort: setting<number>({
        default: 9100,
        doc: "stats UI and `/metrics`, on 127.0.0.1 in the container",
        check: port,
        stack: "number",
    }),
    // Below 100 ms the checks are load, not health: each server would take 10+ per second per pool.
    healthCheckIntervalMs: setting<number>({
        default: 5000,
        doc: "active-check cadence, 100-3600000 (a warning below 1000)",
        check: int(100, 3600000),
        stack: "number",
    }),
    healthCheckFall: setting<number>({ default: 3, doc: 'failed checks before "down"', check: int(1, 100), stack: "number" }),
    healthCheckRise: setting<number>({ default: 2, doc: 'successful checks before "up"', check: int(1, 100), stack: "number" }),
    gracefulDrainSeconds: setting<number>({
        default: 30,
        doc: "post-recovery weight ramp-up (slowstart); 0 disables",
        check: int(0, 3600),
        stack: "number",
    }),
    // ~2 open files per connection: 100000 needs ~200k, which the config step checks against the container's limit.
    maxConnections: setting<number>({
        default: 4000,
        doc: "global maxconn, 1-100000; needs about 2 open files per connection (plus 2 per server and 256), which the config step checks against what haproxy may hold in the container (exit 9)",
        check: int(1, 100000),
        stack: "number",
    }),
    timeoutClientMs: setting<number>({ default: 30000, doc: "client inactivity timeout", check: int(1, 86400000), stack: "number" }),
    timeoutServerMs: setting<number>({ default: 30000, doc: "server inactivity timeout", check: int(1, 86400000), stack: "number" }),
    timeoutConnectMs: setting<number>({ default: 5000, doc: "connect timeout", check: int(1, 86400000), stack: "number" }),
    timeoutTunnelMs: setting<number>({
        default: 3600000,
        doc: "idle timeout of an upgraded WebSocket",
        check: int(1, 86400000),
        stack: "number",
    }),
    serverConnectionReuse: setting<ServerConnectionReuse>({
        default: "always",
        doc:
            "`always`: a new client connection's first request may take an idle connection to a server, so a new client costs no TCP connect to the backend " +
            "(if the server closes that connection at the same instant, GET, HEAD and OPTIONS are retried; another method gets a 502); " +
            "`safe`: HAProxy's default, every client connection's first request opens its own (docs/performance.md)",
        check: (c, field, value) => {
            if (value !== "always" && value !== "safe") c.fail(field, `must be "always" or "safe" (got ${shown(value)})`);
        },
        stack: "string",
    }),
    hardStopAfterSeconds: setting<number>({
        default: 600,
        doc: "how long an old worker may finish sessions after a reload",
        check: int(1, 86400),
        stack: "number",
    }),
    stickyCookieName: setting<string>({
        default: "VEZA_SERVERID",
        doc: "cookie name for backend stickiness",
        check: path(COOKIE_NAME, "must be 1-64 characters of A-Z a-z 0-9 _ - (a safe cookie token)"),
        stack: "string",
    }),
    cookieSecret: setting<string>({
        default: "",
        doc: "key of the HMAC that turns server names into cookie values",
        check: (c, field, value) => {
            if (typeof value !== "string") c.fail(field, `must be a string (got ${typeof value})`);
        },
    }),
    apiHealthPath: setting<string>({
        default: "/api/v1/health",
        doc: "api_pool health check (GET)",
        check: path(HTTP_PATH, HEALTH_PATH),
        stack: "string",
    }),
    streamHealthPath: setting<string>({
        default: "/health",
        doc: "stream_pool health check (GET)",
        check: path(HTTP_PATH, HEALTH_PATH),
        stack: "string",
    }),
    streamPathPrefix: setting<string>({
        default: "/stream/",
        doc: "requests under it go to stream_pool",
        check: path(PATH_PREFIX, 'must start and end with "/" and hold segments of A-Z a-z 0-9 . _ ~ -, e.g. "/stream/"'),
        stack: "string",
    }),
    streamHashMode: setting<StreamHashMode>({
        default: "track",
        doc: "`track` hashes the track id; `uri-whole` is the seed's `balance uri whole`",
        check: (c, field, value) => {
            if (value !== "track" && value !== "uri-whole") c.fail(field, `must be "track" or "uri-whole" (got ${shown(value)})`);
        },
        stack: "string",
    }),
    httpsRedirect: setting<boolean>({
        default: true,
        doc: "with TLS on, redirect HTTP to HTTPS (301 to the same host and path on `listenHttps`; no port in the URL when it is 443)",
        check: (c, field, value) => {
            if (typeof value !== "boolean") c.fail(field, `must be true or false (got ${shown(value)})`);
        },
        stack: "boolean",
    }),
    hstsMaxAgeSeconds: setting<number>({
        default: 0,
        doc: "with TLS on, HTTPS responses carry `Strict-Transport-Security: max-age=<this>`; 0 = off (docs/edge-protection.md: what it pins and how to roll it out)",
        check: int(0, 63072000),
        stack: "number",
    }),
    stickyCookieSameSite: setting<CookieSameSite>({
        default: "Lax",
        doc: "SameSite attribute of the sticky cookie: `Lax`, `Strict`, or `None` (only with TLS: browsers drop `SameSite=None` cookies that are not `Secure`)",
        check: (c, field, value) => {
            if (value !== "Lax" && value !== "Strict" && value !== "None")
                c.fail(field, `must be "Lax", "Strict" or "None" (got ${shown(value)})`);
        },
        stack: "string",
    }),
    trustedProxies: setting<string[]>({
        default: [],
        shownDefault: "`[]`",
        doc: "addresses or CIDRs of proxies in front of this one (a CDN, a cloud LB): only their X-Forwarded-For is kept, and rate limits key on the client address they report; from anyone else it is dropped. Never every address, in any spelling (0.0.0.0/1 + 128.0.0.0/1, ::ffff:0:0/96); any length (a CDN's ranges: long lists are split over config lines)",
        check: checkCidrList,
        stack: "object",
    }),
    rateLimit: setting<RateLimit | undefined>({
        default: undefined,
        shownDefault: "off",
        doc: "per-client-IP limits `{ requests, periodSeconds, maxConcurrentPerClient?, allowlist? }`: over them, 429 with Retry-After, counted on the `veza_rate_limited` stats line (docs/edge-protection.md); the allowlist never covers every address, in any spelling, and may be any length",
        check: checkRateLimit,
        stack: "object",
    }),
    statsUser: setting<string>({
        default: "admin",
        doc: "stats UI user",
        check: path(USER, "must be 1-64 characters of A-Z a-z 0-9 . _ -"),
        stack: "string",
    }),
    statsPassword: setting<string>({
        shownDefault: "random",
        doc: "stats UI password (secret); 32 random characters when unset",
        // Never echo the password itself: the message ends up in logs.
        check: (c, field, value) => {
            if (typeof value !== "string" || !PASSWORD.test(value))
                c.fail(field, "must be 8-128 characters of A-Z a-z 0-9 . _ ~ + = - (value not shown)");
        },
        stack: "secret",
    }),
    tlsCertPath: setting<string>({
        default: "",
        doc: 'PEM (cert + key) path in the container; `""` = HTTP only, or `/etc/haproxy/certs/veza.pem` when a certificate is pushed; a pushed certificate only goes to a `.pem` file directly in `/etc/haproxy/certs/` (nothing else lives there)',
        check: absolute("HTTP only"),
        stack: "string",
    }),
    bindAddress: setting<string>({
        default: "*",
        doc: 'address the public listeners bind to: "*" or an IPv4 address',
        check: (c, field, value) => {
            if (value !== "*" && !isIPv4(String(value))) c.fail(field, `must be "*" or an IPv4 address (got ${shown(value)})`);
        },
        internal: true,
    }),
    statsBindAddress: setting<string>({
        default: "127.0.0.1",
        doc: "loopback address of the stats/metrics listener",
        check: (c, field, value) => {
            if (!isIPv4(String(value)) || !String(value).startsWith("127.")) {
                c.fail(field, `must be a loopback address in 127.0.0.0/8; stats are never exposed publicly (got ${shown(value)})`);
            }
        },
        internal: true,
    }),
    acmeChallengePort: setting<number>({
        default: 0,
        doc: "loopback port of the ACME client's HTTP-01 responder, where /.well-known/acme-challenge/ goes (before the HTTPS redirect); 0 = no ACME. The component sets it with tls.acme",
        check: int(0, 65535),
        internal: true,
    }),
    peersCertPath: setting<string>({
        default: "/etc/haproxy/certs/veza-peers.pem",
        doc: "a pair's peers certificate and key (the component's own, pushed to both nodes): the peers listener speaks mutual TLS with it, so only the two nodes can reach each other's tables",
        check: absolute(),
        internal: true,
    }),
    adminSocketPath: setting<string>({
        default: "/run/haproxy/admin.sock",
        doc: "runtime API socket (level admin)",
        check: absolute(),
        internal: true,
    }),
    serverStateFile: setting<string>({
        default: "/var/lib/haproxy/server-state",
        doc: "where server states are saved before a reload and loaded after",
        check: absolute(),
        internal: true,
    }),
    chrootDir: setting<string>({
        default: "/var/lib/haproxy",
        doc: 'chroot directory; "" disables',
        check: absolute("no chroot"),
        internal: true,
    }),
    logTarget: setting<string>({
        default: "/dev/log",
        doc: 'log target: an absolute socket path, "stdout", "stderr", or "none"',
        check: (c, field, value) => {
            if (!["stdout", "stderr", "none"].includes(value as string)) c.absolutePath(field, value);
        },
        internal: true,
    }),
    runAsUser: setting<string>({
        default: "haproxy",
        doc: 'user the workers drop to; "" keeps the current one',
        check: unixName,
        internal: true,
    }),
    runAsGroup: setting<string>({
        default: "haproxy",
        doc: 'group the workers drop to; "" keeps the current one',
        check: unixName,
        internal: true,
    }),
};

type Table = typeof SETTINGS;
type ValueOf<S> = S extends Setting<infer T> ? T : never;
type Required_ = "apiServers" | "streamServers";

/**
 * Everything haproxy.cfg needs, as plain values: the pools are required, every
 * other field falls back to its default (see `applyDefaults`); statsPassword
 * has none (the component generates one).
 */
export type HaproxySettings = { [K in Required_]: ValueOf<Table[K]> } & { [K in Exclude<keyof Table, Required_>]?: ValueOf<Table[K]> };

/** Settings with every default applied: what the renderer works from. */
export type ResolvedSettings = { [K in keyof Table]-?: ValueOf<Table[K]> };

/** The settings a component user sets (all but the harness's process details). */
export type PublicSettingName = { [K in keyof Table]: Table[K] extends { internal: true } ? never : K }[keyof Table];

/** Every field HaproxySettings has. */
export const SETTINGS_KEYS = Object.keys(SETTINGS) as (keyof Table)[];

/** The fields that have a default, with it. */
export const DEFAULT_SETTINGS = Object.fromEntries(
    Object.entries(SETTINGS)
        .filter(([, s]) => "default" in s)
        .map(([key, s]) => [key, (s as Setting<unknown>).default]),
) as Omit<ResolvedSettings, "apiServers" | "streamServers" | "statsPassword">;

/**
 * Returns a new object with every unset field taken from DEFAULT_SETTINGS.
 * `undefined` counts as unset so callers can spread optional config straight in.
 */
export function applyDefaults(settings: HaproxySettings): ResolvedSettings {
    const resolved: Record<string, unknown> = { ...DEFAULT_SETTINGS, statsPassword: "" };
    for (const [key, value] of Object.entries(settings)) {
        if (value !== undefined) resolved[key] = value;
    }
    return resolved as ResolvedSettings;
}
