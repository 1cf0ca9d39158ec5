import { installMocks, isSecret, labStackConfig, Registered, setStackConfig, unwrap, valueOf } from "../support";

// Each run compiles index.ts afresh (jest.isolateModules): slow on a busy machine, not a hang.
jest.setTimeout(30_000);

const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl incus-host";

const SDKS = ["@pulumi/pulumi", "@pulumi/command", "@pulumi/random", "@pulumi/tls"];

// One mock monitor for the whole file: each run only swaps the config and re-runs index.ts.
const allRegistered = installMocks();

/** Runs index.ts afresh with the lab config plus `extra`; returns its exports and the start of its registrations. */
function runStack(extra: Record<string, unknown> = {}): { start: number; stack: Record<string, unknown> } {
    const start = allRegistered.length;
    setStackConfig(labStackConfig(extra));
    let stack: Record<string, unknown> = {};
    // The program and the library load afresh; the Pulumi SDKs are the ones
    // the mocks were installed in (a fresh SDK per run would add its process
    // listeners each time).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const shared = Object.fromEntries(SDKS.map((name) => [name, require(name) as unknown]));
    jest.isolateModules(() => {
        for (const name of SDKS) jest.doMock(name, () => shared[name]);
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        stack = require("../../index");
    });
    return { stack, start };
}

/** What a run registered, once its config step (the last resource) has reached the mock. */
async function registeredBy(run: { start: number }, deadlineMs = 10000): Promise<Registered[]> {
    const deadline = Date.now() + deadlineMs;
    while (!allRegistered.slice(run.start).some((r) => r.name === "haproxy-config")) {
        if (Date.now() > deadline) throw new Error("haproxy-config was never registered");
        await new Promise((resolve) => setImmediate(resolve));
    }
    return allRegistered.slice(run.start);
}

