/**
 * Helpers for the e2e suite: drive the Incus lab prepared by
 * lab/setup-incus.sh (images $VEZA_LAB_IMAGE and its -backend, bridge
 * 198.18.0.0/24).
 *
 * Every external command goes through child_process.execFile with an argv
 * array (never a shell with spliced strings). Where a shell runs inside a
 * container, its script is a constant and data travels as positional
 * arguments or on stdin.
 *
 * The fake backend (fixtures/veza-fake-backend.{py,service}) is not baked
 * into the image: installFakeBackend()/launchBackend() push it with
 * `incus file push`, so the fixture can change without rebuilding the image.
 *
 * Traffic rule: the helpers only talk to the local Incus daemon and to the
 * lab containers' 198.18.0.x addresses (HTTP goes through the kit's client,
 * which refuses any other address).
 */
import { execFile, execFileSync } from "node:child_process";
import * as path from "node:path";
import { get, isCI, waitFor } from "../tests/support";

/** The load balancer's image: a minbase plus haproxy, socat and keepalived, nothing more (what the component installs). */
export const LAB_IMAGE: string = process.env.VEZA_LAB_IMAGE || "veza-debian13";
/** The fake backends' image: the same plus python3. */
export const LAB_BACKEND_IMAGE = `${LAB_IMAGE}-backend`;
export const LAB_CONTAINERS = [
    "haproxy",
    "haproxy-b",
    "backend-api-1",
    "backend-api-2",
    "backend-api-3",
    "stream-srv-1",
    "stream-srv-2",
] as const;
export const API_PORT = 8080;
export const STREAM_PORT = 8082;
export const FAKE_BACKEND_UNIT = "veza-fake-backend";
/** Touch this file inside a backend container to make its health checks fail (503). */
export const FAKE_BACKEND_UNHEALTHY_FLAG = "/run/veza-fake-backend/unhealthy";
export const FIXTURES_DIR = path.join(__dirname, "fixtures");
/** The repository's root. */
export const REPO_ROOT = path.resolve(__dirname, "..");

const DEFAULT_CMD_TIMEOUT_MS = 120_000;
const CONTAINER_NAME_RE = /^[a-z][a-z0-9-]{0,62}$/;

export interface ExecResult {
    code: number;
    stdout: string;
    stderr: string;
    /** From start to exit. */
    ms: number;
}

export interface RunOptions {
    stdin?: string | Buffer;
    timeoutMs?: number;
    /** The whole environment (LC_ALL=C is added); default: this process's. */
    env?: Record<string, string>;
    cwd?: string;
}

/** Run a program (argv, no shell). Never rejects on a non-zero exit: look at `code`. */
export function run(file: string, args: string[], opts: RunOptions = {}): Promise<ExecResult> {
    const started = Date.now();
    return new Promise((resolve, reject) => {
        const child = execFile(
            file,
            args,
            {
                encoding: "utf8",
                maxBuffer: 64 * 1024 * 1024,
                timeout: opts.timeoutMs ?? DEFAULT_CMD_TIMEOUT_MS,
                killSignal: "SIGKILL",
                env: { ...(opts.env ?? process.env), LC_ALL: "C" },
                cwd: opts.cwd,
            },
            (err, stdout, stderr) => {
                if (err && typeof (err as NodeJS.ErrnoException).code === "string") {
                    // spawn failure (ENOENT, ...), not an exit status
                    reject(new Error(`${file}: ${err.message}`));
                    return;
                }
                let code = 0;
                if (err) {
                    const e = err as { code?: number | null; killed?: boolean; signal?: string | null };
                    code = typeof e.code === "number" ? e.code : 128;
                    if (e.killed || e.signal) {
                        stderr += `\n[${file} killed by ${e.signal ?? "signal"} after ${opts.timeoutMs ?? DEFAULT_CMD_TIMEOUT_MS} ms]`;
                    }
                }
                resolve({ code, stdout, stderr, ms: Date.now() - started });
            },
        );
        // Always close stdin so `incus exec` never waits for input.
        child.stdin?.on("error", () => undefined);
        child.stdin?.end(opts.stdin ?? "");
    });
}

/** `incus ...args`; resolves with the result whatever the exit status. */
export function incus(args: string[], opts: RunOptions = {}): Promise<ExecResult> {
    return run("incus", args, opts);
}

