import { isIPv6 } from "net";
import { ACME_CHALLENGE_PREFIX } from "./acme";
import { isIpLiteral } from "./address";
import { NODE_METRICS_PATH, NODE_METRICS_PORT } from "./container-paths";
import { edgeView } from "./edge";
import { cookieValue, stableServerIds } from "./identity";
import { applyDefaults, BackendServer, HaproxySettings, ResolvedSettings } from "./settings";
import { renderTemplate } from "./templates";
import { checkPeers, PAIR_SYNC_TABLE, PEERS_PORT, PEERS_SECTION } from "./pair";
import { Checker, SettingsError, shown, validateSettings } from "./validate";

const DEFAULT_WEIGHT = 100;

interface ServerView {
    name: string;
    hostPort: string;
    id: number;
    weight: number;
    cookie: string;
    resolvable: boolean;
}

function serverViews(pool: string, servers: BackendServer[], defaultPort: number, cookieSecret: string): ServerView[] {
    const ids = stableServerIds(servers);
    return servers.map((server) => {
        const port = server.port ?? defaultPort;
        const host = isIPv6(server.address) ? `[${server.address}]` : server.address;
        return {
            name: server.name,
            hostPort: `${host}:${port}`,
            id: ids.get(server.name) as number,
            weight: server.weight ?? DEFAULT_WEIGHT,
            cookie: cookieValue(pool, server.name, cookieSecret),
            resolvable: !isIpLiteral(server.address),
        };
    });
}

/** A node of the load balancer pair, as the peers section names it: its host name (the Incus instance name) and bridge address. */
export interface PeerNode {
    name: string;
    address: string;
}

/** The mustache view for haproxy.cfg: every derived value computed here, none in the template. */
export function configView(s: ResolvedSettings, peers: PeerNode[] = []): object {
    const apiServers = serverViews("api_pool", s.apiServers, s.backendApiPort, s.cookieSecret);
    const streamServers = serverViews("stream_pool", s.streamServers, s.streamServerPort, s.cookieSecret);
    const prefixSegments = s.streamPathPrefix.split("/").filter((segment) => segment !== "").length;
    return {
        ...s,
        ...edgeView(s.trustedProxies, s.rateLimit),
        apiServers,
        streamServers,
        tls: s.tlsCertPath !== "",
        hsts: s.tlsCertPath !== "" && s.hstsMaxAgeSeconds > 0,
        acmeChallenge: s.acmeChallengePort > 0,
        // One node: its own responder on loopback. A pair: both nodes' responders, on the bridge.
        acmeServers:
            peers.length > 0
                ? peers.map((peer) => ({ name: peer.name, hostPort: `${peer.address}:${s.acmeChallengePort}` }))
                : [{ name: "acme", hostPort: `127.0.0.1:${s.acmeChallengePort}` }],
        acmeChallengePrefix: ACME_CHALLENGE_PREFIX,
        httpsPortSuffix: s.listenHttps === 443 ? "" : `:${s.listenHttps}`,
        logEnabled: s.logTarget !== "none",
        logFormat: s.logTarget === "stdout" || s.logTarget === "stderr" ? "format raw " : "",
        slowstart: s.gracefulDrainSeconds > 0,
        resolvers: [...apiServers, ...streamServers].some((server) => server.resolvable),
        trackHash: s.streamHashMode === "track",
        // "/stream/42/seg.ts" splits on "/" into "", "stream", "42", ...: the track id is field prefixSegments + 2.
        trackField: prefixSegments + 2,
        peersEnabled: peers.length > 0,
        peers: peers.map((peer) => ({ ...peer, port: PEERS_PORT })),
        peersSection: PEERS_SECTION,
        pairSyncTable: PAIR_SYNC_TABLE,
        nodeMetricsPort: NODE_METRICS_PORT,
        nodeMetricsPath: NODE_METRICS_PATH,
    };
}

/**
 * Open files HAProxy needs for these settings: two per connection (client and
 * server side), one per server for its checks, and room for listeners,
 * resolvers, logs and the CLI. Measured on HAProxy 2.6: maxconn M with S
 * checked servers starts with 2M + S + 31 and not one fewer.
 */
export function openFilesNeeded(s: ResolvedSettings): number {
    return 2 * s.maxConnections + 2 * (s.apiServers.length + s.streamServers.length) + 256;
}

/**
 * Renders haproxy.cfg from plain settings: applies defaults, validates (throws
 * a SettingsError naming each bad field), and is deterministic: the same
 * settings give a byte-identical file. `peers`: a pair's two nodes, for its
 * peers section (none for one container).
 */
export function renderHaproxyConfig(settings: HaproxySettings, peers: PeerNode[] = []): string {
    if (typeof settings !== "object" || settings === null || Array.isArray(settings)) {
        throw new SettingsError([`settings must be an object of HaproxySettings fields (got ${shown(settings)})`]);
    }
    const resolved = applyDefaults(settings);
    validateSettings(resolved);
    const c = new Checker();
    checkPeers(c, "peers", peers, resolved);
    c.throwIfAny();
    return renderResolved(resolved, peers);
}

/** haproxy.cfg from settings that are already resolved and checked (the component checks them itself, on its own resource). */
export function renderResolved(resolved: ResolvedSettings, peers: PeerNode[] = []): string {
    return renderTemplate("haproxy.cfg.mustache", configView(resolved, peers));
}
