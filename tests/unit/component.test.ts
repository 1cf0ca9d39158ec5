import * as command from "@pulumi/command";
import { spawnSync } from "child_process";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { labSettings } from "./lab-settings";
import { installMocks, parseStepStdin, isSecret, registeredAll, Registered, unwrap, valueOf } from "../support";

const registered: Registered[] = installMocks();
// Imported after the mocks are installed, as the SDK requires.
import { createHmac } from "crypto";
import { HaproxyLoadBalancer, HaproxyLoadBalancerArgs, HaproxySettings, ownerToken, renderHaproxyConfig } from "../../components";
import { sha256Hex } from "../../components/identity";
import { forgetClaims } from "../../components/claims";

const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl incus-host";
const header = (r: Registered) => parseStepStdin(unwrap<string>(r.inputs.stdin)).header;

const labArgs = (): HaproxyLoadBalancerArgs => {
    const { apiServers, streamServers } = labSettings();
    return { apiServers, streamServers };
};

interface Built {
    lb: HaproxyLoadBalancer;
    children: { name: string; type: string; parent?: pulumi.Resource }[];
    byName(suffix: string): Registered;
}

let counter = 0;
async function build(args: HaproxyLoadBalancerArgs, name = `lb${++counter}`): Promise<Built> {
    const children: Built["children"] = [];
    const lb = new HaproxyLoadBalancer(name, args, {
        transformations: [
            (t) => {
                if (t.name !== name) children.push({ name: t.name, type: t.type, parent: t.opts.parent });
                return undefined;
            },
        ],
    });
    await registeredAll([lb.containerCommand, lb.configCommand, ...(lb.tlsCommand ? [lb.tlsCommand] : [])]);
    const byName = (suffix: string) => {
        const found = registered.filter((r) => r.name === `${name}-${suffix}`);
        if (found.length !== 1) throw new Error(`expected one resource ${name}-${suffix}, found ${found.length}`);
        return found[0];
    };
    return { lb, children, byName };
}

