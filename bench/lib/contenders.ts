import { execFileSync } from "child_process";
import { readFileSync, writeFileSync } from "fs";
import * as path from "path";
import { renderHaproxyConfig } from "../../components/render";
import { HaproxySettings } from "../../components/settings";
import { freePort, HaproxyProcess, onCleanup, startHaproxy } from "../../tests/support";
import { BackendProcess } from "./backends";
import { fillPlaceholders, LiteralHaproxy, readBenchFile } from "./literal";
import { NginxContender } from "./nginx";
import { tempDir } from "./procs";
import { applyVariant } from "./variants";

export interface Named {
    name: string;
    port: number;
}

export function serverEntry(b: Named, weight?: number): { name: string; address: string; port: number; weight?: number } {
    return weight === undefined
        ? { name: b.name, address: "127.0.0.1", port: b.port }
        : { name: b.name, address: "127.0.0.1", port: b.port, weight };
}

/** Product settings for the bench: product defaults except pools and whatever `extra` sets. */
export function productSettings(api: Named[], stream: Named[], extra: Partial<HaproxySettings> = {}): HaproxySettings {
    return { apiServers: api.map((b) => serverEntry(b)), streamServers: stream.map((b) => serverEntry(b)), ...extra };
}

/**
 * The product's config with a bench/lib/variants.ts edit (an experiment),
 * run as a literal config: e.g. "no-l7-retries" for the failover scenario.
 */
export async function startProductVariant(settings: HaproxySettings, variant: string): Promise<LiteralHaproxy> {
    const dir = tempDir(`product-${variant}`);
    const copy = await renderProductCopy(dir, settings);
    const h = await LiteralHaproxy.start(applyVariant(variant, copy.config), {
        httpPort: copy.httpPort,
        dir,
        adminSocket: copy.adminSocket,
    });
    onCleanup(() => h.stop());
    return h;
}

/** Product config through the test kit's haproxy (rendered by the product renderer, run unprivileged; stopped by cleanupAll). */
export function startProduct(settings: HaproxySettings): Promise<HaproxyProcess> {
    return startHaproxy(settings);
}

/**
 * The product's config rendered with bench-chosen process-level settings into
 * `dir` (e.g. bench/tmp/...), for literal edits in tuning experiments.
 */
export async function renderProductCopy(
    dir: string,
    settings: HaproxySettings,
    ports?: { httpPort: number; statsPort: number },
): Promise<{ config: string; httpPort: number; statsPort: number; adminSocket: string }> {
    const httpPort = ports?.httpPort ?? (await freePort());
    const statsPort = ports?.statsPort ?? (await freePort());
    const adminSocket = path.join(dir, "admin.sock");
    const config = renderHaproxyConfig({
        statsPassword: "bench-password-1",
        ...settings,
        bindAddress: "127.0.0.1",
        listenHttp: httpPort,
        statsPort,
        adminSocketPath: adminSocket,
        serverStateFile: path.join(dir, "server-state"),
        chrootDir: "",
        runAsUser: "",
        runAsGroup: "",
        logTarget: "none",
    });
    return { config, httpPort, statsPort, adminSocket };
}

/** The seed's literal haproxy.cfg (bench/seed-literal.cfg) with ports filled in. */
export async function startSeedLiteral(
    api: Named[],
    stream: Named[],
    checkInterMs = 5000,
    opts: { bin?: string } = {},
): Promise<LiteralHaproxy> {
    const dir = tempDir("seed");
    const httpPort = await freePort();
    const httpsPort = await freePort();
    const config = fillPlaceholders(readBenchFile("seed-literal.cfg"), {
        HTTP_PORT: httpPort,
        HTTPS_PORT: httpsPort,
        CERT_PEM: benchCertificate().pemPath,
        STATS_PORT: await freePort(),
        ADMIN_SOCKET: path.join(dir, "admin.sock"),
        API_1_PORT: api[0].port,
        API_2_PORT: api[1].port,
        STREAM_1_PORT: stream[0].port,
        STREAM_2_PORT: stream[1].port,
        CHECK_INTER_MS: checkInterMs,
    });
    const h = await LiteralHaproxy.start(config, { httpPort, httpsPort, dir, bin: opts.bin });
    onCleanup(() => h.stop());
    return h;
}

export async function startNginx(api: Named[], stream: Named[], opts: { bin?: string; workers?: number } = {}): Promise<NginxContender> {
    const cert = benchCertificate();
    const n = await NginxContender.start(
        {
            httpPort: await freePort(),
            api: [api[0].port, api[1].port],
            stream: [stream[0].port, stream[1].port],
            https: { port: await freePort(), cert: cert.certPath, key: cert.keyPath },
        },
        opts,
    );
    onCleanup(() => n.stop());
    return n;
}

let certificate: { certPath: string; keyPath: string; pemPath: string } | undefined;

/**
 * The one certificate both contenders serve in the TLS scenario: ECDSA P-256
 * (what the ACME client orders), self-signed for localhost, made once per run.
 */
export function benchCertificate(): { certPath: string; keyPath: string; pemPath: string } {
    if (certificate) return certificate;
    const dir = tempDir("tls");
    const made = { certPath: path.join(dir, "cert.pem"), keyPath: path.join(dir, "key.pem"), pemPath: path.join(dir, "site.pem") };
    execFileSync(
        "openssl",
        ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"].concat([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            made.keyPath,
            "-out",
            made.certPath,
        ]),
        {
            stdio: ["ignore", "ignore", "pipe"],
        },
    );
    writeFileSync(made.pemPath, Buffer.concat([readFileSync(made.certPath), readFileSync(made.keyPath)]), { mode: 0o600 });
    certificate = made;
    return made;
}

/** The lab's backends plus a third api server that the reload scenarios add and remove. */
export const BACKENDS_WITH_SPARE = ["backend-api-1", "backend-api-2", "backend-api-3", "stream-srv-1", "stream-srv-2"];

/** Backends as separate Node processes (tests/support/backend.ts inside bench/backend-host.ts). */
export async function startBackendProcesses(names: string[]): Promise<BackendProcess[]> {
    const started = await Promise.all(names.map((name) => BackendProcess.start(name)));
    for (const b of started) onCleanup(() => b.stop());
    return started;
}
