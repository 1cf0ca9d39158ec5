import { readFileSync, writeFileSync } from "fs";
import * as path from "path";
import { renderHaproxyConfig, SettingsError } from "../../components";
import { cookieValue, stableServerIds } from "../../components/identity";
import { labSettings, pool } from "./lab-settings";

const GOLDEN_DIR = path.join(__dirname, "golden");

/** Compares with a golden file; UPDATE_GOLDEN=1 rewrites it (review the diff before committing). */
function expectGolden(file: string, actual: string): void {
    const goldenPath = path.join(GOLDEN_DIR, file);
    if (process.env.UPDATE_GOLDEN === "1") writeFileSync(goldenPath, actual);
    expect(actual).toBe(readFileSync(goldenPath, "utf8"));
}

function section(config: string, backend: string): string {
    const parts = config.split(`\nbackend ${backend}\n`);
    if (parts.length !== 2) throw new Error(`expected one "backend ${backend}" section, found ${parts.length - 1}`);
    return parts[1].split("\n\n")[0];
}

function serverLines(config: string, backend: string): string[] {
    const lines = section(config, backend)
        .split("\n")
        .filter((line) => line.trim().startsWith("server "));
    if (lines.length === 0) throw new Error(`backend ${backend} has no server lines`);
    return lines;
}

