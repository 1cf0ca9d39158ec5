import { spawnSync } from "child_process";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { labSettings } from "./lab-settings";
import { installMocks, isSecret, registeredAll, Registered, unwrap, valueOf } from "../support/pulumi-mocks";

const registered: Registered[] = installMocks();
// Imported after the mocks are installed, as the SDK requires.
import { HaproxyLoadBalancer, HaproxyLoadBalancerArgs, HaproxySettings, renderHaproxyConfig, sha256Hex } from "../../components";

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
        transformations: [(t) => {
            if (t.name !== name) children.push({ name: t.name, type: t.type, parent: t.opts.parent });
            return undefined;
        }],
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
        expect(children.map((c) => c.name).sort()).toEqual(
            ["edge-config", "edge-container", "edge-cookie-secret", "edge-stats-password"]);
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
        const { byName } = await build({ ...labArgs(), connection: { host: "incus-host.example", user: "root", privateKey: pulumi.secret("KEY") } });
        expect(byName("container").type).toBe("command:remote:Command");
        expect(byName("config").type).toBe("command:remote:Command");
        const connection = unwrap<Record<string, unknown>>(byName("config").inputs.connection);
        expect(unwrap(connection.host)).toBe("incus-host.example");
    });

    test("the config step carries the rendered config on stdin, as a secret, and its hash in the environment", async () => {
        const { lb, byName } = await build({ ...labArgs(), statsPassword: "lab-password-123", cookieSecret: "k" });
        const config = byName("config");
        expect(isSecret(config.inputs.stdin)).toBe(true);
        const expected = renderHaproxyConfig({ ...(labArgs() as unknown as HaproxySettings), statsPassword: "lab-password-123", cookieSecret: "k" });
        expect(unwrap(config.inputs.stdin)).toBe(expected);
        const env = unwrap<Record<string, string>>(config.inputs.environment);
        expect(env.VEZA_CONFIG_SHA256).toBe(sha256Hex(expected));
        expect(env.VEZA_CONTAINER).toBe("haproxy");
        expect(await valueOf(lb.configSha256)).toBe(sha256Hex(expected));
        // The password never reaches a command line or the environment.
        expect(JSON.stringify(config.inputs.create)).not.toContain("lab-password-123");
        expect(JSON.stringify(config.inputs.environment)).not.toContain("lab-password-123");
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
        expect(unwrap<Record<string, string>>(after.byName("config").inputs.environment).VEZA_CONFIG_SHA256)
            .not.toEqual(unwrap<Record<string, string>>(configBefore.environment).VEZA_CONFIG_SHA256);
    });

    test("the stats password is a secret output, generated when not given", async () => {
        const { lb, byName } = await build(labArgs());
        expect(byName("stats-password").type).toBe("random:index/randomPassword:RandomPassword");
        expect(byName("stats-password").inputs).toMatchObject({ length: 32, special: false });
        expect(await (lb.statsPassword as unknown as { isSecret: Promise<boolean> }).isSecret).toBe(true);
        expect(await valueOf(lb.statsPassword)).toBe("mockStatsPassword0123456789abcdef");
        expect(unwrap(byName("config").inputs.stdin)).toContain("stats auth admin:mockStatsPassword0123456789abcdef");
    });

    test("TLS: the key bundle reaches the container only through the secret stdin of the TLS step", async () => {
        const key = "-----BEGIN PRIVATE KEY-----\nSECRETKEYMATERIAL\n-----END PRIVATE KEY-----\n";
        const cert = "-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----\n";
        const { lb, byName, children } = await build({ ...labArgs(), tls: { certificatePem: cert, privateKeyPem: key } }, "secure");
        expect(children.map((c) => c.name)).toContain("secure-tls");
        const tlsStep = byName("tls");
        expect(isSecret(tlsStep.inputs.stdin)).toBe(true);
        expect(unwrap(tlsStep.inputs.stdin)).toBe(cert + key);
        const everythingElse = JSON.stringify([tlsStep.inputs.create, tlsStep.inputs.environment, byName("config").inputs.environment, byName("container").inputs]);
        expect(everythingElse).not.toContain("SECRETKEYMATERIAL");
        expect(unwrap<Record<string, string>>(tlsStep.inputs.environment).VEZA_CERT_PATH).toBe("/etc/haproxy/certs/veza.pem");
        const config = unwrap<string>(byName("config").inputs.stdin);
        expect(config).toContain("bind *:443 ssl crt /etc/haproxy/certs/veza.pem");
        expect(config).toContain("cookie VEZA_SERVERID insert indirect nocache httponly secure");
        expect(unwrap<Record<string, string>>(byName("config").inputs.environment).VEZA_CERT_SHA256).toBe(sha256Hex(cert));
        expect(await valueOf(lb.httpsUrl)).toBe("https://198.18.0.10/");
    });

    test("every declared output is set", async () => {
        const { lb } = await build({ ...labArgs(), listenHttp: 8081 });
        expect(await valueOf(lb.containerName)).toBe("haproxy");
        expect(await valueOf(lb.address)).toBe("198.18.0.10");
        expect(await valueOf(lb.httpUrl)).toBe("http://198.18.0.10:8081/");
        expect(await valueOf(lb.httpsUrl)).toBe("");
        expect(await valueOf(lb.statsUrl)).toBe("http://127.0.0.1:9100/stats");
        expect(await valueOf(lb.metricsUrl)).toBe("http://127.0.0.1:9100/metrics");
        expect(await valueOf(lb.configSha256)).toMatch(/^[0-9a-f]{64}$/);
        expect(await valueOf(lb.renderedConfig)).toContain("backend api_pool");
        expect(await valueOf(lb.statsPassword)).toBe("mockStatsPassword0123456789abcdef");
    });

    test("only secrets are secret: URLs, scripts and step environments stay readable for preview diffs", async () => {
        const { lb, byName } = await build({ ...labArgs(), tls: { certificatePem: "-----BEGIN CERTIFICATE-----\nC\n-----END CERTIFICATE-----\n", privateKeyPem: "-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n" } });
        const secrecy = (o: pulumi.Output<unknown>) => (o as unknown as { isSecret: Promise<boolean> }).isSecret;
        for (const output of [lb.httpUrl, lb.httpsUrl, lb.statsUrl, lb.metricsUrl, lb.configSha256, lb.address, lb.containerName]) {
            expect(await secrecy(output)).toBe(false);
        }
        for (const step of ["container", "tls", "config"]) {
            expect(isSecret(byName(step).inputs.create)).toBe(false);
            expect(isSecret(byName(step).inputs.environment)).toBe(false);
        }
        expect(isSecret(byName("tls").inputs.stdin)).toBe(true);
        expect(isSecret(byName("config").inputs.stdin)).toBe(true);
    });

    test("a secret stats password does not switch off constructor-time validation of the other fields", () => {
        const before = registered.length;
        expect(() => new HaproxyLoadBalancer("secretpw", { ...labArgs(), healthCheckFall: 0, statsPassword: pulumi.secret("a-real-password-1") }))
            .toThrow("healthCheckFall must be an integer from 1 to 100 (got 0)");
        expect(() => new HaproxyLoadBalancer("latepool", { apiServers: pulumi.output([{ name: "a", address: "a.lxd" }]), streamServers: labArgs().streamServers, statsPort: 80 }))
            .toThrow("statsPort must differ from listenHttp: both are 80; two listeners cannot share a port");
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
        expect(() => new HaproxyLoadBalancer("broken", bad)).toThrow('apiServers[1].name must be 1-64 characters of A-Z a-z 0-9 . _ - (got "bad name")');
        expect(() => new HaproxyLoadBalancer("broken2", { ...labArgs(), containerName: "-x" })).toThrow("containerName must be an Incus instance name");
        expect(registered.length).toBe(before);
    });

    test("an invalid setting that arrives as an Output keeps every command from registering", () => {
        const program = path.join(__dirname, "fixtures", "late-invalid-program.ts");
        // The SDK exits non-zero (the run failed, its promises left pending): the verdict is on stdout.
        const run = spawnSync(process.execPath, [require.resolve("ts-node/dist/bin.js"), "--transpile-only", program], { encoding: "utf8" });
        const result = JSON.parse(run.stdout) as { errors: string[]; types: string[] };
        expect(result.errors.length).toBeGreaterThan(0);
        for (const error of result.errors) expect(error).toMatch(/healthCheckFall must be an integer from 1 to 100 \(got 0\)$/);
        expect(result.types.filter((t) => t.startsWith("command:"))).toEqual([]);
        expect(result.types).toContain("veza:infra:HaproxyLoadBalancer");
    }, 30000);
});
