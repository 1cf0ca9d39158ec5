import { HaproxySettings, renderHaproxyConfig, SettingsError, validateProvisioning, validateTlsPair } from "../../components";
import { labSettings } from "./lab-settings";

const api = (overrides: object) => ({ apiServers: [{ name: "backend-api-1", address: "backend-api-1.lxd" }, { name: "backend-api-2", address: "backend-api-2.lxd", ...overrides }] });

describe.each<[string, Partial<HaproxySettings>, string]>([
    ["port above range", { listenHttp: 70000 }, "listenHttp must be an integer from 1 to 65535 (got 70000)"],
    ["port zero", { statsPort: 0 }, "statsPort must be an integer from 1 to 65535 (got 0)"],
    ["fractional port", { backendApiPort: 80.5 }, "backendApiPort must be an integer from 1 to 65535 (got 80.5)"],
    ["port as string", { streamServerPort: "8082" as unknown as number }, 'streamServerPort must be an integer from 1 to 65535 (got "8082")'],
    ["server port out of range", api({ port: 0 }), "apiServers[1].port must be an integer from 1 to 65535 (got 0)"],
    ["two listeners on one port", { statsPort: 80 }, "statsPort must differ from listenHttp: both are 80; two listeners cannot share a port"],
    ["https on the http port", { tlsCertPath: "/etc/haproxy/certs/veza.pem", listenHttps: 80 }, "listenHttps must differ from listenHttp: both are 80; two listeners cannot share a port"],
    ["empty api pool", { apiServers: [] }, "apiServers must list at least one server ({ name, address, port?, weight? })"],
    ["empty stream pool", { streamServers: [] }, "streamServers must list at least one server ({ name, address, port?, weight? })"],
    ["duplicate server names", api({ name: "backend-api-1" }), 'apiServers[1].name duplicates apiServers[0].name "backend-api-1"; server names must be unique in a pool'],
    ["space in a name", api({ name: "backend api" }), 'apiServers[1].name must be 1-64 characters of A-Z a-z 0-9 . _ - (got "backend api")'],
    ["shell in a name", api({ name: "x;rm -rf /" }), 'apiServers[1].name must be 1-64 characters of A-Z a-z 0-9 . _ - (got "x;rm -rf /")'],
    ["newline in an address", api({ address: "a.lxd\nserver evil" }), 'apiServers[1].address must be a DNS name or IP address of A-Z a-z 0-9 . _ - (or an IPv6 address) (got "a.lxd\\nserver evil")'],
    ["colon in a non-IPv6 address", { streamServers: [{ name: "s", address: "host:99" }] }, 'streamServers[0].address must be a DNS name or IP address of A-Z a-z 0-9 . _ - (or an IPv6 address) (got "host:99")'],
    ["weight out of range", api({ weight: 300 }), "apiServers[1].weight must be an integer from 0 to 256 (got 300)"],
    ["fall below 1", { healthCheckFall: 0 }, "healthCheckFall must be an integer from 1 to 100 (got 0)"],
    ["rise below 1", { healthCheckRise: 0 }, "healthCheckRise must be an integer from 1 to 100 (got 0)"],
    ["interval below 1", { healthCheckIntervalMs: 0 }, "healthCheckIntervalMs must be an integer from 1 to 3600000 (got 0)"],
    ["negative drain", { gracefulDrainSeconds: -1 }, "gracefulDrainSeconds must be an integer from 0 to 3600 (got -1)"],
    ["unsafe cookie name", { stickyCookieName: "ID; Path=/" }, 'stickyCookieName must be 1-64 characters of A-Z a-z 0-9 _ - (a safe cookie token) (got "ID; Path=/")'],
    ["relative cert path", { tlsCertPath: "certs/veza.pem" }, 'tlsCertPath must be an absolute path of A-Z a-z 0-9 . _ - segments without "..", or "" for HTTP only (got "certs/veza.pem")'],
    ["cert path escaping upwards", { tlsCertPath: "/etc/haproxy/../shadow" }, 'tlsCertPath must be an absolute path of A-Z a-z 0-9 . _ - segments without "..", or "" for HTTP only (got "/etc/haproxy/../shadow")'],
    ["stream prefix without trailing slash", { streamPathPrefix: "/stream" }, 'streamPathPrefix must start and end with "/" and hold segments of A-Z a-z 0-9 . _ ~ -, e.g. "/stream/" (got "/stream")'],
    ["unknown hash mode", { streamHashMode: "random" as never }, 'streamHashMode must be "track" or "uri-whole" (got "random")'],
    ["stats on a public address", { statsBindAddress: "0.0.0.0" }, 'statsBindAddress must be a loopback address in 127.0.0.0/8; stats are never exposed publicly (got "0.0.0.0")'],
    ["short stats password", { statsPassword: "short" }, "statsPassword must be 8-128 characters of A-Z a-z 0-9 . _ ~ + = - (value not shown)"],
    ["missing stats password", { statsPassword: undefined }, "statsPassword must be 8-128 characters of A-Z a-z 0-9 . _ ~ + = - (value not shown)"],
    ["health path with a space", { apiHealthPath: "/api/v1/health check" }, 'apiHealthPath must be an absolute URL path of A-Z a-z 0-9 . _ ~ / - (got "/api/v1/health check")'],
    ["bind address not an IP", { bindAddress: "eth0" }, 'bindAddress must be "*" or an IPv4 address (got "eth0")'],
    ["maxconn zero", { maxConnections: 0 }, "maxConnections must be an integer from 1 to 500000 (got 0)"],
    ["user with a space", { runAsUser: "ha proxy" }, 'runAsUser must be a Unix user/group name ([a-z_][a-z0-9_-]*), or "" to keep the current one (got "ha proxy")'],
    ["relative log target", { logTarget: "dev/log" }, 'logTarget must be an absolute path of A-Z a-z 0-9 . _ - segments without ".." (got "dev/log")'],
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

describe("validation reports", () => {
    test("every bad field at once, one line each", () => {
        expect(() => renderHaproxyConfig({ ...labSettings(), healthCheckFall: 0, healthCheckRise: 0 }))
            .toThrow("healthCheckFall must be an integer from 1 to 100 (got 0)\nhealthCheckRise must be an integer from 1 to 100 (got 0)");
    });

    test("never echoes the stats password", () => {
        const secret = "has space and secret";
        expect(() => renderHaproxyConfig({ ...labSettings(), statsPassword: secret })).toThrow("(value not shown)");
        try { renderHaproxyConfig({ ...labSettings(), statsPassword: secret }); } catch (error) {
            expect((error as Error).message).not.toContain(secret);
        }
    });
});

describe.each<[string, Parameters<typeof validateProvisioning>[0], string]>([
    ["container name with a dot", { containerName: "ha.proxy", image: "images:debian/12", profiles: ["default"] }, 'containerName must be an Incus instance name: 1-63 letters, digits and -, starting with a letter, not ending with - (got "ha.proxy")'],
    ["image with a space", { containerName: "haproxy", image: "debian 12", profiles: ["default"] }, 'image must be an Incus image reference such as "images:debian/12" or a local alias (A-Z a-z 0-9 . _ : / -) (got "debian 12")'],
    ["no profiles", { containerName: "haproxy", image: "images:debian/12", profiles: [] }, 'profiles must list at least one Incus profile, e.g. ["default"]'],
    ["profile with a comma", { containerName: "haproxy", image: "images:debian/12", profiles: ["a,b"] }, 'profiles[0] must be an Incus profile name of A-Z a-z 0-9 . _ - (got "a,b")'],
])("invalid provisioning: %s", (_case, provisioning, message) => {
    test("throws with the exact message", () => {
        expect(() => validateProvisioning(provisioning)).toThrow(new SettingsError([message]));
    });
});

describe("TLS pair", () => {
    const cert = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n";
    test("a certificate without its key is refused, without echoing anything", () => {
        expect(() => validateTlsPair(cert, "")).toThrow("tls.privateKeyPem must be the certificate's PEM private key (-----BEGIN ... PRIVATE KEY-----); a certificate without its key cannot serve HTTPS (value not shown)");
    });
    test("a key where the certificate should be is refused", () => {
        expect(() => validateTlsPair("-----BEGIN PRIVATE KEY-----", "-----BEGIN PRIVATE KEY-----")).toThrow("tls.certificatePem must be a PEM certificate (-----BEGIN CERTIFICATE-----)");
    });
    test("a proper pair passes", () => {
        expect(() => validateTlsPair(cert, "-----BEGIN EC PRIVATE KEY-----\nk\n-----END EC PRIVATE KEY-----\n")).not.toThrow();
    });
});
