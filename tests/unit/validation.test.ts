import { applyDefaults, HaproxySettings, renderHaproxyConfig, SettingsError } from "../../components";
import { settingsWarnings, validateProvisioning, validateTlsPair } from "../../components/validate";
import { labSettings } from "./lab-settings";
import { mkdirSync, readFileSync, rmSync } from "fs";
import * as path from "path";
import { makeTempDir, makeTestCert, requireBinary } from "../support";

const describeWithOpenssl = requireBinary("openssl");

const api = (overrides: object) => ({
    apiServers: [
        { name: "backend-api-1", address: "backend-api-1.lxd" },
        { name: "backend-api-2", address: "backend-api-2.lxd", ...overrides },
    ],
});

describe.each<[string, Partial<HaproxySettings>, string]>([
    ["port above range", { listenHttp: 70000 }, "listenHttp must be an integer from 1 to 65535 (got 70000)"],
    [
        "HSTS max-age over two years",
        { hstsMaxAgeSeconds: 63072001 },
        "hstsMaxAgeSeconds must be an integer from 0 to 63072000 (got 63072001)",
    ],
    [
        "a SameSite value browsers do not know",
        { stickyCookieSameSite: "lax" as never },
        'stickyCookieSameSite must be "Lax", "Strict" or "None" (got "lax")',
    ],
    [
        'http-reuse "aggressive" (never reuses for one-request clients; not offered)',
        { serverConnectionReuse: "aggressive" as never },
        'serverConnectionReuse must be "always" or "safe" (got "aggressive")',
    ],
    [
        "SameSite=None without TLS",
        { stickyCookieSameSite: "None" },
        'stickyCookieSameSite may be "None" only with TLS (tlsCertPath or a pushed certificate): browsers drop SameSite=None cookies that are not Secure, and stickiness would be lost',
    ],
    ...(
        [
            [["::ffff:0.0.0.0/96"], "IPv4 address"],
            [["::ffff:0:0/96"], "IPv4 address"],
            [["0.0.0.0/1", "128.0.0.0/1"], "IPv4 address"],
            [["0.0.0.0/2", "::ffff:64.0.0.0/98", "128.0.0.0/1"], "IPv4 address"],
            [["::/1", "8000::/1"], "address, IPv4 and IPv6"],
            [["::/1"], "IPv4 address"],
        ] as [string[], string][]
    ).flatMap(([list, family]): [string, Partial<HaproxySettings>, string][] => [
        [
            `trusted proxies that together are everyone (${list.join(" + ")})`,
            { trustedProxies: list },
            `trustedProxies together covers every ${family} (${list.join(", ")}): that is everyone, as /0 would be; list only the networks you mean`,
        ],
        [
            `a rate-limit allowlist that together is everyone (${list.join(" + ")})`,
            { rateLimit: { requests: 100, periodSeconds: 10, allowlist: list } },
            `rateLimit.allowlist together covers every ${family} (${list.join(", ")}): that is everyone, as /0 would be; list only the networks you mean`,
        ],
    ]),
    [
        "a trusted proxy that is a name",
        { trustedProxies: ["cdn.example.com"] },
        'trustedProxies[0] must be an IPv4 or IPv6 address, or a network with its prefix length such as "10.0.0.0/8" or "2001:db8::/32" (got "cdn.example.com")',
    ],
    [
        "trusting every address",
        { trustedProxies: ["0.0.0.0/0"] },
        'trustedProxies[0] must have a prefix length from 1 to 32; /0 would be every address (got "0.0.0.0/0")',
    ],
    [
        "a CIDR with host bits set",
        { trustedProxies: ["10.1.2.3/8"] },
        'trustedProxies[0] has host bits set past its /8: did you mean 10.0.0.0/8? (got "10.1.2.3/8")',
    ],
    [
        "an IPv6 CIDR with host bits set",
        { trustedProxies: ["2001:db8::1/32"] },
        'trustedProxies[0] has host bits set past its /32: did you mean 2001:db8::/32? (got "2001:db8::1/32")',
    ],
    ["a CIDR listed twice", { trustedProxies: ["10.0.0.0/8", "10.0.0.0/8"] }, "trustedProxies[1] lists 10.0.0.0/8 twice"],
    [
        "trusted proxies as one string",
        { trustedProxies: "10.0.0.0/8" as never },
        'trustedProxies must be a list of addresses or CIDRs, e.g. ["10.0.0.0/8"] (got "10.0.0.0/8")',
    ],
    [
        "a rate limit as a number",
        { rateLimit: 100 as never },
        "rateLimit must be an object { requests, periodSeconds, maxConcurrentPerClient?, allowlist? }, or absent for no limit (got 100)",
    ],
    [
        "a rate limit without its period",
        { rateLimit: { requests: 100 } as never },
        "rateLimit.periodSeconds must be an integer from 1 to 86400 (got undefined)",
    ],
    [
        "a rate limit of zero requests",
        { rateLimit: { requests: 0, periodSeconds: 10 } },
        "rateLimit.requests must be an integer from 1 to 1000000 (got 0)",
    ],
    [
        "a fractional connection limit",
        { rateLimit: { requests: 100, periodSeconds: 10, maxConcurrentPerClient: 2.5 } },
        "rateLimit.maxConcurrentPerClient must be an integer from 1 to 100000 (got 2.5)",
    ],
    [
        "a misspelt rate limit key",
        { rateLimit: { requests: 100, periodSeconds: 10, allowList: ["10.0.0.1"] } as never },
        "rateLimit.allowList is not a known setting: did you mean allowlist?",
    ],
    [
        "an allowlist entry that is not an address",
        { rateLimit: { requests: 100, periodSeconds: 10, allowlist: ["10.0.0.1", "office"] } },
        'rateLimit.allowlist[1] must be an IPv4 or IPv6 address, or a network with its prefix length such as "10.0.0.0/8" or "2001:db8::/32" (got "office")',
    ],
    ["port zero", { statsPort: 0 }, "statsPort must be an integer from 1 to 65535 (got 0)"],
    ["fractional port", { backendApiPort: 80.5 }, "backendApiPort must be an integer from 1 to 65535 (got 80.5)"],
    [
        "port as string",
        { streamServerPort: "8082" as unknown as number },
        'streamServerPort must be an integer from 1 to 65535 (got "8082")',
    ],
    ["server port out of range", api({ port: 0 }), "apiServers[1].port must be an integer from 1 to 65535 (got 0)"],
    [
        "two listeners on one port",
        { statsPort: 80 },
        "statsPort must differ from listenHttp: both are 80; two listeners cannot share a port",
    ],
    [
        "https on the http port",
        { tlsCertPath: "/etc/haproxy/certs/veza.pem", listenHttps: 80 },
        "listenHttps must differ from listenHttp: both are 80; two listeners cannot share a port",
    ],
    ...(["listenHttp", "statsPort", "listenHttps"] as const).map((field): [string, Partial<HaproxySettings>, string] => [
        `${field} on the ACME client's challenge port`,
        { tlsCertPath: "/etc/haproxy/certs/veza.pem", acmeChallengePort: 8402, [field]: 8402 },
        `${field} must differ from the ACME client's challenge port 8402 (tls.acme): HAProxy hands /.well-known/acme-challenge/ to a responder there, and a listener on it would hand the challenges back to HAProxy itself`,
    ]),
    ...(["listenHttp", "statsPort", "listenHttps"] as const).map((field): [string, Partial<HaproxySettings>, string] => [
        `${field} on the node metrics' port`,
        { tlsCertPath: "/etc/haproxy/certs/veza.pem", [field]: 10001 },
        `${field} must differ from 10001: the node metrics (/veza-metrics) listen on that port in the container`,
    ]),
    ["empty api pool", { apiServers: [] }, "apiServers must list at least one server ({ name, address, port?, weight?, id? })"],
    ["empty stream pool", { streamServers: [] }, "streamServers must list at least one server ({ name, address, port?, weight?, id? })"],
    [
        "duplicate server names",
        api({ name: "backend-api-1" }),
        'apiServers[1].name duplicates apiServers[0].name "backend-api-1"; server names must be unique in a pool',
    ],
    [
        "space in a name",
        api({ name: "backend api" }),
        'apiServers[1].name must be 1-64 characters of A-Z a-z 0-9 . _ - (got "backend api")',
    ],
    ["shell in a name", api({ name: "x;rm -rf /" }), 'apiServers[1].name must be 1-64 characters of A-Z a-z 0-9 . _ - (got "x;rm -rf /")'],
    [
        "newline in an address",
        api({ address: "a.lxd\nserver evil" }),
        'apiServers[1].address must be a DNS name of labels of A-Z a-z 0-9 - (RFC 1123: not starting or ending with -), or an IP address (got "a.lxd\\nserver evil")',
    ],
    [
        "colon in a non-IPv6 address",
        { streamServers: [{ name: "s", address: "host:99" }] },
        'streamServers[0].address must be a valid IPv6 address when it holds a ":" (a port goes in `port`) (got "host:99")',
    ],
    ["weight out of range", api({ weight: 300 }), "apiServers[1].weight must be an integer from 0 to 256 (got 300)"],
    ["fall below 1", { healthCheckFall: 0 }, "healthCheckFall must be an integer from 1 to 100 (got 0)"],
    ["rise below 1", { healthCheckRise: 0 }, "healthCheckRise must be an integer from 1 to 100 (got 0)"],
    ["interval below 1", { healthCheckIntervalMs: 0 }, "healthCheckIntervalMs must be an integer from 100 to 3600000 (got 0)"],
    ["negative drain", { gracefulDrainSeconds: -1 }, "gracefulDrainSeconds must be an integer from 0 to 3600 (got -1)"],
    [
        "unsafe cookie name",
        { stickyCookieName: "ID; Path=/" },
        'stickyCookieName must be 1-64 characters of A-Z a-z 0-9 _ - (a safe cookie token) (got "ID; Path=/")',
    ],
    [
        "relative cert path",
        { tlsCertPath: "certs/veza.pem" },
        'tlsCertPath must be an absolute path of A-Z a-z 0-9 . _ - segments without "..", or "" for HTTP only (got "certs/veza.pem")',
    ],
    [
        "cert path escaping upwards",
        { tlsCertPath: "/etc/haproxy/../shadow" },
        'tlsCertPath must be an absolute path of A-Z a-z 0-9 . _ - segments without "..", or "" for HTTP only (got "/etc/haproxy/../shadow")',
    ],
    [
        "stream prefix without trailing slash",
        { streamPathPrefix: "/stream" },
        'streamPathPrefix must start and end with "/" and hold segments of A-Z a-z 0-9 . _ ~ -, e.g. "/stream/" (got "/stream")',
    ],
    ["unknown hash mode", { streamHashMode: "random" as never }, 'streamHashMode must be "track" or "uri-whole" (got "random")'],
    [
        "stats on a public address",
        { statsBindAddress: "0.0.0.0" },
        'statsBindAddress must be a loopback address in 127.0.0.0/8; stats are never exposed publicly (got "0.0.0.0")',
    ],
    [
        "short stats password",
        { statsPassword: "short" },
        "statsPassword must be 8-128 characters of A-Z a-z 0-9 . _ ~ + = - (value not shown)",
    ],
    [
        "missing stats password",
        { statsPassword: undefined },
        "statsPassword must be 8-128 characters of A-Z a-z 0-9 . _ ~ + = - (value not shown)",
    ],
    [
        "health path with a space",
        { apiHealthPath: "/api/v1/health check" },
        'apiHealthPath must be an absolute URL path of A-Z a-z 0-9 . _ ~ / - (got "/api/v1/health check")',
    ],
    ["bind address not an IP", { bindAddress: "eth0" }, 'bindAddress must be "*" or an IPv4 address (got "eth0")'],
    ["maxconn zero", { maxConnections: 0 }, "maxConnections must be an integer from 1 to 100000 (got 0)"],
    [
        "user with a space",
        { runAsUser: "ha proxy" },
        'runAsUser must be a Unix user/group name ([a-z_][a-z0-9_-]*), or "" to keep the current one (got "ha proxy")',
    ],
    [
        "relative log target",
        { logTarget: "dev/log" },
        'logTarget must be an absolute path of A-Z a-z 0-9 . _ - segments without ".." (got "dev/log")',
    ],
])("invalid settings: %s", (_case, overrides, message) => {
    test("throws a SettingsError with the exact message", () => {
        const settings = { ...labSettings(), ...overrides };
        expect(() => renderHaproxyConfig(settings)).toThrow(SettingsError);
        try {
            renderHaproxyConfig(settings);
        } catch (error) {
            expect((error as Error).message).toBe(message);
        }
    });
});

