/*
 * Named edits of the product's rendered haproxy.cfg, for experiments only
 * (bench/tune.ts, and the proxy-cost scenario's BENCH_COST_VARIANTS): each
 * variant is a list of text edits applied to a COPY of the rendered config,
 * never to templates/. A variant that proves a net win in the same run as
 * "product" goes into the renderer; this table keeps the tried ones.
 */

export type Edit = (cfg: string) => string;

export function addToSection(section: RegExp, lines: string[]): Edit {
    return (cfg) => {
        const m = section.exec(cfg);
        if (!m) throw new Error(`section ${section} not found`);
        const at = m.index + m[0].length;
        return cfg.slice(0, at) + lines.map((l) => `\n    ${l}`).join("") + cfg.slice(at);
    };
}

export function dropLines(pattern: RegExp): Edit {
    return (cfg) => {
        const out = cfg.split("\n").filter((l) => !pattern.test(l));
        if (out.length === cfg.split("\n").length) throw new Error(`no line matches ${pattern}`);
        return out.join("\n");
    };
}

/** api_pool without shutdown-sessions + api_ws (same servers, `track`, shutdown-sessions) for upgrades. */
export function splitWebSockets(cfg: string): string {
    const m = /^backend api_pool\n[\s\S]*?\n\n/m.exec(cfg);
    if (!m) throw new Error("backend api_pool not found");
    const block = m[0];
    const lines = block.split("\n");
    const cookie = lines.find((l) => /^\s+cookie /.test(l));
    const servers = lines.filter((l) => /^\s+server /.test(l)).map((l) => `${l} track api_pool/${l.trim().split(/\s+/)[1]}`);
    const ws = [
        "backend api_ws",
        "    balance roundrobin",
        cookie ?? "",
        "    default-server on-marked-down shutdown-sessions",
        ...servers,
    ].filter(Boolean);
    const out = cfg.replace(block, block.replace(" on-marked-down shutdown-sessions", "") + ws.join("\n") + "\n\n");
    return out.replace(
        /^(\s+)default_backend api_pool$/m,
        "$1use_backend api_ws if { hdr(upgrade) -i websocket }\n$1default_backend api_pool",
    );
}

const GLOBAL = /^global$/m;
const DEFAULTS = /^defaults$/m;

/** The product's http-reuse line (serverConnectionReuse) set to `mode`: an added line would lose to it, the last in defaults wins. */
const reuse =
    (mode: string): Edit =>
    (cfg) => {
        const line = /^(\s+)http-reuse \S+$/m;
        if (!line.test(cfg)) throw new Error("no http-reuse line in the config");
        return cfg.replace(line, `$1http-reuse ${mode}`);
    };

