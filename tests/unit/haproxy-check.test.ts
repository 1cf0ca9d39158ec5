import { spawnSync } from "child_process";
import { mkdtempSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { HaproxySettings, renderHaproxyConfig } from "../../components";
import { findBinary, makeTestCert, manyNetworks, requireBinary } from "../support";
import { labSettings, pool } from "./lab-settings";

const describeWithHaproxy = requireBinary("haproxy", "openssl");

describeWithHaproxy("the real haproxy -c accepts every rendered config", () => {
    let dir: string;
    let certPath: string;

    beforeAll(() => {
        dir = mkdtempSync(path.join(tmpdir(), "veza-check-"));
        // cert + key in one PEM, what haproxy's `crt` takes.
        certPath = makeTestCert(dir).pemPath;
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    // IP addresses keep the check offline: hostnames would make haproxy -c resolve them.
    const ipLab = (overrides: Partial<HaproxySettings> = {}) =>
        labSettings({
            apiServers: [
                { name: "backend-api-1", address: "127.0.0.11" },
                { name: "backend-api-2", address: "127.0.0.12" },
            ],
            streamServers: [
                { name: "stream-srv-1", address: "127.0.0.21" },
                { name: "stream-srv-2", address: "127.0.0.22" },
            ],
            ...overrides,
        });

    test.each<[string, () => Partial<HaproxySettings>]>([
        ["lab", () => ({})],
        ["TLS with a test certificate", () => ({ tlsCertPath: certPath })],
        ["TLS without redirect", () => ({ tlsCertPath: certPath, httpsRedirect: false })],
        [
            "one server per pool",
            () => ({ apiServers: [{ name: "only", address: "127.0.0.11" }], streamServers: [{ name: "only", address: "127.0.0.21" }] }),
        ],
        ["50 servers per pool", () => ({ apiServers: pool("api", 50), streamServers: pool("stream", 50) })],
        [
            "custom ports and paths",
            () => ({
                listenHttp: 8080,
                backendApiPort: 9000,
                streamServerPort: 9001,
                statsPort: 19100,
                streamPathPrefix: "/media/hls/",
                apiHealthPath: "/healthz",
            }),
        ],
        ["seed literal hash mode", () => ({ streamHashMode: "uri-whole" })],
        ["IPv6 server", () => ({ apiServers: [{ name: "v6", address: "::1", port: 8080 }] })],
        [
            "pinned server ids, the highest one too",
            () => ({
                streamServers: [
                    { name: "stream-srv-1", address: "127.0.0.21", id: 1 },
                    { name: "stream-srv-2", address: "127.0.0.22", id: 1048575 },
                ],
            }),
        ],
        ["slowstart off", () => ({ gracefulDrainSeconds: 0 })],
        [
            "trusted proxies and every rate limit",
            () => ({
                trustedProxies: ["10.20.0.0/16", "127.0.0.9", "2001:db8::/32"],
                rateLimit: { requests: 300, periodSeconds: 10, maxConcurrentPerClient: 50, allowlist: ["192.0.2.10", "2001:db8:1::/48"] },
            }),
        ],
        ["TLS with the ACME challenge route", () => ({ tlsCertPath: certPath, acmeChallengePort: 8402 })],
        ["a rate limit alone (no proxies, connections or allowlist)", () => ({ rateLimit: { requests: 1, periodSeconds: 1 } })],
        [
            "1,000 trusted proxies and 1,000 allowlist entries, IPv4 and the longest IPv6 spellings (more than one config line holds)",
            () => ({
                trustedProxies: manyNetworks(1000, 20),
                rateLimit: { requests: 300, periodSeconds: 10, maxConcurrentPerClient: 50, allowlist: manyNetworks(1000, 21) },
            }),
        ],
    ])("%s", (_name, overrides) => {
        const cfg = path.join(dir, "haproxy.cfg");
        writeFileSync(cfg, renderHaproxyConfig(ipLab(overrides())));
        const check = spawnSync(findBinary("haproxy") as string, ["-c", "-f", cfg], { encoding: "utf8" });
        // The exit status is the verdict: 3.x no longer prints "Configuration file is valid".
        expect({ status: check.status, alerts: check.stderr.match(/\[ALERT\].*/g) ?? [] }).toEqual({ status: 0, alerts: [] });
        // The only warning allowed is the state file that a first start has not written yet.
        const warnings = (check.stderr.match(/\[WARNING\].*/g) ?? []).filter((w) => !w.includes("server state file"));
        expect(warnings).toEqual([]);
    });

    test("a pair's config: each node finds itself in the peers section by its host name (-L stands in for the container's), with its shared tables (the rate limit's too), the ACME route to both nodes, HSTS, and edge lists longer than a line (62 proxies, a 55-entry allowlist)", () => {
        const cfg = path.join(dir, "pair.cfg");
        const peers = [
            { name: "haproxy", address: "127.0.0.31" },
            { name: "haproxy-b", address: "127.0.0.32" },
        ];
        const edge = {
            trustedProxies: manyNetworks(62, 40),
            rateLimit: { requests: 100, periodSeconds: 10, maxConcurrentPerClient: 20, allowlist: manyNetworks(55, 41) },
            hstsMaxAgeSeconds: 31536000,
        };
        // With the ACME route too: both nodes' responders, retried on 404.
        writeFileSync(
            cfg,
            renderHaproxyConfig(ipLab({ ...edge, tlsCertPath: certPath, acmeChallengePort: 8402, peersCertPath: certPath }), peers),
        );
        for (const node of ["haproxy", "haproxy-b"]) {
            const check = spawnSync(findBinary("haproxy") as string, ["-c", "-L", node, "-f", cfg], { encoding: "utf8" });
            expect({ status: check.status, alerts: check.stderr.match(/\[ALERT\].*/g) ?? [] }).toEqual({ status: 0, alerts: [] });
            const warnings = (check.stderr.match(/\[WARNING\].*/g) ?? []).filter((w) => !w.includes("server state file"));
            expect(warnings).toEqual([]);
        }
        // A host that is neither node: HAProxy drops the section (and says so), it does not fail.
        const stranger = spawnSync(findBinary("haproxy") as string, ["-c", "-L", "not-a-node", "-f", cfg], { encoding: "utf8" });
        expect(stranger.status).toBe(0);
        expect(stranger.stderr).toContain("Removing incomplete section 'peers veza_peers' (no peer named 'not-a-node')");
    });

    test("haproxy -c rejects a broken config, so the config step's gate is real", () => {
        const cfg = path.join(dir, "broken.cfg");
        writeFileSync(cfg, renderHaproxyConfig(ipLab()).replace("balance roundrobin", "balance no-such-algorithm"));
        const check = spawnSync(findBinary("haproxy") as string, ["-c", "-f", cfg], { encoding: "utf8" });
        expect(check.status).not.toBe(0);
        expect(check.stderr).toContain("balance only supports");
    });
});
