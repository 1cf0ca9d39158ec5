import * as yaml from "js-yaml";
import { execFileSync } from "child_process";
import { mkdtempSync, readFileSync, rmSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import type * as pulumi from "@pulumi/pulumi";

/*
 * The SDK is loaded on first use, not on import: the kit's index re-exports
 * this module, and the behaviour tests and the bench, which never mock
 * Pulumi, should not pay the SDK's load time (about 1.5 s a file).
 */
function sdk(): typeof pulumi {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require("@pulumi/pulumi") as typeof pulumi;
}

/** The SDK marks a secret input to `newResource` with this signature key/value. */
export const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG_VALUE = "1b47061264138c4ac30d75fd1eb44270";

export interface Registered {
    type: string;
    name: string;
    /** Inputs as the engine would receive them: secrets still wrapped. */
    inputs: Record<string, unknown>;
}

export function isSecret(value: unknown): boolean {
    return typeof value === "object" && value !== null && (value as Record<string, unknown>)[SECRET_SIG_KEY] === SECRET_SIG_VALUE;
}

/** Every secret wrapper removed, however deep (a secret inside an object inside a list). */
export function deepUnwrap(value: unknown): unknown {
    if (isSecret(value)) return deepUnwrap((value as { value: unknown }).value);
    if (Array.isArray(value)) return value.map(deepUnwrap);
    if (typeof value === "object" && value !== null) {
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, deepUnwrap(v)]));
    }
    return value;
}

/** The plain value behind a (possibly) secret input. */
export function unwrap<T = unknown>(value: unknown): T {
    return (isSecret(value) ? (value as { value: unknown }).value : value) as T;
}

/**
 * What a container step prints: the address given with setMockAddress for
 * that resource (the e2e suite hands in the real ones), else `address`, and
 * for a pair's node b (`<name>-b-container`) the next address, as DHCP would
 * give it another.
 */
function containerAddress(resource: string, address: string): string {
    const given = mockAddresses.get(resource);
    if (given !== undefined) return given;
    if (!resource.endsWith("-b-container")) return address;
    const octets = address.split(".").map(Number);
    octets[3] += 1;
    return octets.join(".");
}

const mockAddresses = new Map<string, string>();

/** The address the mocked container step `resource` prints from now on (the real one, once the real step ran). */
export function setMockAddress(resource: string, address: string): void {
    mockAddresses.set(resource, address);
}

let keyPair: { keyPem: string; certPem: string } | undefined;

/** One EC key and a self-signed certificate for it (openssl), made on first use: what @pulumi/tls would make. */
function mockKeyPair(): { keyPem: string; certPem: string } {
    if (keyPair) return keyPair;
    const dir = mkdtempSync(path.join(tmpdir(), "veza-mock-tls-"));
    try {
        const [key, cert] = [path.join(dir, "key.pem"), path.join(dir, "cert.pem")];
        execFileSync(
            "openssl",
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"].concat(
                ["-subj", "/CN=veza-haproxy peers", "-days", "3650", "-keyout", key, "-out", cert],
                ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,digitalSignature,keyCertSign"],
                ["-addext", "extendedKeyUsage=serverAuth,clientAuth"],
            ),
            { stdio: "ignore" },
        );
        keyPair = { keyPem: readFileSync(key, "utf8"), certPem: readFileSync(cert, "utf8") };
        return keyPair;
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

/** Mock provider state for the resource types the component creates. */
function mockState(args: pulumi.runtime.MockResourceArgs, address: string): Record<string, unknown> {
    switch (args.type) {
        case "command:local:Command":
        case "command:remote:Command":
            return {
                ...args.inputs,
                stdout: args.name.endsWith("-container") ? `${containerAddress(args.name, address)}\n` : "",
                stderr: "",
            };
        case "random:index/randomPassword:RandomPassword":
            return { ...args.inputs, result: "mockStatsPassword0123456789abcdef" };
        case "random:index/randomId:RandomId":
            return { ...args.inputs, hex: "00112233445566778899aabbccddeeff" };
        // A real key and certificate (the pair's peers certificate goes into real containers, where HAProxy loads it).
        case "tls:index/privateKey:PrivateKey":
            return { ...args.inputs, privateKeyPem: mockKeyPair().keyPem };
        case "tls:index/selfSignedCert:SelfSignedCert":
            return { ...args.inputs, certPem: mockKeyPair().certPem };
        default:
            return args.inputs;
    }
}

/**
 * Runs Pulumi programs under `setMocks` (the engine cannot run here) and
 * records every resource registration. Call before any resource is created.
 */
export function installMocks(options: { address?: string; config?: Record<string, string> } = {}): Registered[] {
    const registered: Registered[] = [];
    const address = options.address ?? "198.18.0.10";
    setStackConfig(options.config ?? {});
    sdk().runtime.setMocks(
        {
            newResource(args) {
                registered.push({ type: args.type, name: args.name, inputs: args.inputs });
                return { id: `${args.name}-id`, state: mockState(args, address) };
            },
            call(args) {
                return args.inputs;
            },
        },
        "veza-haproxy",
        "test",
        false,
    );
    return registered;
}

/** Replaces the stack config the program reads (keys like "haproxy:apiServers", objects as JSON). */
export function setStackConfig(config: Record<string, string>): void {
    const secretKeys = Object.keys(config).filter((k) => /(Pem|Password|PrivateKey)$/.test(k));
    sdk().runtime.setAllConfig(config, secretKeys);
}

/** Resolves an Output under mocks. */
export function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
    return new Promise((resolve, reject) => {
        // Rejections surface through the Output's promise, not the apply callback.
        (output as unknown as { promise(): Promise<T> }).promise().then(resolve, reject);
    });
}

/** Waits until these resources are registered (their URNs resolve after the mock saw them). */
export async function registeredAll(resources: pulumi.Resource[]): Promise<void> {
    await Promise.all(resources.map((r) => valueOf(r.urn)));
}

/** Pulumi.lab.yaml's config plus `extra`, as the CLI hands it to the program (keys "haproxy:...", objects as JSON). */
export function labStackConfig(extra: Record<string, unknown> = {}): Record<string, string> {
    const file = yaml.load(readFileSync(path.join(__dirname, "..", "..", "Pulumi.lab.yaml"), "utf8")) as {
        config: Record<string, unknown>;
    };
    const config: Record<string, string> = {};
    for (const [key, value] of Object.entries({ ...file.config, ...extra })) {
        config[key] = typeof value === "string" ? value : JSON.stringify(value);
    }
    return config;
}