describe("HaproxyLoadBalancer under mocks", () => {
    test("children are named from the component's name and parented to it", async () => {
        const { lb, children } = await build(labArgs(), "edge");
        expect(children.map((c) => c.name).sort()).toEqual([
            "edge-config",
            "edge-container",
            "edge-cookie-secret",
            "edge-fingerprint-key",
            "edge-stats-password",
        ]);
        for (const child of children) expect(child.parent).toBe(lb);
        expect(await valueOf(lb.urn)).toContain("veza:infra:HaproxyLoadBalancer::edge");
    });

    test("without a connection the steps are local commands run by /bin/sh", async () => {
        const { byName } = await build(labArgs());
        expect(byName("container").type).toBe("command:local:Command");
        expect(byName("config").type).toBe("command:local:Command");
        expect(byName("container").inputs.interpreter).toEqual(["/bin/sh", "-c"]);
    });

    test("with a connection the steps are remote commands carrying it", async () => {
        const { byName } = await build({
            ...labArgs(),
            connection: { host: "incus-host.example", user: "root", privateKey: pulumi.secret("KEY"), hostKey: HOST_KEY },
        });
        expect(byName("container").type).toBe("command:remote:Command");
        expect(byName("config").type).toBe("command:remote:Command");
        const connection = unwrap<Record<string, unknown>>(byName("config").inputs.connection);
        expect(unwrap(connection.host)).toBe("incus-host.example");
    });

    test("the config step carries the rendered config on stdin, as a secret, after a header with its hash", async () => {
        const { byName } = await build({ ...labArgs(), statsPassword: "lab-password-123", cookieSecret: "k" }, "cfg");
        const config = byName("config");
        expect(isSecret(config.inputs.stdin)).toBe(true);
        const expected = renderHaproxyConfig({
            ...(labArgs() as unknown as HaproxySettings),
            statsPassword: "lab-password-123",
            cookieSecret: "k",
        });
        const { header: fields, payload } = parseStepStdin(unwrap<string>(config.inputs.stdin));
        expect(payload).toBe(expected);
        expect(fields.config_sha256).toBe(sha256Hex(expected));
        expect(fields.container).toBe("cfg");
        // Nothing travels in the environment (a stock sshd refuses it), and the password reaches no command line.
        expect(config.inputs.environment).toBeUndefined();
        expect(JSON.stringify([config.inputs.create, config.inputs.update])).not.toContain("lab-password-123");
    });

    test("a pool membership change changes the config step and leaves the container step identical", async () => {
        const before = await build({ ...labArgs(), statsPassword: "lab-password-123" }, "same");
        const grown = labArgs();
        (grown.apiServers as unknown[]).push({ name: "backend-api-3", address: "backend-api-3.lxd" });
        const containerBefore = before.byName("container").inputs;
        const configBefore = before.byName("config").inputs;
        registered.length = 0;
        const after = await build({ ...grown, statsPassword: "lab-password-123" }, "same");
        expect(after.byName("container").inputs).toEqual(containerBefore);
        expect(unwrap(after.byName("config").inputs.stdin)).not.toEqual(unwrap(configBefore.stdin));
        expect(unwrap(after.byName("config").inputs.stdin)).toContain("server backend-api-3 backend-api-3.lxd:8080");
        expect(header(after.byName("config")).config_sha256).not.toEqual(
            parseStepStdin(unwrap<string>(configBefore.stdin)).header.config_sha256,
        );
    });

    test("the stats password is a secret output, generated when not given", async () => {
        const { lb, byName } = await build(labArgs());
        expect(byName("stats-password").type).toBe("random:index/randomPassword:RandomPassword");
        expect(byName("stats-password").inputs).toMatchObject({ length: 32, special: false });
        expect(await (lb.statsPassword as unknown as { isSecret: Promise<boolean> }).isSecret).toBe(true);
        expect(await valueOf(lb.statsPassword)).toBe("mockStatsPassword0123456789abcdef");
        expect(unwrap(byName("config").inputs.stdin)).toContain("stats auth admin:mockStatsPassword0123456789abcdef");
        expect(isSecret(byName("config").inputs.stdin)).toBe(true);
    });

    test("TLS: the key bundle reaches the container only through the secret stdin of the TLS step", async () => {
        const key = "-----BEGIN PRIVATE KEY-----\nSECRETKEYMATERIAL\n-----END PRIVATE KEY-----\n";
        const cert = "-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----\n";
        const { lb, byName, children } = await build({ ...labArgs(), tls: { certificatePem: cert, privateKeyPem: key } }, "secure");
        expect(children.map((c) => c.name)).toContain("secure-tls");
        const tlsStep = byName("tls");
        expect(isSecret(tlsStep.inputs.stdin)).toBe(true);
        expect(parseStepStdin(unwrap<string>(tlsStep.inputs.stdin)).payload).toBe(cert + key);
        const everythingElse = JSON.stringify([
            tlsStep.inputs.create,
            tlsStep.inputs.delete,
            tlsStep.inputs.triggers,
            byName("config").inputs.triggers,
            byName("container").inputs,
        ]);
        expect(everythingElse).not.toContain("SECRETKEYMATERIAL");
        expect(header(tlsStep).cert_path).toBe("/etc/haproxy/certs/veza.pem");
        const config = unwrap<string>(byName("config").inputs.stdin);
        expect(config).toContain("bind *:443 ssl crt /etc/haproxy/certs/veza.pem");
        expect(config).toContain("cookie VEZA_SERVERID insert indirect nocache httponly secure");
        expect(header(byName("config")).cert_sha256).toBe(sha256Hex(cert));
        expect(await valueOf(lb.httpsUrl)).toBe("https://198.18.0.10/");
    });

    test("every declared output is set", async () => {
        const { lb } = await build({ ...labArgs(), listenHttp: 8081 }, "outputs");
        expect(await valueOf(lb.containerName)).toBe("outputs");
        expect(await valueOf(lb.address)).toBe("198.18.0.10");
        expect(await valueOf(lb.httpUrl)).toBe("http://198.18.0.10:8081/");
        expect(await valueOf(lb.httpsUrl)).toBe("");
        expect(await valueOf(lb.statsUrl)).toBe("http://127.0.0.1:9100/stats");
        expect(await valueOf(lb.metricsUrl)).toBe("http://127.0.0.1:9100/metrics");
        expect(await valueOf(lb.configFingerprint)).toMatch(/^[0-9a-f]{64}$/);
        expect(await valueOf(lb.renderedConfig)).toContain("backend api_pool");
        expect(await valueOf(lb.statsPassword)).toBe("mockStatsPassword0123456789abcdef");
    });

    test("only secrets are secret: URLs, scripts and the container step's inputs stay readable for preview diffs", async () => {
        const { lb, byName } = await build({
            ...labArgs(),
            tls: {
                certificatePem: "-----BEGIN CERTIFICATE-----\nC\n-----END CERTIFICATE-----\n",
                privateKeyPem: "-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n",
            },
        });
        const secrecy = (o: pulumi.Output<unknown>) => (o as unknown as { isSecret: Promise<boolean> }).isSecret;
        for (const output of [lb.httpUrl, lb.httpsUrl, lb.statsUrl, lb.metricsUrl, lb.configFingerprint, lb.address, lb.containerName]) {
            expect(await secrecy(output)).toBe(false);
        }
        for (const step of ["container", "tls", "config"]) {
            expect(isSecret(byName(step).inputs.create)).toBe(false);
            expect(isSecret(byName(step).inputs.triggers)).toBe(false);
        }
        expect(isSecret(byName("container").inputs.stdin)).toBe(false);
        expect(isSecret(byName("tls").inputs.stdin)).toBe(true);
        expect(isSecret(byName("config").inputs.stdin)).toBe(true);
    });

    test("a secret stats password does not switch off constructor-time validation of the other fields", () => {
        const before = registered.length;
        expect(
            () =>
                new HaproxyLoadBalancer("secretpw", {
                    ...labArgs(),
                    healthCheckFall: 0,
                    statsPassword: pulumi.secret("a-real-password-1"),
                }),
        ).toThrow("healthCheckFall must be an integer from 1 to 100 (got 0)");
        expect(
            () =>
                new HaproxyLoadBalancer("latepool", {
                    apiServers: pulumi.output([{ name: "a", address: "a.lxd" }]),
                    streamServers: labArgs().streamServers,
                    statsPort: 80,
                }),
        ).toThrow("statsPort must differ from listenHttp: both are 80; two listeners cannot share a port");
        expect(registered.length).toBe(before);
    });

    test("args are not modified by applying defaults", async () => {
        const args = labArgs();
        const copy = JSON.parse(JSON.stringify(args));
        await build(args);
        expect(args).toEqual(copy);
    });

    test("an invalid plain setting fails the constructor, naming the field, before any resource exists", () => {
        const bad = labArgs();
        (bad.apiServers as { name: string }[])[1].name = "bad name";
        const before = registered.length;
        expect(() => new HaproxyLoadBalancer("broken", bad)).toThrow(
            'apiServers[1].name must be 1-64 characters of A-Z a-z 0-9 . _ - (got "bad name")',
        );
        expect(() => new HaproxyLoadBalancer("broken2", { ...labArgs(), containerName: "-x" })).toThrow(
            "containerName must be an Incus instance name",
        );
        expect(registered.length).toBe(before);
    });

    describe.each<[string, string, string, string[]]>([
        ["a settings field", "late-fall", "healthCheckFall must be an integer from 1 to 100 (got 0)", []],
        [
            "an SSH connection without a host key",
            "late-hostkey",
            "connection.hostKey must be set to the Incus host's SSH public key line (stack config haproxy:incusHost.hostKey), e.g. the contents of " +
                "/etc/ssh/ssh_host_ed25519_key.pub on that host: without it any host key is accepted and whoever answers in its place gets root " +
                "commands, the TLS key and the stats password. To run unverified anyway, set insecureSkipHostKeyCheck: true",
            [],
        ],
        [
            "a pair whose VIP is its subnet's network address (no container step: node a's carries the pair's placement)",
            "late-pair",
            'pair.vip must not be the network or broadcast address of its /24 (got "10.0.0.0/24")',
            [],
        ],
        [
            "a pair whose VIP is a node's own address, known once the container steps printed it (one error, not a serialisation error per node)",
            "vip-is-a-node",
            "pair.vip must not be a node's own address (got \"198.18.0.10/24\"): pick a free address on the bridge's subnet, outside its DHCP range",
            [
                "command:local:Command late-container",
                "command:local:Command late-b-container",
                "command:local:Command late-peers-tls",
                "command:local:Command late-b-peers-tls",
            ],
        ],
        [
            "a certificate without its key",
            "late-half-pair",
            "tls.privateKeyPem must be the certificate's PEM private key (-----BEGIN ... PRIVATE KEY-----); a certificate without its key cannot serve HTTPS (value not shown)",
            [],
        ],
    ])("an invalid value that arrives as an Output: %s", (_case, scenario, message, steps) => {
        test("fails the run once, on the component, with the field's message and no SDK prefix; no step it feeds registers", () => {
            const program = path.join(__dirname, "fixtures", "late-invalid-program.ts");
            // The SDK exits non-zero (the run failed, its promises left pending): the verdict is on stdout.
            const run = spawnSync(process.execPath, [require.resolve("ts-node/dist/bin.js"), "--transpile-only", program, scenario], {
                encoding: "utf8",
            });
            const result = JSON.parse(run.stdout) as {
                errors: { name: string; message: string; resource?: string }[];
                registered: string[];
            };
            expect(result.errors).toEqual([{ name: "InputError", message, resource: "late" }]);
            // No step runs while any input is bad, the container step neither: in a run that also
            // changes the image it would delete the serving container (the real engine did).
            expect(result.registered.filter((r) => r.startsWith("command:"))).toEqual(steps);
            expect(result.registered).toContain("veza:infra:HaproxyLoadBalancer late");
        }, 30000);
    });
});