/** `incus ...args`; rejects with the command and its stderr on a non-zero exit. */
export async function incusOk(args: string[], opts: RunOptions = {}): Promise<string> {
    const r = await incus(args, opts);
    if (r.code !== 0) {
        throw new Error(`incus ${args.join(" ")} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
    }
    return r.stdout;
}

function checkName(name: string): void {
    if (!CONTAINER_NAME_RE.test(name)) throw new Error(`invalid container name: ${JSON.stringify(name)}`);
}

/**
 * Synchronous probe for test files (`(incusAvailable().ok ? describe : describe.skip)`):
 * the incus CLI on PATH, the daemon answering, and the lab image present.
 */
export function incusAvailable(): { ok: boolean; reason: string } {
    const probe = (args: string[]): { ok: boolean; out: string; missing?: boolean } => {
        try {
            const out = execFileSync("incus", args, { encoding: "utf8", timeout: 15_000, stdio: ["ignore", "pipe", "pipe"] });
            return { ok: true, out };
        } catch (e) {
            const err = e as NodeJS.ErrnoException & { stderr?: string };
            if (err.code === "ENOENT") return { ok: false, out: "", missing: true };
            return { ok: false, out: String(err.stderr || err.message).trim() };
        }
    };
    const version = probe(["--version"]);
    if (version.missing) return { ok: false, reason: "incus is not on PATH (run: sudo bash lab/setup-incus.sh)" };
    if (!version.ok) return { ok: false, reason: `incus --version failed: ${version.out}` };
    const info = probe(["info"]);
    if (!info.ok) return { ok: false, reason: `incus daemon not answering (run lab/setup-incus.sh): ${info.out}` };
    for (const alias of [LAB_IMAGE, LAB_BACKEND_IMAGE]) {
        const image = probe(["image", "info", alias]);
        if (!image.ok) return { ok: false, reason: `image alias ${alias} missing (run lab/setup-incus.sh): ${image.out}` };
    }
    return { ok: true, reason: `incus ${version.out.trim()}, images ${LAB_IMAGE} and ${LAB_BACKEND_IMAGE}` };
}

/** Run argv inside a container (`incus exec <c> -- argv...`), optional stdin. Never rejects on exit status. */
export function execIn(container: string, argv: string[], stdin?: string, timeoutMs?: number): Promise<ExecResult> {
    checkName(container);
    if (argv.length === 0) throw new Error("execIn: empty argv");
    return incus(["exec", container, "--", ...argv], { stdin, timeoutMs });
}

/** Like execIn but rejects (with stderr) on a non-zero exit; resolves with stdout. */
export async function execInOk(container: string, argv: string[], stdin?: string, timeoutMs?: number): Promise<string> {
    const r = await execIn(container, argv, stdin, timeoutMs);
    if (r.code !== 0) {
        throw new Error(`[${container}] ${argv.join(" ")} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
    }
    return r.stdout;
}

/** Write `content` to `remotePath` inside the container (via stdin; parent dirs created). */
export async function writeFileIn(container: string, remotePath: string, content: string, mode = "0644"): Promise<void> {
    if (!remotePath.startsWith("/")) throw new Error(`writeFileIn: path must be absolute: ${remotePath}`);
    if (!/^[0-7]{3,4}$/.test(mode)) throw new Error(`writeFileIn: bad mode ${mode}`);
    await execInOk(container, ["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"', "sh", remotePath, mode], content);
}

/** `incus file push` a host file into the container. */
export async function pushFile(container: string, localPath: string, remotePath: string, mode = "0644"): Promise<void> {
    checkName(container);
    await incusOk(["file", "push", "--create-dirs", "--mode", mode, localPath, `${container}${remotePath}`]);
}

/** Current global IPv4 of the container's eth0, or null when it has none (yet). */
export async function containerIPv4(name: string): Promise<string | null> {
    checkName(name);
    const out = await incusOk(["query", `/1.0/instances/${name}/state`]);
    const state = JSON.parse(out) as {
        network?: Record<string, { addresses?: { family: string; address: string; scope: string }[] }>;
    };
    const addr = state.network?.eth0?.addresses?.find((a) => a.family === "inet" && a.scope === "global");
    return addr ? addr.address : null;
}

/** Wait until the container's eth0 has an IPv4 (DHCP from the lab bridge). */
export function waitForIPv4(name: string, timeoutMs = 60_000): Promise<string> {
    return waitFor(() => containerIPv4(name), { what: `an IPv4 on ${name}/eth0`, timeoutMs, intervalMs: 300 });
}

/**
 * `incus launch <LAB_BACKEND_IMAGE> <name>` (a leftover container of the same name is
 * deleted first: lab containers are disposable), wait for systemd and an IPv4.
 * Returns the IPv4.
 */
export async function launchContainer(name: string, timeoutMs = 90_000): Promise<string> {
    checkName(name);
    await deleteContainers([name]);
    await incusOk(["launch", LAB_BACKEND_IMAGE, name], { timeoutMs });
    const ip = await waitForIPv4(name, timeoutMs);
    // Let systemd finish booting so systemctl calls behave (exit code ignored:
    // "degraded" is fine for the lab).
    await execIn(name, ["timeout", "60", "systemctl", "is-system-running", "--wait"], undefined, 70_000);
    return ip;
}

/**
 * Install (or update) the fake backend in a running container and (re)start
 * it: pushes fixtures/veza-fake-backend.py to /usr/local/bin/veza-fake-backend,
 * the unit to /etc/systemd/system/, writes /etc/default/veza-fake-backend
 * (PORT, NAME), then `systemctl daemon-reload` + `enable` + `restart`.
 */
export async function installFakeBackend(container: string, port: number, backendName: string = container): Promise<void> {
    checkName(container);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`bad port ${port}`);
    if (!/^[A-Za-z0-9._-]+$/.test(backendName)) throw new Error(`bad backend name ${JSON.stringify(backendName)}`);
    await pushFile(container, path.join(FIXTURES_DIR, "veza-fake-backend.py"), "/usr/local/bin/veza-fake-backend", "0755");
    await pushFile(
        container,
        path.join(FIXTURES_DIR, "veza-fake-backend.service"),
        `/etc/systemd/system/${FAKE_BACKEND_UNIT}.service`,
        "0644",
    );
    await writeFileIn(container, "/etc/default/veza-fake-backend", `PORT=${port}\nNAME=${backendName}\n`);
    await execInOk(container, ["systemctl", "daemon-reload"]);
    await execInOk(container, ["systemctl", "enable", "--quiet", FAKE_BACKEND_UNIT]);
    await execInOk(container, ["systemctl", "restart", FAKE_BACKEND_UNIT]);
}

/** Wait until GET `path` on `baseUrl` ("http://198.18.0.10") answers 200 from the host. */
export function waitHttpOk(baseUrl: string, path: string, timeoutMs = 30_000): Promise<true> {
    return waitFor(
        async () => {
            const r = await get(baseUrl, path, undefined, { timeoutMs: 2_000 });
            if (r.status !== 200) throw new Error(`status ${r.status}`);
            return true as const;
        },
        { what: `200 from ${baseUrl}${path}`, timeoutMs, intervalMs: 300 },
    );
}

/**
 * Launch a backend container running the fake backend on `port` with
 * NAME=<name>; resolves with its IPv4 once http://<ip>:<port>/health answers 200.
 */
export async function launchBackend(name: string, port: number): Promise<string> {
    const ip = await launchContainer(name);
    await installFakeBackend(name, port, name);
    await waitHttpOk(`http://${ip}:${port}`, "/health");
    return ip;
}

export async function stopService(container: string, unit: string): Promise<void> {
    await execInOk(container, ["systemctl", "stop", unit]);
}

export async function startService(container: string, unit: string): Promise<void> {
    await execInOk(container, ["systemctl", "start", unit]);
}

/** `incus delete --force` each name; missing containers are ignored. */
export async function deleteContainers(names: readonly string[]): Promise<void> {
    const errors: string[] = [];
    await Promise.all(
        names.map(async (name) => {
            checkName(name);
            const r = await incus(["delete", "--force", name]);
            if (r.code !== 0 && !/not found/i.test(r.stderr)) {
                errors.push(`${name}: ${r.stderr.trim()}`);
            }
        }),
    );
    if (errors.length) throw new Error(`incus delete failed: ${errors.join("; ")}`);
}

/**
 * Gate an e2e suite on the Incus lab (incusAvailable()). When it is ready:
 * `describe`. When not: under CI=true this throws with the reason (the suite
 * fails loudly); elsewhere it warns "SKIPPED: <reason>" and returns
 * `describe.skip`, so jest reports the tests as skipped, never as passed.
 */
export function requireIncusLab(): jest.Describe {
    const lab = incusAvailable();
    if (lab.ok) return describe;
    if (isCI()) {
        throw new Error(`CI=true and the Incus lab is not available: ${lab.reason}`);
    }

    console.warn(`SKIPPED: e2e suite needs the Incus lab: ${lab.reason}`);
    return describe.skip;
}

/** Container names that exist right now (`incus list`), whatever their state. */
export async function listContainers(): Promise<string[]> {
    const out = await incusOk(["list", "--format", "json"]);
    return (JSON.parse(out) as { name: string }[]).map((c) => c.name);
}

/** Runs a script of this repository (`file` relative to its root) under /bin/sh with only `env` plus PATH and HOME. */
export function runRepoScript(file: string, args: string[], env: Record<string, string>, timeoutMs = 180_000): Promise<ExecResult> {
    return run("/bin/sh", [path.join(REPO_ROOT, file), ...args], {
        env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", HOME: process.env.HOME ?? "/root", ...env },
        timeoutMs,
    });
}