describe("ACME with a plain HTTP listener off port 80", () => {
    test("is said as a warning naming how port 80 must reach it; on port 80 nothing is said", () => {
        const acme = { ...labSettings(), tlsCertPath: "/etc/haproxy/certs/veza.pem", acmeChallengePort: 8402 };
        expect(settingsWarnings(applyDefaults({ ...acme, listenHttp: 8080 }))).toContain(
            "listenHttp is 8080 with tls.acme: the CA fetches its HTTP-01 challenges from port 80, so port 80 must reach this listener (a port forward or a proxy in front); without that, issuance fails and the placeholder or the current certificate keeps serving",
        );
        expect(settingsWarnings(applyDefaults({ ...acme, listenHttp: 80 })).filter((w) => w.includes("tls.acme"))).toEqual([]);
    });
});

describe("edge settings that are legal but do nothing", () => {
    test("an HSTS max-age without TLS is said as a warning: the header only goes out over HTTPS", () => {
        expect(settingsWarnings(applyDefaults({ ...labSettings(), hstsMaxAgeSeconds: 300 }))).toContain(
            "hstsMaxAgeSeconds is 300 but TLS is off: the header is sent only over HTTPS, so it has no effect",
        );
        expect(
            settingsWarnings(applyDefaults({ ...labSettings(), hstsMaxAgeSeconds: 300, tlsCertPath: "/etc/haproxy/certs/veza.pem" })),
        ).toEqual([]);
    });
});