describe("lifecycle rules", () => {
    beforeEach(() => forgetClaims());

    test("the container is named after the component by default", async () => {
        const { byName, lb } = await build(labArgs(), "edge-a");
        expect(header(byName("container")).container).toBe("edge-a");
        expect(header(byName("config")).container).toBe("edge-a");
        expect(await valueOf(lb.containerName)).toBe("edge-a");
    });

    test("a component name that is no Incus instance name asks for containerName", () => {
        expect(() => new HaproxyLoadBalancer("edge_lb", labArgs())).toThrow(
            'containerName must be an Incus instance name: 1-63 letters, digits and -, starting with a letter, not ending with - (got "edge_lb")',
        );
    });

    test.each<[string, Partial<HaproxyLoadBalancerArgs>, Partial<HaproxyLoadBalancerArgs>, string]>([
        [
            "an explicit name equal to another component's default",
            {},
            { containerName: "dup-a" },
            'containerName "dup-a" on the local Incus is already the container of HaproxyLoadBalancer "dup-a"; "dup-b" would overwrite its config, and destroying either would delete it: give each its own containerName',
        ],
        [
            "the same explicit name over one SSH host",
            { containerName: "lb", connection: { host: "h1", hostKey: HOST_KEY } },
            { containerName: "lb", connection: { host: "h1", port: 22, hostKey: HOST_KEY } },
            'containerName "lb" on ssh:h1:22 is already the container of HaproxyLoadBalancer "dup-a"; "dup-b" would overwrite its config, and destroying either would delete it: give each its own containerName',
        ],
        [
            "one SSH host written two ways (upper case, then with the trailing dot of an absolute name)",
            { containerName: "lb", connection: { host: "INCUS.LAN", hostKey: HOST_KEY } },
            { containerName: "lb", connection: { host: "incus.lan.", hostKey: HOST_KEY } },
            'containerName "lb" on ssh:incus.lan.:22 is already the container of HaproxyLoadBalancer "dup-a"; "dup-b" would overwrite its config, and destroying either would delete it: give each its own containerName',
        ],
    ])("two components on one container fail at construction: %s", (_case, first, second, message) => {
        const a = new HaproxyLoadBalancer("dup-a", { ...labArgs(), ...first });
        expect(() => new HaproxyLoadBalancer("dup-b", { ...labArgs(), ...second })).toThrow(message);
        // Only the first component's steps exist.
        return registeredAll([a.containerCommand, a.configCommand]).then(() => {
            expect(registered.filter((r) => r.type.startsWith("command:") && r.name.startsWith("dup-b"))).toEqual([]);
        });
    });

    test("the same container name on two different SSH hosts is two load balancers", async () => {
        const one = await build({ ...labArgs(), containerName: "lb", connection: { host: "h1", hostKey: HOST_KEY } }, "host-1");
        const two = await build({ ...labArgs(), containerName: "lb", connection: { host: "h2", hostKey: HOST_KEY } }, "host-2");
        expect([header(one.byName("container")).container, header(two.byName("container")).container]).toEqual(["lb", "lb"]);
        expect(two.byName("container").inputs.triggers).toEqual(["lb", "images:debian/12", "default", "ssh:h2:22"]);
    });

    test("the container step records an owner token that changes with the component's URN and with local/SSH, nothing else", async () => {
        const local = await build({ ...labArgs(), containerName: "owned" }, "own-1");
        const token = header(local.byName("container")).owner;
        expect(token).toBe(ownerToken("urn:pulumi:test::veza-haproxy::veza:infra:HaproxyLoadBalancer::own-1", "local"));
        forgetClaims();
        const renamed = await build({ ...labArgs(), containerName: "owned" }, "own-2");
        expect(header(renamed.byName("container")).owner).not.toBe(token);
        forgetClaims();
        registered.length = 0;
        const overSsh = await build(
            { ...labArgs(), containerName: "owned", connection: { host: "127.0.0.1", hostKey: HOST_KEY } },
            "own-1",
        );
        expect(header(overSsh.byName("container")).owner).toBe(
            ownerToken("urn:pulumi:test::veza-haproxy::veza:infra:HaproxyLoadBalancer::own-1", "ssh:127.0.0.1:22"),
        );
        forgetClaims();
        registered.length = 0;
        const grown = labArgs();
        (grown.apiServers as unknown[]).push({ name: "backend-api-3", address: "backend-api-3.lxd" });
        const again = await build({ ...grown, containerName: "owned", healthCheckIntervalMs: 900 }, "own-1");
        expect(header(again.byName("container")).owner).toBe(token);
    });

    test("SSH without a host key is refused at construction, naming the field and the opt-out", () => {
        expect(() => new HaproxyLoadBalancer("nokey", { ...labArgs(), connection: { host: "incus.example", privateKey: "K" } })).toThrow(
            "connection.hostKey must be set to the Incus host's SSH public key line (stack config haproxy:incusHost.hostKey)",
        );
        expect(
            () =>
                new HaproxyLoadBalancer("nokey2", {
                    ...labArgs(),
                    connection: { host: "incus.example", hostKey: "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ host" },
                }),
        ).toThrow(
            'connection.hostKey must be one public key line, "ssh-ed25519 AAAA..." or "ecdsa-sha2-nistp256 AAAA..." (ssh-rsa host keys are not accepted: the provider would pin SHA-1 signatures) (got "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ host")',
        );
    });

    describe.each<[string, string, string]>([
        ["a truncated ed25519 key", "ssh-ed25519 AAAA", "its key data is cut short"],
        [
            "an RSA key labelled ssh-ed25519 (round the no-ssh-rsa rule)",
            "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAAAgQC5Y1Wv7jFFrZj7QivM4nWBQuSyHUGX5oVMi4qagMGjq1V7eoiA3Y7/fzIRU6gLDMW8MZ8+c2a4RMydgiBKTsjwNLS0p9bqNqmYZL/2oB+OVWKuu0FAptNQYC/dgh6O5NlVrE29Hzzy8qrdYRyvYBZDlpt+vw6XFoxwP9svElCLRw==",
            'its key data is a "ssh-rsa" key, not ssh-ed25519',
        ],
        [
            "an ECDSA key labelled ssh-ed25519",
            "ssh-ed25519 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBD+vaXO5L+CM3Nz2OPJrVf9+YuokhV44fAM+u9PUzmAc/vcjPJIPBLdX6Xz1Y2cYkhEO23FdeKx5FSHpmEDQxtc=",
            'its key data is a "ecdsa-sha2-nistp256" key, not ssh-ed25519',
        ],
    ])("a host key line that is not a key: %s", (_case, hostKey, problem) => {
        test("is refused at construction, as ssh-keygen -l refuses it, naming the field", () => {
            expect(() => new HaproxyLoadBalancer("badkey", { ...labArgs(), connection: { host: "incus.example", hostKey } })).toThrow(
                // The value is shown shortened, as every shown value is.
                `connection.hostKey is not a usable public key: ${problem} (ssh-keygen -l refuses it too); copy the whole line from the host's /etc/ssh/ssh_host_ed25519_key.pub (got ${JSON.stringify(hostKey).slice(0, 40)}`,
            );
        });
    });

    test("a non-boolean insecureSkipHostKeyCheck is named as such, not taken for false", () => {
        expect(
            () =>
                new HaproxyLoadBalancer("insecure-yes", {
                    ...labArgs(),
                    connection: { host: "incus.example" },
                    insecureSkipHostKeyCheck: "yes" as unknown as boolean,
                }),
        ).toThrow('insecureSkipHostKeyCheck must be true or false (got "yes")');
    });

    test("whole ed25519 and ECDSA host keys are accepted", () => {
        for (const hostKey of [
            HOST_KEY,
            "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBD+vaXO5L+CM3Nz2OPJrVf9+YuokhV44fAM+u9PUzmAc/vcjPJIPBLdX6Xz1Y2cYkhEO23FdeKx5FSHpmEDQxtc= host",
        ]) {
            expect(
                () =>
                    new HaproxyLoadBalancer(`goodkey-${hostKey.slice(0, 5)}`, {
                        ...labArgs(),
                        connection: { host: "incus.example", hostKey, privateKey: "K" },
                    }),
            ).not.toThrow();
        }
    });

    // The provider checks a bastion's host key exactly as the main connection's: pinned when given, any accepted when not
    // (pulumi-command v1.2.1 remote/proxyConnection.go embeds connectionBase; connection.go SSHConfig).
    describe.each<[string, Record<string, unknown>, string]>([
        [
            "a bastion without a host key",
            { host: "bastion.example", privateKey: "K" },
            "connection.proxy.hostKey must be set to the bastion's SSH public key line, e.g. the contents of /etc/ssh/ssh_host_ed25519_key.pub " +
                "on that host: without it any host key is accepted, and whoever answers in its place sees every command and secret the steps send. " +
                "To run unverified anyway, set insecureSkipHostKeyCheck: true",
        ],
        [
            "a bastion with an ssh-rsa host key",
            { host: "bastion.example", hostKey: "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ bastion" },
            'connection.proxy.hostKey must be one public key line, "ssh-ed25519 AAAA..." or "ecdsa-sha2-nistp256 AAAA..." (ssh-rsa host keys are not accepted: the provider would pin SHA-1 signatures) (got "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ bastion")',
        ],
        [
            "a bastion without a host name",
            { hostKey: HOST_KEY },
            "connection.proxy.host must be the bastion's DNS name or IP address (got undefined)",
        ],
    ])("SSH through %s", (_case, proxy, message) => {
        test("is refused at construction with the field's message", () => {
            expect(
                () =>
                    new HaproxyLoadBalancer("bastion", {
                        ...labArgs(),
                        connection: {
                            host: "incus.example",
                            hostKey: HOST_KEY,
                            proxy,
                        } as unknown as command.types.input.remote.ConnectionArgs,
                    }),
            ).toThrow(message);
        });
    });

    test("a bastion with its host key passes, and reaches the provider's connection", async () => {
        const proxy = { host: "bastion.example", hostKey: HOST_KEY };
        const viaBastion = await build(
            { ...labArgs(), connection: { host: "incus.example", hostKey: HOST_KEY, privateKey: pulumi.secret("K"), proxy } },
            "bastioned",
        );
        expect(unwrap<Record<string, Record<string, unknown>>>(viaBastion.byName("container").inputs.connection).proxy.hostKey).toBe(
            HOST_KEY,
        );
    });

    test("the host key reaches the provider's connection; opting out warns on every run", async () => {
        const verified = await build(
            { ...labArgs(), connection: { host: "h3", privateKey: pulumi.secret("K"), hostKey: HOST_KEY } },
            "keyed",
        );
        expect(unwrap<Record<string, unknown>>(verified.byName("container").inputs.connection).hostKey).toBe(HOST_KEY);
        const warn = jest.spyOn(pulumi.log, "warn").mockImplementation(() => Promise.resolve());
        try {
            const insecure = await build(
                { ...labArgs(), connection: { host: "h4", privateKey: pulumi.secret("K") }, insecureSkipHostKeyCheck: true },
                "unverified",
            );
            expect(insecure.byName("container").type).toBe("command:remote:Command");
            expect(warn).toHaveBeenCalledWith(
                expect.stringContaining("insecureSkipHostKeyCheck is set: the Incus host's SSH key is not verified"),
                insecure.lb,
            );
        } finally {
            warn.mockRestore();
        }
    });

    test("renamed with an alias and no containerName, preview warns that the container is rebuilt under the new name; with containerName it is silent", async () => {
        const warn = jest.spyOn(pulumi.log, "warn").mockImplementation(() => Promise.resolve());
        try {
            const renamed = new HaproxyLoadBalancer("edge-renamed", labArgs(), { aliases: [{ name: "haproxy-old" }] });
            await registeredAll([renamed.containerCommand]);
            expect(warn).toHaveBeenCalledWith(
                "an alias names this component's old name haproxy-old, and containerName is not set: the container is named after the component, " +
                    "so if a container haproxy-old serves, this run replaces it with a new edge-renamed, deleting haproxy-old first (a gap, and a new address). " +
                    'Set containerName: "haproxy-old" to keep it serving.',
                renamed,
            );
            warn.mockClear();
            const kept = new HaproxyLoadBalancer(
                "edge-kept",
                { ...labArgs(), containerName: "haproxy-kept" },
                { aliases: [{ name: "haproxy-kept" }] },
            );
            await registeredAll([kept.containerCommand]);
            expect(warn.mock.calls.filter(([message]) => String(message).includes("an alias names"))).toEqual([]);
        } finally {
            warn.mockRestore();
        }
    });

    test("the container step carries this stack and adoptContainer; adopting warns on every run, a non-boolean is refused", async () => {
        const plain = await build(labArgs(), "own-stack");
        const header = (step: { inputs: Record<string, unknown> }) => String(unwrap(step.inputs.stdin)).split("\n\n")[0].split("\n");
        expect(header(plain.byName("container"))).toContain("stack=veza-haproxy/test");
        expect(header(plain.byName("container")).some((l) => l.startsWith("adopt="))).toBe(false);
        const warn = jest.spyOn(pulumi.log, "warn").mockImplementation(() => Promise.resolve());
        try {
            const adopting = await build({ ...labArgs(), containerName: "taken", adoptContainer: true }, "adopting");
            expect(header(adopting.byName("container"))).toContain("adopt=yes");
            expect(warn).toHaveBeenCalledWith(
                "adoptContainer is set: if container taken belongs to another stack, this run takes it over, and this stack's destroy will delete it. " +
                    "Unset it once the container is this stack's.",
                adopting.lb,
            );
        } finally {
            warn.mockRestore();
        }
        expect(() => new HaproxyLoadBalancer("adopt-yes", { ...labArgs(), adoptContainer: "yes" as unknown as boolean })).toThrow(
            'adoptContainer must be true or false (got "yes")',
        );
    });

    test("the container step waits for the pools to be known and valid, and gets nothing of them but that verdict", async () => {
        let resolvePools: (pools: { name: string; address: string }[]) => void = () => undefined;
        const later = pulumi.output(new Promise<{ name: string; address: string }[]>((resolve) => (resolvePools = resolve)));
        const lb = new HaproxyLoadBalancer("pools-later", { apiServers: later, streamServers: labArgs().streamServers });
        await new Promise((resolve) => setTimeout(resolve, 200));
        expect(registered.filter((r) => r.name === "pools-later-container")).toEqual([]);
        resolvePools(labArgs().apiServers as { name: string; address: string }[]);
        await registeredAll([lb.containerCommand]);
        const container = registered.filter((r) => r.name === "pools-later-container");
        expect(container).toHaveLength(1);
        // Its inputs are exactly those of a stack whose pools were known from the start: nothing of them is pool-derived.
        const known = await build({ ...labArgs(), containerName: "pools-later-known" }, "pools-later-known");
        const strip = (r: Registered) => ({
            ...r.inputs,
            stdin: { ...header(r), container: "", owner: "" },
            triggers: (r.inputs.triggers as unknown[]).slice(1),
        });
        expect(strip(container[0])).toEqual(strip(known.byName("container")));
    });

    test("name, image, profiles and the SSH host are the container step's triggers: a change replaces it, old container first", async () => {
        const { byName } = await build({ ...labArgs(), image: "veza-debian12", profiles: ["default", "veza"] }, "trig");
        expect(byName("container").inputs.triggers).toEqual(["trig", "veza-debian12", "default,veza", "local"]);
        const remote = await build({ ...labArgs(), connection: { host: "h5", port: 2222, hostKey: HOST_KEY } }, "trig-ssh");
        expect(remote.byName("container").inputs.triggers).toEqual(["trig-ssh", "images:debian/12", "default", "ssh:h5:2222"]);
    });

    test("a new default image rebuilds nothing: a defaulted image launches images:debian/13 but keeps 0.2's trigger token; setting it is what replaces", async () => {
        const defaulted = await build(labArgs(), "default-image");
        expect(header(defaulted.byName("container")).image).toBe("images:debian/13");
        expect((defaulted.byName("container").inputs.triggers as unknown[])[1]).toBe("images:debian/12");
        const pinned = await build({ ...labArgs(), image: "images:debian/12" }, "pinned-image");
        expect((pinned.byName("container").inputs.triggers as unknown[])[1]).toBe("images:debian/12");
        const moved = await build({ ...labArgs(), image: "images:debian/13" }, "moved-image");
        expect((moved.byName("container").inputs.triggers as unknown[])[1]).toBe("images:debian/13");
    });

    test("only steps with something to undo have a delete: the config step has none, TLS removes its certificate", async () => {
        const cert = "-----BEGIN CERTIFICATE-----\nC\n-----END CERTIFICATE-----\n";
        const key = "-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n";
        const { byName } = await build({ ...labArgs(), tls: { certificatePem: cert, privateKeyPem: key } }, "undo");
        expect("delete" in byName("config").inputs).toBe(false);
        expect(byName("tls").inputs.delete).toContain('incus exec "$hdr_container" -- rm -f "$hdr_cert_path"');
        expect(byName("container").inputs.delete).toContain('incus delete --force "$container"');
        expect(header(byName("tls")).owner).toBe(header(byName("container")).owner);
    });

    test("configFingerprint is keyed: it cannot be recomputed from the config (and a guessed password) alone", async () => {
        const a = await build({ ...labArgs(), statsPassword: "weak-password-1" }, "fp-a");
        const config = await valueOf(a.lb.renderedConfig);
        const fp = await valueOf(a.lb.configFingerprint);
        expect(fp).not.toBe(sha256Hex(config));
        expect(a.byName("fingerprint-key").type).toBe("random:index/randomPassword:RandomPassword");
        expect(fp).toBe(createHmac("sha256", "mockStatsPassword0123456789abcdef").update(config).digest("hex"));
        const b = await build({ ...labArgs(), statsPassword: "weak-password-2" }, "fp-b");
        expect(await valueOf(b.lb.configFingerprint)).not.toBe(fp);
    });

    test("the cookie HMAC key is a secret in state: a RandomPassword, never a RandomId", async () => {
        const { byName, lb } = await build(labArgs(), "cookie-key");
        expect(byName("cookie-secret").type).toBe("random:index/randomPassword:RandomPassword");
        expect(registered.filter((r) => r.type === "random:index/randomId:RandomId")).toEqual([]);
        expect(await (lb.renderedConfig as unknown as { isSecret: Promise<boolean> }).isSecret).toBe(true);
    });

    test("with tls set, plain settings are still checked at construction", () => {
        const cert = "-----BEGIN CERTIFICATE-----\nC\n-----END CERTIFICATE-----\n";
        const key = "-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n";
        expect(
            () =>
                new HaproxyLoadBalancer("tls-plain", {
                    ...labArgs(),
                    statsPort: 80,
                    tls: { certificatePem: pulumi.secret(cert), privateKeyPem: pulumi.secret(key) },
                }),
        ).toThrow("statsPort must differ from listenHttp: both are 80; two listeners cannot share a port");
        expect(
            () =>
                new HaproxyLoadBalancer("tls-plain2", {
                    ...labArgs(),
                    tlsCertPath: "/etc/haproxy/haproxy.cfg",
                    tls: { certificatePem: cert, privateKeyPem: key },
                }),
        ).toThrow(
            'tlsCertPath must be a .pem file directly in /etc/haproxy/certs/ (name of A-Z a-z 0-9 . _ -), e.g. "/etc/haproxy/certs/veza.pem", when the component pushes the certificate (got "/etc/haproxy/haproxy.cfg")',
        );
    });
});