export const VARIANTS: Record<string, Edit[]> = {
    product: [],
    nbthread1: [addToSection(GLOBAL, ["nbthread 1"])],
    "cpu-map": [addToSection(GLOBAL, ["nbthread 2", "cpu-map auto:1/1-2 0-1"])],
    "no-httplog": [dropLines(/^\s+option httplog$/)],
    "no-l7-retries": [dropLines(/^\s+retry-on /), dropLines(/disable-l7-retry/)],
    "reuse-always": [reuse("always")],
    // HAProxy's default, the product's before serverConnectionReuse.
    "reuse-safe": [reuse("safe")],
    "no-forwardfor": [dropLines(/^\s+option forwardfor$/)],
    "bufsize-32k": [addToSection(GLOBAL, ["tune.bufsize 32768"])],
    "maxconn-8000": [(cfg) => cfg.replace(/^(\s+)maxconn \d+$/m, "$1maxconn 8000")],
    "no-xfp-headers": [dropLines(/set-header X-Forwarded-Proto/)],
    "nbthread1-no-l7": [addToSection(GLOBAL, ["nbthread 1"]), dropLines(/^\s+retry-on /), dropLines(/disable-l7-retry/)],
    "no-cookie-nocache": [(cfg) => cfg.replace(/^(\s+cookie \S+ insert indirect) nocache/m, "$1")],
    "no-disable-l7-rule": [dropLines(/disable-l7-retry/)],
    // The floor: everything optional in the request path removed (NOT a proposal).
    minimal: [
        dropLines(/^\s+option httplog$/),
        dropLines(/^\s+option forwardfor$/),
        dropLines(/set-header X-Forwarded-Proto/),
        dropLines(/^\s+retry-on /),
        dropLines(/disable-l7-retry/),
    ],
    // Proxy cost (npm run bench:tune, or BENCH_ONLY=cost BENCH_COST_VARIANTS=...):
    // one X-Forwarded-Proto rule for both binds instead of two conditional ones.
    "one-xfp-rule": [
        dropLines(/set-header X-Forwarded-Proto http unless/),
        (cfg) =>
            cfg.replace(
                "http-request set-header X-Forwarded-Proto https if { ssl_fc }",
                "http-request set-header X-Forwarded-Proto %[ssl_fc,iif(https,http)]",
            ),
    ],
    // The server's TLS order (AES-128-GCM first) instead of the client's;
    // HAProxy sets SSL_OP_PRIORITIZE_CHACHA, so a client that prefers
    // ChaCha20 (no AES hardware) still gets it.
    "server-cipher-order": [(cfg) => cfg.replace(/(ssl-default-bind-options) prefer-client-ciphers /, "$1 ")],
    // A new client connection may take an idle server connection that has
    // already carried a request (HAProxy's default "safe" opens a new one for
    // every session's first request: one connect per TLS handshake).
    "reuse-aggressive": [reuse("aggressive")],
    // HAProxy 2.9+ only (3.0's HTTP/2 costs more than 2.6's: strace shows 2
    // sendto and 3.1 recvfrom per request against 1.13 and 1.38). Tried:
    // the same 2 sendto per request with zero-copy forwarding off.
    "no-zero-copy-fwd": [addToSection(GLOBAL, ["tune.disable-zero-copy-forwarding"])],
    // HTTP/2 on 3.0+ sends each response on its own (BENCH_ONLY=syscalls): with no fast-forwarding at all (3.0+, experimental).
    "no-fast-forward": [addToSection(GLOBAL, ["expose-experimental-directives", "tune.disable-fast-forward"])],
    // References, not proposals: what a feature costs.
    "no-ctl-deny": [dropLines(/req\.hdrs -m reg/)],
    "no-edge-rules": [
        dropLines(/req\.hdrs -m reg/),
        dropLines(/http-request del-header (X-Forwarded-For|Forwarded|X-Real-IP)$/),
        dropLines(/http-request deny deny_status 400 if \{ req\.hdr\((upgrade|http2-settings)\)/),
    ],
    "ssl-cache-off": [addToSection(GLOBAL, ["tune.ssl.cachesize 0"])],
    "bufsize-8k": [addToSection(GLOBAL, ["tune.bufsize 8192"])],
    // Failover behaviour (use with --failover):
    "no-shutdown-sessions": [(cfg) => cfg.replace(/ on-marked-down shutdown-sessions/g, "")],
    "observe-l4": [(cfg) => cfg.replace(/^(\s+default-server check .*)$/gm, "$1 observe layer4 error-limit 10 on-error mark-down")],
    "observe-l4-no-shutdown": [
        (cfg) => cfg.replace(/ on-marked-down shutdown-sessions/g, ""),
        (cfg) => cfg.replace(/^(\s+default-server check .*)$/gm, "$1 observe layer4 error-limit 10 on-error mark-down"),
    ],
    "no-l7-no-shutdown": [
        (cfg) => cfg.replace(/ on-marked-down shutdown-sessions/g, ""),
        dropLines(/^\s+retry-on /),
        dropLines(/disable-l7-retry/),
    ],
    // shutdown-sessions only for WebSockets: upgrades go to api_ws, whose servers
    // track api_pool's (no extra checks) and keep on-marked-down shutdown-sessions.
    "split-ws": [splitWebSockets],
    // Reload behaviour (use with --reload):
    "idle-close-on-response": [addToSection(DEFAULTS, ["option idle-close-on-response"])],
    "close-spread-1s": [addToSection(GLOBAL, ["close-spread-time 1s"])],
    "idle-close-spread": [addToSection(DEFAULTS, ["option idle-close-on-response"]), addToSection(GLOBAL, ["close-spread-time 1s"])],
};

/** The rendered config with variant `name`'s edits applied; throws on an unknown name. */
export function applyVariant(name: string, cfg: string): string {
    const edits = VARIANTS[name];
    if (edits === undefined) throw new Error(`unknown variant ${name}; known: ${Object.keys(VARIANTS).join(", ")}`);
    return edits.reduce((text, e) => e(text), cfg);
}