describe("validation reports", () => {
    test("every bad field at once, one line each", () => {
        expect(() => renderHaproxyConfig({ ...labSettings(), healthCheckFall: 0, healthCheckRise: 0 })).toThrow(
            "healthCheckFall must be an integer from 1 to 100 (got 0)\nhealthCheckRise must be an integer from 1 to 100 (got 0)",
        );
    });

    test("never echoes the stats password", () => {
        const secret = "has space and secret";
        expect(() => renderHaproxyConfig({ ...labSettings(), statsPassword: secret })).toThrow("(value not shown)");
        try {
            renderHaproxyConfig({ ...labSettings(), statsPassword: secret });
        } catch (error) {
            expect((error as Error).message).not.toContain(secret);
        }
    });
});

describe.each<[string, Parameters<typeof validateProvisioning>[0], string]>([
    [
        "container name with a dot",
        { containerName: "ha.proxy", image: "images:debian/12", profiles: ["default"] },
        'containerName must be an Incus instance name: 1-63 letters, digits and -, starting with a letter, not ending with - (got "ha.proxy")',
    ],
    [
        "image with a space",
        { containerName: "haproxy", image: "debian 12", profiles: ["default"] },
        'image must be an Incus image reference such as "images:debian/12" or a local alias (A-Z a-z 0-9 . _ : / -) (got "debian 12")',
    ],
    [
        "no profiles",
        { containerName: "haproxy", image: "images:debian/12", profiles: [] },
        'profiles must list at least one Incus profile, e.g. ["default"]',
    ],
    [
        "profile with a comma",
        { containerName: "haproxy", image: "images:debian/12", profiles: ["a,b"] },
        'profiles[0] must be an Incus profile name of A-Z a-z 0-9 . _ - (got "a,b")',
    ],
])("invalid provisioning: %s", (_case, provisioning, message) => {
    test("throws with the exact message", () => {
        expect(() => validateProvisioning(provisioning)).toThrow(new SettingsError([message]));
    });
});