describe("the stack program (index.ts) with the lab stack's config", () => {
    test("exports every output, from the lab config", async () => {
        const run = runStack();
        const { stack } = run;
        const outputs = stack as Record<string, import("@pulumi/pulumi").Output<string>>;
        expect(await valueOf(outputs.containerName)).toBe("haproxy");
        expect(await valueOf(outputs.address)).toBe("198.18.0.10");
        expect(await valueOf(outputs.httpUrl)).toBe("http://198.18.0.10/");
        expect(await valueOf(outputs.httpsUrl)).toBe("");
        expect(await valueOf(outputs.statsUrl)).toBe("http://127.0.0.1:9100/stats");
        expect(await valueOf(outputs.configFingerprint)).toMatch(/^[0-9a-f]{64}$/);
        expect(await valueOf(outputs.statsPassword)).toBe("mockStatsPassword0123456789abcdef");
        const registered = await registeredBy(run);
        const container = registered.find((r) => r.name === "haproxy-container") as Registered;
        expect(unwrap<string>(container.inputs.stdin)).toContain("\nimage=veza-debian13\n");
        const config = registered.find((r) => r.name === "haproxy-config") as Registered;
        expect(unwrap<string>(config.inputs.stdin)).toContain("server backend-api-2 backend-api-2.lxd:8080");
        expect(unwrap<string>(config.inputs.stdin)).toContain("server stream-srv-2 stream-srv-2.lxd:8082");
    });

    test("labTls makes a self-signed certificate with @pulumi/tls and serves HTTPS", async () => {
        const run = runStack({ "haproxy:labTls": true });
        const outputs = run.stack as Record<string, import("@pulumi/pulumi").Output<string>>;
        expect(await valueOf(outputs.httpsUrl)).toBe("https://198.18.0.10/");
        const registered = await registeredBy(run);
        expect(registered.map((r) => r.type)).toEqual(
            expect.arrayContaining(["tls:index/privateKey:PrivateKey", "tls:index/selfSignedCert:SelfSignedCert"]),
        );
        const tlsStep = registered.find((r) => r.name === "haproxy-tls") as Registered;
        expect(isSecret(tlsStep.inputs.stdin)).toBe(true);
    });

    test("haproxy:acme turns on certificates from an ACME CA: the ACME and issue steps, the challenge route, no pushed certificate", async () => {
        const run = runStack({ "haproxy:acme": { domains: ["veza.example.com"], email: "ops@example.com" } });
        const outputs = run.stack as Record<string, import("@pulumi/pulumi").Output<string>>;
        expect(await valueOf(outputs.httpsUrl)).toBe("https://198.18.0.10/");
        const registered = await registeredBy(run);
        const names = registered.map((r) => r.name);
        expect(names).toEqual(expect.arrayContaining(["haproxy-acme", "haproxy-acme-issue"]));
        expect(names).not.toContain("haproxy-tls");
        const config = registered.find((r) => r.name === "haproxy-config") as Registered;
        expect(unwrap<string>(config.inputs.stdin)).toContain("use_backend veza_acme if veza_acme_challenge");
    });

    test("haproxy:acme with haproxy:labTls is refused: one source of certificates", () => {
        expect(() =>
            runStack({ "haproxy:acme": { domains: ["veza.example.com"], email: "ops@example.com" }, "haproxy:labTls": true }),
        ).toThrow("haproxy:acme cannot be set with haproxy:tlsCertificatePem or haproxy:labTls: choose where the certificate comes from");
    });

    test("an SSH connection to the Incus host turns the steps into remote commands with a secret key", async () => {
        const run = runStack({
            "haproxy:incusHost": { host: "incus.example", user: "deploy", hostKey: HOST_KEY },
            "haproxy:incusSshPrivateKey": "PRIVATE-KEY",
        });
        const registered = await registeredBy(run);
        const container = registered.find((r) => r.name === "haproxy-container") as Registered;
        expect(container.type).toBe("command:remote:Command");
        const connection = unwrap<Record<string, unknown>>(container.inputs.connection);
        expect(connection).toMatchObject({ host: "incus.example", user: "deploy", port: 22, hostKey: HOST_KEY });
        // The key's secrecy covers the whole connection object the engine receives.
        expect(isSecret(container.inputs.connection)).toBe(true);
        expect(connection.privateKey).toBe("PRIVATE-KEY");
    });

    test.each<[string, Record<string, unknown>, string]>([
        [
            "a certificate without its key",
            { "haproxy:tlsCertificatePem": "-----BEGIN CERTIFICATE-----" },
            "haproxy:tlsCertificatePem and haproxy:tlsPrivateKeyPem go together: set both (`pulumi config set --secret`) or neither",
        ],
        ["a bad fall count", { "haproxy:healthCheckFall": 0 }, "healthCheckFall must be an integer from 1 to 100 (got 0)"],
        ["a port that is not a number", { "haproxy:listenHttp": "eighty" }, "haproxy:listenHttp"],
        [
            "a server with a bad name",
            { "haproxy:apiServers": [{ name: "bad name", address: "x.lxd" }] },
            'apiServers[0].name must be 1-64 characters of A-Z a-z 0-9 . _ - (got "bad name")',
        ],
        // Typos and lenient numbers.
        ["a misspelt key", { "haproxy:listenHTTP": 8080 }, "haproxy:listenHTTP is not a known setting: did you mean haproxy:listenHttp?"],
        ["a key nothing resembles", { "haproxy:colour": "red" }, "haproxy:colour is not a known setting (known: haproxy:apiServers,"],
        [
            "a number with trailing letters",
            { "haproxy:listenHttp": "80abc" },
            'haproxy:listenHttp must be a whole number written in decimal digits, such as 80 (got "80abc")',
        ],
        [
            "a number in exponent form",
            { "haproxy:statsPort": "8.5e1" },
            'haproxy:statsPort must be a whole number written in decimal digits, such as 80 (got "8.5e1")',
        ],
        [
            "a number with a leading zero",
            { "haproxy:statsPort": "09100" },
            'haproxy:statsPort must be a whole number written in decimal digits, such as 80 (got "09100")',
        ],
        [
            "a misspelt incusHost field",
            { "haproxy:incusHost": { host: "h", hostkey: "x" }, "haproxy:incusSshPrivateKey": "K" },
            "haproxy:incusHost.hostkey is not a known setting: did you mean hostKey?",
        ],
    ])("bad config fails the program before any resource: %s", (_case, extra, message) => {
        const start = allRegistered.length;
        expect(() => runStack(extra)).toThrow(message);
        expect(allRegistered.slice(start).filter((r) => r.type.startsWith("command:"))).toEqual([]);
    });
});
