/** One upstream server in a pool. */
export interface BackendServer {
    /** HAProxy server name, e.g. `backend-api-1`. Stable identity: cookie value and hash-ring id derive from it. */
    name: string;
    /** DNS name or IP, e.g. `backend-api-1.lxd`. Hostnames are re-resolved at runtime through the container's resolver. */
    address: string;
    /** Upstream port. Default: the pool's port (`backendApiPort` / `streamServerPort`). */
    port?: number;
    /** Relative weight 0-256. Default: 100. */
    weight?: number;
}

/** How stream_pool picks a server for a request. */
export type StreamHashMode = "track" | "uri-whole";

/**
 * Everything haproxy.cfg needs, as plain values. Optional fields fall back to
 * DEFAULT_SETTINGS (see `applyDefaults`).
 */
export interface HaproxySettings {
    /** api_pool members (backend-api). Required, at least one. */
    apiServers: BackendServer[];
    /** stream_pool members (stream-server). Required, at least one. */
    streamServers: BackendServer[];
    /** HTTP listener port. Default: 80. */
    listenHttp?: number;
    /** HTTPS listener port, bound only when `tlsCertPath` is set. Default: 443. */
    listenHttps?: number;
    /** PEM (cert + key) inside the container: a `.pem` file directly in /etc/haproxy/certs/. Default: "" (HTTP only). */
    tlsCertPath?: string;
    /** With TLS on, redirect plain HTTP to HTTPS. Default: true. */
    httpsRedirect?: boolean;
    /** Upstream port for backend-api servers without their own port. Default: 8080. */
    backendApiPort?: number;
    /** Upstream port for stream-server servers without their own port. Default: 8082. */
    streamServerPort?: number;
    /** Active health-check cadence in ms. Default: 5000. */
    healthCheckIntervalMs?: number;
    /** Consecutive failed checks before a server is DOWN. Default: 3. */
    healthCheckFall?: number;
    /** Consecutive successful checks before a server is UP again. Default: 2. */
    healthCheckRise?: number;
    /** Seconds over which a recovered server's weight ramps up (slowstart); 0 disables. Default: 30. */
    gracefulDrainSeconds?: number;
    /** Sticky cookie name for api_pool. Default: "VEZA_SERVERID". */
    stickyCookieName?: string;
    /** Key for the HMAC that turns server names into opaque cookie values. Default: "" (plain SHA-256). */
    cookieSecret?: string;
    /** Health-check path for api_pool. Default: "/api/v1/health". */
    apiHealthPath?: string;
    /** Health-check path for stream_pool. Default: "/health". */
    streamHealthPath?: string;
    /** Requests whose path starts with this go to stream_pool. Default: "/stream/". */
    streamPathPrefix?: string;
    /** "track" hashes `<prefix><track_id>` only; "uri-whole" is the seed's `balance uri whole`. Default: "track". */
    streamHashMode?: StreamHashMode;
    /** Stats/metrics listener port (loopback only). Default: 9100. */
    statsPort?: number;
    /** Stats UI user name. Default: "admin". */
    statsUser?: string;
    /** Stats UI password. Required (the component generates one when absent). */
    statsPassword?: string;
    /** Global connection limit; must fit the host's open-file limit (~2 fds per connection). Default: 4000. */
    maxConnections?: number;
    /** Client inactivity timeout in ms. Default: 30000. */
    timeoutClientMs?: number;
    /** Server inactivity timeout in ms. Default: 30000. */
    timeoutServerMs?: number;
    /** Connect timeout in ms. Default: 5000. */
    timeoutConnectMs?: number;
    /** Idle timeout of an upgraded WebSocket tunnel in ms. Default: 3600000 (1 h). */
    timeoutTunnelMs?: number;
    /** Seconds an old worker may keep serving long-lived sessions after a reload. Default: 600. */
    hardStopAfterSeconds?: number;
    /** Address the public listeners bind to: "*" or an IPv4 address. Default: "*". */
    bindAddress?: string;
    /** Loopback address of the stats/metrics listener. Default: "127.0.0.1". */
    statsBindAddress?: string;
    /** Runtime API socket (level admin). Default: "/run/haproxy/admin.sock". */
    adminSocketPath?: string;
    /** Where server states are saved before a reload and loaded after. Default: "/var/lib/haproxy/server-state". */
    serverStateFile?: string;
    /** chroot directory; "" disables. Default: "/var/lib/haproxy". */
    chrootDir?: string;
    /** User/group the workers drop to; "" keeps the current one. Default: "haproxy". */
    runAsUser?: string;
    /** Default: "haproxy". */
    runAsGroup?: string;
    /** Log target: an absolute socket path, "stdout", "stderr", or "none". Default: "/dev/log". */
    logTarget?: string;
}

/** The only directory certificates are written to: nothing else lives there, so a certificate can never land on another file. */
export const CERT_DIR = "/etc/haproxy/certs";
/** Where the component installs a pushed certificate when `tlsCertPath` is unset. */
export const DEFAULT_TLS_CERT_PATH = `${CERT_DIR}/veza.pem`;

/** Settings with every default applied: what the renderer works from. */
export type ResolvedSettings = Required<HaproxySettings>;

export const DEFAULT_SETTINGS: Omit<ResolvedSettings, "apiServers" | "streamServers" | "statsPassword"> = {
    listenHttp: 80,
    listenHttps: 443,
    tlsCertPath: "",
    httpsRedirect: true,
    backendApiPort: 8080,
    streamServerPort: 8082,
    healthCheckIntervalMs: 5000,
    healthCheckFall: 3,
    healthCheckRise: 2,
    gracefulDrainSeconds: 30,
    stickyCookieName: "VEZA_SERVERID",
    cookieSecret: "",
    apiHealthPath: "/api/v1/health",
    streamHealthPath: "/health",
    streamPathPrefix: "/stream/",
    streamHashMode: "track",
    statsPort: 9100,
    statsUser: "admin",
    maxConnections: 4000,
    timeoutClientMs: 30000,
    timeoutServerMs: 30000,
    timeoutConnectMs: 5000,
    timeoutTunnelMs: 3600000,
    hardStopAfterSeconds: 600,
    bindAddress: "*",
    statsBindAddress: "127.0.0.1",
    adminSocketPath: "/run/haproxy/admin.sock",
    serverStateFile: "/var/lib/haproxy/server-state",
    chrootDir: "/var/lib/haproxy",
    runAsUser: "haproxy",
    runAsGroup: "haproxy",
    logTarget: "/dev/log",
};

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