describe("TLS pair", () => {
    const cert = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n";
    test("a certificate without its key is refused, without echoing anything", () => {
        expect(() => validateTlsPair(cert, "")).toThrow(
            "tls.privateKeyPem must be the certificate's PEM private key (-----BEGIN ... PRIVATE KEY-----); a certificate without its key cannot serve HTTPS (value not shown)",
        );
    });
    test("a key where the certificate should be is refused", () => {
        expect(() => validateTlsPair("-----BEGIN PRIVATE KEY-----", "-----BEGIN PRIVATE KEY-----")).toThrow(
            "tls.certificatePem must be a PEM certificate (-----BEGIN CERTIFICATE-----)",
        );
    });
    test("a proper pair passes", () => {
        expect(() => validateTlsPair(cert, "-----BEGIN EC PRIVATE KEY-----\nk\n-----END EC PRIVATE KEY-----\n")).not.toThrow();
    });
});

describeWithOpenssl("TLS pair, real certificates", () => {
    const dir = makeTempDir("veza-pair-");
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const issued = (name: string) => {
        mkdirSync(path.join(dir, name));
        const made = makeTestCert(path.join(dir, name));
        return { cert: made.cert.toString("utf8"), key: readFileSync(made.keyPath, "utf8") };
    };
    const a = issued("a");
    const b = issued("b");

    test("a certificate with its own key passes", () => {
        expect(() => validateTlsPair(a.cert, a.key)).not.toThrow();
    });
    test("a key that is not the certificate's is refused at preview, naming both fields and no value", () => {
        expect(() => validateTlsPair(a.cert, b.key)).toThrow(
            new SettingsError([
                "tls.privateKeyPem is not the private key of tls.certificatePem (their public keys differ): HAProxy would refuse the pair, " +
                    "and a restart would find a broken certificate file. Give the key the certificate was issued for (values not shown)",
            ]),
        );
    });
});