describe("renderHaproxyConfig", () => {
    test("lab stack matches the golden file", () => {
        expectGolden("lab.cfg", renderHaproxyConfig(labSettings()));
    });

    test("TLS on matches the golden file", () => {
        expectGolden("lab-tls.cfg", renderHaproxyConfig(labSettings({ tlsCertPath: "/etc/haproxy/certs/veza.pem" })));
    });

    test("a pair's config (peers section with both nodes) matches the golden file; without peers there is no section", () => {
        const peers = [
            { name: "haproxy", address: "198.18.0.10" },
            { name: "haproxy-b", address: "198.18.0.11" },
        ];
        const pair = renderHaproxyConfig(labSettings(), peers);
        expectGolden("lab-pair.cfg", pair);
        expect(renderHaproxyConfig(labSettings())).not.toContain("peers");
        // The same config but for the peers section: the nodes serve alike.
        expect(pair.replace(/\n# The pair's two nodes[\s\S]*?(?=\ndefaults)/, "")).toBe(renderHaproxyConfig(labSettings()));
    });

    test("edge protection with trusted proxies and every rate limit, on a pair, matches the golden file; off, none of it is rendered", () => {
        const peers = [
            { name: "haproxy", address: "198.18.0.10" },
            { name: "haproxy-b", address: "198.18.0.11" },
        ];
        const edge = renderHaproxyConfig(
            labSettings({
                trustedProxies: ["10.20.0.0/16", "2001:db8::/32"],
                rateLimit: { requests: 300, periodSeconds: 10, maxConcurrentPerClient: 50, allowlist: ["192.0.2.10", "198.51.100.0/24"] },
            }),
            peers,
        );
        expectGolden("lab-edge-pair.cfg", edge);
        expect(edge).toContain("store http_req_rate(10s) peers veza_peers\n");
        const off = renderHaproxyConfig(labSettings());
        for (const word of ["veza_rate", "veza_conn", "track-sc", "veza_from_trusted_proxy", "txn.veza_client"])
            expect(off).not.toContain(word);
    });

    test.each<[string, Parameters<typeof renderHaproxyConfig>, string]>([
        ["one node", [labSettings(), [{ name: "haproxy", address: "198.18.0.10" }]], "peers must be the pair's two nodes (got 1)"],
        [
            "the same node twice",
            [
                labSettings(),
                [
                    { name: "haproxy", address: "198.18.0.10" },
                    { name: "haproxy", address: "198.18.0.11" },
                ],
            ],
            'peers must name two different nodes (both "haproxy")',
        ],
        [
            "a listener on the peers port",
            [
                labSettings({ statsPort: 10000 }),
                [
                    { name: "haproxy", address: "198.18.0.10" },
                    { name: "haproxy-b", address: "198.18.0.11" },
                ],
            ],
            "statsPort must differ from the pair's peers port 10000 (both nodes listen there for each other's tables)",
        ],
    ])("peers refused: %s", (_case, args, message) => {
        expect(() => renderHaproxyConfig(...args)).toThrow(new SettingsError([message]));
    });

    test("with the ACME route (TLS on), matches the golden file: challenges go to the responder on loopback, past the HTTPS redirect", () => {
        const acme = renderHaproxyConfig(labSettings({ tlsCertPath: "/etc/haproxy/certs/veza.pem", acmeChallengePort: 8402 }));
        expectGolden("lab-acme.cfg", acme);
        expect(acme).toContain("code 301 unless { ssl_fc } || veza_acme_challenge\n");
        expect(renderHaproxyConfig(labSettings({ tlsCertPath: "/etc/haproxy/certs/veza.pem" }))).not.toContain("acme");
    });

    test("seed literal hash mode (uri whole) matches the golden file", () => {
        expectGolden("lab-uri-whole.cfg", renderHaproxyConfig(labSettings({ streamHashMode: "uri-whole" })));
    });

    test("the HTTPS redirect names a non-default HTTPS port, and none for 443", () => {
        const tls = { tlsCertPath: "/etc/haproxy/certs/veza.pem" };
        expect(renderHaproxyConfig(labSettings({ ...tls, listenHttps: 8443 }))).toContain(
            "redirect location https://%[var(txn.veza_host)]:8443%[pathq] code 301 unless { ssl_fc }",
        );
        expect(renderHaproxyConfig(labSettings({ ...tls, listenHttps: 443 }))).toContain(
            "redirect location https://%[var(txn.veza_host)]%[pathq] code 301 unless { ssl_fc }",
        );
    });

    test("is deterministic: same settings, byte-identical output", () => {
        const a = renderHaproxyConfig(labSettings());
        const b = renderHaproxyConfig(JSON.parse(JSON.stringify(labSettings())));
        expect(a).toBe(b);
    });

    test("does not modify its input", () => {
        const settings = labSettings();
        const copy = JSON.parse(JSON.stringify(settings));
        renderHaproxyConfig(settings);
        expect(settings).toEqual(copy);
    });

    test("applies the seed's defaults", () => {
        const config = renderHaproxyConfig({
            apiServers: [{ name: "a", address: "a.lxd" }],
            streamServers: [{ name: "s", address: "s.lxd" }],
            statsPassword: "password-1",
        });
        expect(config).toContain("bind *:80\n");
        expect(config).not.toContain(":443");
        expect(config).toContain("server a a.lxd:8080 ");
        expect(config).toContain("server s s.lxd:8082 ");
        expect(config).toContain("default-server check inter 5000ms fall 3 rise 2 slowstart 30s init-addr last,libc,none");
        expect(config).toContain("default-server slowstart 30s on-marked-down shutdown-sessions init-addr last,libc,none");
        expect(config).toContain(`cookie VEZA_SERVERID insert indirect nocache httponly attr "SameSite=Lax"\n`);
        expect(config).toContain("bind 127.0.0.1:9100\n");
        expect(config).toContain("http-check send meth GET uri /api/v1/health ");
        expect(config).toContain("http-check send meth GET uri /health ");
        expect(config).toContain("use_backend stream_pool if { path_beg /stream/ }");
    });

    test("a server's id and cookie do not depend on its position in the list", () => {
        const servers = pool("stream", 5);
        const reordered = [servers[3], servers[0], servers[4], servers[2], servers[1]];
        const lines = (list: typeof servers) =>
            serverLines(renderHaproxyConfig(labSettings({ streamServers: list, apiServers: list })), "stream_pool").sort();
        expect(lines(reordered)).toEqual(lines(servers));
        const withoutMiddle = servers.filter((_, i) => i !== 2);
        const remaining = lines(withoutMiddle);
        for (const line of remaining) expect(lines(servers)).toContain(line);
    });

    test("cookie values are opaque, stable and differ per server and secret", () => {
        const first = cookieValue("api_pool", "backend-api-1", "k");
        expect(first).toMatch(/^[0-9a-f]{16}$/);
        expect(first).toBe(cookieValue("api_pool", "backend-api-1", "k"));
        expect(first).not.toBe(cookieValue("api_pool", "backend-api-2", "k"));
        expect(first).not.toBe(cookieValue("api_pool", "backend-api-1", "other"));
        const config = renderHaproxyConfig(labSettings());
        for (const line of serverLines(config, "api_pool")) {
            const cookie = line.split(" cookie ")[1].split(" ")[0];
            expect(cookie).toMatch(/^[0-9a-f]{16}$/);
            expect(cookie).not.toContain("backend");
        }
    });

    test("stable ids are distinct even when names collide in the hash space", () => {
        const names = pool("srv", 2000);
        const ids = stableServerIds(names);
        expect(new Set(ids.values()).size).toBe(2000);
        for (const id of ids.values()) expect(id).toBeGreaterThanOrEqual(1);
        for (const id of ids.values()) expect(id).toBeLessThan(1 << 20);
        expect(stableServerIds([...names].reverse())).toEqual(ids);
    });

    test("a pinned id is the server's id, and settles two names that derive the same one; the other server keeps the id its name gives", () => {
        const cfg = renderHaproxyConfig(
            labSettings({
                streamServers: [
                    { name: "stream-srv-3860", address: "s1.lxd" },
                    { name: "stream-srv-1285", address: "s2.lxd", id: 4242 },
                ],
            }),
        );
        expect(cfg).toMatch(/server stream-srv-3860 s1\.lxd:\d+ id 760601 /);
        expect(cfg).toMatch(/server stream-srv-1285 s2\.lxd:\d+ id 4242 /);
    });

    test("track hashing keys on the segment after the configured prefix", () => {
        expect(renderHaproxyConfig(labSettings())).toContain("balance hash path,field(3,/)");
        expect(renderHaproxyConfig(labSettings({ streamPathPrefix: "/media/hls/" }))).toContain("balance hash path,field(4,/)");
        expect(renderHaproxyConfig(labSettings({ streamPathPrefix: "/media/hls/" }))).toContain(
            "use_backend stream_pool if { path_beg /media/hls/ }",
        );
    });

    test("IP servers skip the runtime resolver; hostnames use it", () => {
        const config = renderHaproxyConfig(
            labSettings({
                apiServers: [
                    { name: "ip", address: "10.1.2.3" },
                    { name: "v6", address: "fd00::5", port: 9000 },
                ],
                streamServers: [{ name: "s", address: "10.1.2.4" }],
            }),
        );
        expect(config).not.toContain("resolvers veza");
        expect(config).toContain("server v6 [fd00::5]:9000 ");
        expect(renderHaproxyConfig(labSettings())).toContain("resolvers veza resolve-prefer ipv4");
    });

    test("WebSocket upgrades use api_ws: same servers, ids and cookies, tracking api_pool, sessions cut on DOWN", () => {
        const config = renderHaproxyConfig(labSettings());
        expect(config).toContain("use_backend api_ws if { hdr(upgrade) -i websocket }");
        const api = serverLines(config, "api_pool");
        const ws = serverLines(config, "api_ws");
        expect(ws).toHaveLength(api.length);
        ws.forEach((line, i) => {
            const name = api[i].trim().split(" ")[1];
            expect(line).toContain(` track api_pool/${name}`);
            expect(line.replace(` track api_pool/${name}`, "")).toBe(api[i]);
        });
        const wsSection = section(config, "api_ws");
        expect(wsSection).toContain("on-marked-down shutdown-sessions");
        expect(wsSection).not.toContain(" check");
        expect(section(config, "api_pool")).not.toMatch(/default-server.*shutdown-sessions/);
        expect(section(config, "stream_pool")).not.toMatch(/default-server.*shutdown-sessions/);
    });

    test("weight and per-server port are honoured", () => {
        const config = renderHaproxyConfig(labSettings({ apiServers: [{ name: "a", address: "a.lxd", port: 9999, weight: 7 }] }));
        expect(config).toMatch(/server a a\.lxd:9999 id \d+ weight 7 /);
    });
});
