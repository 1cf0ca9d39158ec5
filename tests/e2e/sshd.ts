/**
 * A real OpenSSH server for the SSH-mode tests: Debian's sshd started by the
 * test on 127.0.0.1 with its own host key, a throw-away client key and the
 * stock `AcceptEnv LANG LC_*` (so no VEZA_* variable would pass), and a
 * client that runs a registered remote step the way @pulumi/command's remote
 * provider does: one SSH session, the step's script as the exec request's
 * command string (session.Run(cmd)), its stdin on the session's stdin
 * (pulumi/pulumi-command provider/pkg/provider/remote/commandOutputs.go,
 * run), the host key pinned to the registered `connection.hostKey`
 * (remote/connection.go, SSHConfig: ssh.FixedHostKey). The provider itself
 * is a Go binary that cannot be installed here; OpenSSH's client stands in
 * for its SSH client and nothing else.
 */
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { freePort, sleep } from "../support";
import type { StepCommand, StepOp, StepRun } from "../support/lab";

export interface Sshd {
    port: number;
    /** The server's public host key line, what `connection.hostKey` takes. */
    hostKey: string;
    /** A private key sshd accepts for root. */
    clientPrivateKey: string;
    /** A host key line that is NOT this server's (for the man-in-the-middle case). */
    otherHostKey: string;
    stop(): Promise<void>;
}

function keygen(file: string): void {
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "veza-e2e", "-f", file], { stdio: "ignore" });
}

/** Starts sshd on a free 127.0.0.1 port; `stop()` kills it and removes its directory. */
export async function startSshd(): Promise<Sshd> {
    const dir = mkdtempSync(path.join(tmpdir(), "veza-sshd-"));
    let child: ChildProcess | undefined;
    const stop = async () => {
        if (child && child.exitCode === null) {
            const exited = new Promise((resolve) => child?.once("exit", resolve));
            child.kill("SIGTERM");
            await exited;
        }
        rmSync(dir, { recursive: true, force: true });
    };
    try {
        for (const key of ["host_key", "client_key", "other_host_key"]) keygen(path.join(dir, key));
        writeFileSync(path.join(dir, "authorized_keys"), readFileSync(path.join(dir, "client_key.pub")));
        // sshd's privilege-separation directory (systemd makes it on a normal host).
        mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
        const port = await freePort();
        writeFileSync(
            path.join(dir, "sshd_config"),
            [
                `Port ${port}`,
                "ListenAddress 127.0.0.1",
                `HostKey ${path.join(dir, "host_key")}`,
                `PidFile ${path.join(dir, "sshd.pid")}`,
                `AuthorizedKeysFile ${path.join(dir, "authorized_keys")}`,
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                // Debian's stock sshd_config: only the locale passes, never VEZA_*.
                "AcceptEnv LANG LC_*",
                "",
            ].join("\n"),
        );
        child = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", path.join(dir, "sshd_config")], { stdio: ["ignore", "ignore", "pipe"] });
        let log = "";
        child.stderr?.on("data", (d: Buffer) => (log += d.toString()));
        const deadline = Date.now() + 10_000;
        for (;;) {
            if (child.exitCode !== null) throw new Error(`sshd exited (${child.exitCode}): ${log}`);
            const open = await new Promise<boolean>((resolve) => {
                const socket = connect(port, "127.0.0.1", () => {
                    socket.destroy();
                    resolve(true);
                });
                socket.on("error", () => resolve(false));
            });
            if (open) break;
            if (Date.now() > deadline) throw new Error(`sshd did not listen on 127.0.0.1:${port} within 10 s: ${log}`);
            await sleep(100);
        }
        const pub = (name: string) => readFileSync(path.join(dir, `${name}.pub`), "utf8").trim();
        return {
            port,
            hostKey: pub("host_key"),
            otherHostKey: pub("other_host_key"),
            clientPrivateKey: readFileSync(path.join(dir, "client_key"), "utf8"),
            stop,
        };
    } catch (error) {
        await stop();
        throw error;
    }
}

interface Connection {
    host: string;
    port?: number;
    user?: string;
    privateKey?: string;
    hostKey?: string;
}

/**
 * Runs one operation of a registered remote step over SSH with the
 * registered connection (host, port, user, private key, pinned host key) and
 * the registered stdin; nothing in the environment.
 */
export function runRemoteStep(step: StepCommand, op: StepOp): Promise<StepRun> {
    const script = step[op];
    if (!script) throw new Error(`${step.resource} has no ${op} script`);
    const connection = step.inputs.connection as Connection;
    if (!connection?.hostKey || !connection.privateKey)
        throw new Error(`${step.resource}: the registered connection has no hostKey or privateKey`);
    const dir = mkdtempSync(path.join(tmpdir(), "veza-ssh-client-"));
    const port = connection.port ?? 22;
    writeFileSync(path.join(dir, "id"), connection.privateKey, { mode: 0o600 });
    writeFileSync(path.join(dir, "known_hosts"), `[${connection.host}]:${port} ${connection.hostKey}\n`);
    const args = [
        "-p",
        String(port),
        "-i",
        path.join(dir, "id"),
        "-F",
        "/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        `UserKnownHostsFile=${path.join(dir, "known_hosts")}`,
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        `${connection.user ?? "root"}@${connection.host}`,
        script,
    ];
    const started = Date.now();
    return new Promise((resolve, reject) => {
        // No environment beyond what ssh itself needs: the step must not rely on any.
        const child = spawn("ssh", args, { env: { PATH: "/usr/bin:/bin", HOME: dir }, stdio: ["pipe", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
        child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
        const timer = setTimeout(() => child.kill("SIGKILL"), 180_000);
        child.on("error", (e) => {
            clearTimeout(timer);
            rmSync(dir, { recursive: true, force: true });
            reject(e);
        });
        child.on("close", (code) => {
            clearTimeout(timer);
            rmSync(dir, { recursive: true, force: true });
            resolve({ code: code ?? 128, stdout, stderr, ms: Date.now() - started });
        });
        child.stdin.on("error", () => undefined);
        child.stdin.end(step.stdin);
    });
}

/** Like runRemoteStep but throws with the step's stderr on a non-zero exit. */
export async function runRemoteStepOk(step: StepCommand, op: StepOp): Promise<StepRun> {
    const r = await runRemoteStep(step, op);
    if (r.code !== 0) throw new Error(`${step.resource} ${op} over SSH failed (exit ${r.code}) after ${r.ms} ms:\n${r.stderr.trim()}`);
    return r;
}