/* Classes of hostile or careless input, each refused with a message naming the field. */
const OCTETS =
    "must be an IPv4 address of four decimal octets 0-255 without leading zeros, when it is one (short or numeric forms such as 127.1 or 0x7f000001 are read as addresses by the resolver)";
const LABELS = "must be a DNS name of labels of A-Z a-z 0-9 - (RFC 1123: not starting or ending with -), or an IP address";
const EMPTY_LABEL = "must be a DNS name without empty labels (no leading, trailing or doubled dots)";
const LONG_NAME = `${"a".repeat(60)}.`.repeat(4) + "a".repeat(13);
const stats = (address: string, port = 9100) => ({ apiServers: [{ name: "evil", address, port }] });

describe.each<[string, string, Partial<HaproxySettings>, string]>([
    // 1. members that are the load balancer's own listeners, in every loopback spelling
    [
        "own listeners",
        "127.0.0.1 on the stats port",
        stats("127.0.0.1"),
        'apiServers[0].address with port 9100 is this load balancer\'s own statsPort listener (a loopback address): requests would loop back into it and publish the stats without their password (got "127.0.0.1")',
    ],
    [
        "own listeners",
        "127.9.9.9 on the stats port",
        stats("127.9.9.9"),
        'apiServers[0].address with port 9100 is this load balancer\'s own statsPort listener (a loopback address): requests would loop back into it and publish the stats without their password (got "127.9.9.9")',
    ],
    [
        "own listeners",
        "IPv4-mapped loopback",
        stats("::ffff:127.0.0.1"),
        'apiServers[0].address with port 9100 is this load balancer\'s own statsPort listener (a loopback address): requests would loop back into it and publish the stats without their password (got "::ffff:127.0.0.1")',
    ],
    [
        "own listeners",
        "IPv4-mapped in hex",
        stats("::ffff:7f00:1"),
        'apiServers[0].address with port 9100 is this load balancer\'s own statsPort listener (a loopback address): requests would loop back into it and publish the stats without their password (got "::ffff:7f00:1")',
    ],
    [
        "own listeners",
        "::1, long form",
        stats("0:0:0:0:0:0:0:1"),
        'apiServers[0].address with port 9100 is this load balancer\'s own statsPort listener (a loopback address): requests would loop back into it and publish the stats without their password (got "0:0:0:0:0:0:0:1")',
    ],
    [
        "own listeners",
        "localhost on the stats port",
        stats("localhost"),
        'apiServers[0].address with port 9100 is this load balancer\'s own statsPort listener (a loopback address): requests would loop back into it and publish the stats without their password (got "localhost")',
    ],
    [
        "own listeners",
        "a .localhost name",
        stats("x.LOCALHOST"),
        'apiServers[0].address with port 9100 is this load balancer\'s own statsPort listener (a loopback address): requests would loop back into it and publish the stats without their password (got "x.LOCALHOST")',
    ],
    [
        "own listeners",
        "0.0.0.0 on the HTTP port",
        stats("0.0.0.0", 80),
        'apiServers[0].address with port 80 is this load balancer\'s own listenHttp listener (a loopback address): requests would loop back into it (got "0.0.0.0")',
    ],
    [
        "own listeners",
        "loopback by the pool's default port",
        { backendApiPort: 80, apiServers: [{ name: "a", address: "::1" }] },
        'apiServers[0].address with port 80 is this load balancer\'s own listenHttp listener (a loopback address): requests would loop back into it (got "::1")',
    ],
    ["own listeners", "127.1 (short form)", stats("127.1"), `apiServers[0].address ${OCTETS} (got "127.1")`],
    ["own listeners", "2130706433 (one number)", stats("2130706433"), `apiServers[0].address ${OCTETS} (got "2130706433")`],
    ["own listeners", "0x7f000001 (hex)", stats("0x7f000001"), `apiServers[0].address ${OCTETS} (got "0x7f000001")`],
    ["own listeners", "0177.0.0.1 (octal)", stats("0177.0.0.1"), `apiServers[0].address ${OCTETS} (got "0177.0.0.1")`],
    // 4. addresses that would fail later
    ["addresses", "a lone dot", api({ address: "." }), `apiServers[1].address ${EMPTY_LABEL} (got ".")`],
    ["addresses", "two dots", api({ address: ".." }), `apiServers[1].address ${EMPTY_LABEL} (got "..")`],
    [
        "addresses",
        "an empty label",
        api({ address: "backend-api-1..lxd" }),
        `apiServers[1].address ${EMPTY_LABEL} (got "backend-api-1..lxd")`,
    ],
    [
        "addresses",
        "a trailing dot",
        api({ address: "backend-api-1.lxd." }),
        `apiServers[1].address ${EMPTY_LABEL} (got "backend-api-1.lxd.")`,
    ],
    [
        "addresses",
        "a 64-character label",
        api({ address: `${"a".repeat(64)}.lxd` }),
        `apiServers[1].address must be a DNS name whose labels are at most 63 characters (label of 64) (got "${"a".repeat(64)}.lxd")`,
    ],
    // Long values are shown cut to 200 characters.
    [
        "addresses",
        "a 257-character name",
        api({ address: LONG_NAME }),
        `apiServers[1].address must be a DNS name of at most 253 characters (this one has 257) (got "${LONG_NAME.slice(0, 199)}...)`,
    ],
    ["addresses", "an octet over 255", api({ address: "256.1.1.1" }), `apiServers[1].address ${OCTETS} (got "256.1.1.1")`],
    ["addresses", "a leading zero", api({ address: "10.0.0.01" }), `apiServers[1].address ${OCTETS} (got "10.0.0.01")`],
    ["addresses", "three octets", api({ address: "10.0.1" }), `apiServers[1].address ${OCTETS} (got "10.0.1")`],
    [
        "addresses",
        "an IPv6 zone id",
        api({ address: "fe80::1%eth0" }),
        'apiServers[1].address must not carry an IPv6 zone id (%...): a zone names a link of one machine, and HAProxy cannot use it for a server (got "fe80::1%eth0")',
    ],
    ["addresses", "an underscore", api({ address: "backend_api.lxd" }), `apiServers[1].address ${LABELS} (got "backend_api.lxd")`],
    ["addresses", "a label ending in -", api({ address: "backend-.lxd" }), `apiServers[1].address ${LABELS} (got "backend-.lxd")`],
    ["addresses", "an empty address", api({ address: "" }), 'apiServers[1].address must be a DNS name or an IP address (got "")'],
    // 6. what can never work
    [
        "cannot work",
        "every server at weight 0",
        {
            apiServers: [
                { name: "a", address: "a.lxd", weight: 0 },
                { name: "b", address: "b.lxd", weight: 0 },
            ],
        },
        "apiServers has every server at weight 0: the pool could never serve a request; give at least one server a weight of 1-256",
    ],
    [
        "cannot work",
        "a 1 ms check interval",
        { healthCheckIntervalMs: 1 },
        "healthCheckIntervalMs must be an integer from 100 to 3600000 (got 1)",
    ],
    // 7. a new server that would move an existing one on the hash ring
    [
        "ids",
        "two names on one server id",
        {
            streamServers: [
                { name: "stream-srv-3860", address: "s1.lxd" },
                { name: "stream-srv-1285", address: "s2.lxd" },
            ],
        },
        'streamServers[1].name takes the same server id (760601) as streamServers[0].name "stream-srv-3860": ids come from names so that adding a server never moves another; rename one of the two, or pin another `id` (1-1048575, unused in the pool) on one of them',
    ],
    [
        "ids",
        "a name whose id another server pins, the pinning one listed later",
        {
            streamServers: [
                { name: "stream-srv-1285", address: "s1.lxd" },
                { name: "other", address: "s2.lxd", id: 760601 },
            ],
        },
        'streamServers[0].name takes the same server id (760601) as streamServers[1].name "other", which pins it: ids come from names so that adding a server never moves another; rename one of the two, or pin another `id` (1-1048575, unused in the pool) on one of them',
    ],
    [
        "ids",
        "one id pinned twice",
        {
            apiServers: [
                { name: "a", address: "a.lxd", id: 7 },
                { name: "b", address: "b.lxd", id: 7 },
            ],
        },
        "apiServers[1].id pins 7, which apiServers[0].id pins too; server ids must be unique in a pool",
    ],
    [
        "ids",
        "a pinned id of 0",
        { apiServers: [{ name: "a", address: "a.lxd", id: 0 }] },
        "apiServers[0].id must be an integer from 1 to 1048575 (got 0)",
    ],
    [
        "ids",
        "a pinned id past the ring's space (2^20 would share ring points with 0)",
        { apiServers: [{ name: "a", address: "a.lxd", id: 1048576 }] },
        "apiServers[0].id must be an integer from 1 to 1048575 (got 1048576)",
    ],
    [
        "ids",
        "a pinned id as a string",
        { apiServers: [{ name: "a", address: "a.lxd", id: "7" as never }] },
        'apiServers[0].id must be an integer from 1 to 1048575 (got "7")',
    ],
    // 8. values of any type
    [
        "any type",
        "a BigInt port",
        { listenHttp: BigInt(80) as unknown as number },
        "listenHttp must be an integer from 1 to 65535 (got 80n)",
    ],
    ["any type", "NaN", { statsPort: NaN }, "statsPort must be an integer from 1 to 65535 (got NaN)"],
    ["any type", "Infinity", { maxConnections: Infinity }, "maxConnections must be an integer from 1 to 100000 (got Infinity)"],
    [
        "any type",
        "a symbol",
        { stickyCookieName: Symbol("x") as unknown as string },
        "stickyCookieName must be 1-64 characters of A-Z a-z 0-9 _ - (a safe cookie token) (got Symbol(x))",
    ],
    [
        "any type",
        "a circular server",
        {
            apiServers: (() => {
                const a: unknown[] = [];
                a.push(a);
                return a;
            })() as never,
        },
        "apiServers[0] must be an object { name, address, port?, weight?, id? } (got an array that contains itself)",
    ],
    [
        "any type",
        "a circular object as a name",
        api({
            name: (() => {
                const o: Record<string, unknown> = {};
                o.self = o;
                return o;
            })() as never,
        }),
        "apiServers[1].name must be 1-64 characters of A-Z a-z 0-9 . _ - (got an object that contains itself)",
    ],
    // 9. typos
    ["typos", "a misspelt setting", { listenHTTP: 8080 } as never, "listenHTTP is not a known setting: did you mean listenHttp?"],
    ["typos", "a misspelt server field", api({ wieght: 5 }), "apiServers[1].wieght is not a known setting: did you mean weight?"],
    [
        "typos",
        "a field nothing resembles",
        api({ colour: "red" }),
        "apiServers[1].colour is not a known setting (known: name, address, port, weight, id)",
    ],
])("hostile or careless input, %s: %s", (_class, _case, overrides, message) => {
    test("refused with a SettingsError naming the field", () => {
        let error: unknown;
        try {
            renderHaproxyConfig({ ...labSettings(), ...overrides });
        } catch (e) {
            error = e;
        }
        expect(error).toBeInstanceOf(SettingsError);
        expect((error as SettingsError).problems).toEqual([message]);
    });
});

describe("careful input that stays accepted", () => {
    test.each([
        ["a loopback backend on another port (a test harness on one machine)", stats("127.0.0.11", 8080)],
        ["IPv6 documentation address", stats("2001:db8::10", 8080)],
        ["IPv4-mapped non-loopback", stats("::ffff:10.0.0.1", 8080)],
        ["a single-label name", stats("backend-api-1", 8080)],
        [
            "some servers at weight 0",
            {
                apiServers: [
                    { name: "a", address: "a.lxd", weight: 0 },
                    { name: "b", address: "b.lxd" },
                ],
            },
        ],
    ])("%s", (_case, overrides) => {
        expect(() => renderHaproxyConfig({ ...labSettings(), ...overrides })).not.toThrow();
    });

    test("settings that are not an object are refused by name, not with a TypeError", () => {
        expect(() => renderHaproxyConfig(null as never)).toThrow(
            new SettingsError(["settings must be an object of HaproxySettings fields (got null)"]),
        );
    });
});