describe("hostile and careless input at the component", () => {
    beforeEach(() => forgetClaims());

    test.each<[string, Record<string, unknown>, string]>([
        ["a misspelt argument", { listenHTTP: 8080 }, "listenHTTP is not a known setting: did you mean listenHttp?"],
        [
            "a misspelt tls field",
            { tls: { certificatePem: "c", privatekeyPem: "k" } },
            "tls.privatekeyPem is not a known setting: did you mean privateKeyPem?",
        ],
        [
            "a loopback member on any port",
            { apiServers: [{ name: "a", address: "127.0.0.53", port: 8080 }] },
            'apiServers[0].address is a loopback address, which inside the container is this load balancer itself: pool members are other machines (got "127.0.0.53")',
        ],
        [
            "the load balancer's own container by name",
            { containerName: "edge", streamServers: [{ name: "s", address: "edge.lxd" }] },
            'streamServers[0].address is this load balancer\'s own container "edge": requests would loop back into it (got "edge.lxd")',
        ],
    ])("%s is refused at construction", (_case, extra, message) => {
        expect(() => new HaproxyLoadBalancer("careless", { ...labArgs(), ...extra } as HaproxyLoadBalancerArgs)).toThrow(message);
    });

    test("a legal but unusual value is said as a warning on the component", async () => {
        const warn = jest.spyOn(pulumi.log, "warn").mockImplementation(() => Promise.resolve());
        try {
            const { lb } = await build({ ...labArgs(), healthCheckIntervalMs: 200 }, "unusual");
            await valueOf(lb.renderedConfig);
            expect(warn).toHaveBeenCalledWith(
                "healthCheckIntervalMs is 200: every server gets a check more than once a second from each pool it is in; 1000-5000 is usual",
                lb,
            );
        } finally {
            warn.mockRestore();
        }
    });
});
