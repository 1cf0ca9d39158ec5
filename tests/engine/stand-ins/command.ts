/**
 * STAND-IN for the real pulumi-resource-command 1.2.1, for the engine tests
 * only, where the real one cannot be built: its Go module
 * (github.com/pulumi/pulumi-command/provider) is not served by the Go module
 * proxy these machines reach (403 on every version and pseudo-version, and
 * the root module github.com/pulumi/pulumi-command@v1.2.1 carries no
 * provider code). When VEZA_COMMAND_PROVIDER names a real binary, the tests
 * use it instead (tests/engine/engine.ts findToolchain).
 *
 * It follows pulumi/pulumi-command v1.2.1 as read in its source, for the
 * parts the component uses:
 * - Create runs `create` (provider/pkg/provider/local/commandController.go;
 *   remote/commandController.go): not on preview (the Node provider server
 *   declares no preview support, so the engine never calls Create/Update on
 *   preview, as the real provider returns before running anything), `stdin`
 *   on stdin, `interpreter` (default /bin/sh -c), stdout/stderr recorded
 *   without their last newline (local/commandOutputs.go run).
 * - A failed command fails the operation with "<err>: running <cmd>:\n<output>"
 *   and no partial state (a plain error, not infer.ResourceInitFailedError).
 * - Update runs `update`, else `create`, with the new inputs, keeping the
 *   previous stdout/stderr on failure; Delete runs `delete` with the stored inputs.
 * - Diff: the changed input keys (pulumi-go-provider v1.3.0 infer/resource.go
 *   diff); a `triggers` change is a replacement: the schema marks it
 *   replaceOnChanges (cmd/pulumi-resource-command/schema.json), and so does
 *   the SDK ("triggers[*]", @pulumi/command local/command.js, remote/command.js).
 * - stdout and stderr are never secret, whatever the inputs (infer's
 *   default secret flow: input to same-named output only).
 * - remote: SSH as connection.user (root) to host:port (22) with the private
 *   key; the host key checked when `hostKey` is given, any accepted when not
 *   (remote/connection.go). Here through OpenSSH's client.
 * What it does not serve fails loudly (environment, proxy, assets, copy resources).
 */
import * as pulumi from "@pulumi/pulumi";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { deepUnwrap } from "../../support/pulumi-mocks";
import { urnType } from "./wire";

const LOCAL = "command:local:Command";
const REMOTE = "command:remote:Command";
/** CommandInputs of v1.2.1 (local/command.go, remote/command.go): what Diff compares. */
const INPUT_KEYS = [
    "create",
    "update",
    "delete",
    "stdin",
    "triggers",
    "environment",
    "interpreter",
    "dir",
    "addPreviousOutputInEnv",
    "logging",
    "connection",
    "assetPaths",
    "archivePaths",
] as const;
const UNSERVED = ["environment", "assetPaths", "archivePaths", "dir"] as const;

type Props = Record<string, unknown>;

interface Ran {
    stdout: string;
    stderr: string;
}

function typeOf(urn: string): typeof LOCAL | typeof REMOTE {
    const type = urnType(urn);
    if (type === LOCAL || type === REMOTE) return type;
    throw new Error(`command stand-in: unsupported resource ${urn}`);
}

/** The properties with every secret wrapper taken off: what the scripts and the diff see. */
function plain(props: Props): Props {
    return deepUnwrap(props) as Props;
}

function exec(argv: string[], stdin: string | undefined, command: string): Promise<Ran> {
    return new Promise((resolve, reject) => {
        const child = spawn(argv[0], argv.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        let both = "";
        child.stdout.on("data", (d: Buffer) => {
            stdout += d.toString();
            both += d.toString();
        });
        child.stderr.on("data", (d: Buffer) => {
            stderr += d.toString();
            both += d.toString();
        });
        child.on("error", reject);
        child.on("close", (code, signal) => {
            if (code === 0) resolve({ stdout: stdout.replace(/\n$/, ""), stderr: stderr.replace(/\n$/, "") });
            else reject(new Error(`${signal ? `signal: ${signal}` : `exit status ${code}`}: running ${JSON.stringify(command)}:\n${both}`));
        });
        child.stdin.on("error", () => undefined);
        child.stdin.end(stdin && stdin.length > 0 ? stdin : undefined);
    });
}

/** OpenSSH client argv for one command over the connection, and the temp dir holding its key. */
function sshArgv(connection: Props, command: string): { argv: string[]; dir: string } {
    if (connection.proxy !== undefined) throw new Error("command stand-in: connection.proxy is not served by the stand-in");
    const host = String(connection.host);
    const port = Number(connection.port ?? 22);
    const user = String(connection.user ?? "root");
    const dir = mkdtempSync(path.join(tmpdir(), "veza-command-stand-in-"));
    const keyFile = path.join(dir, "key");
    writeFileSync(keyFile, `${String(connection.privateKey ?? "").trim()}\n`, { mode: 0o600 });
    const knownHosts = path.join(dir, "known_hosts");
    const hostKey = typeof connection.hostKey === "string" ? connection.hostKey.trim() : "";
    writeFileSync(knownHosts, hostKey ? `[${host}]:${port} ${hostKey}\n` : "");
    const argv = [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        keyFile,
        "-p",
        String(port),
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        `UserKnownHostsFile=${knownHosts}`,
        "-o",
        `StrictHostKeyChecking=${hostKey ? "yes" : "no"}`,
        "-o",
        "LogLevel=ERROR",
        "-l",
        user,
        host,
        "--",
        command,
    ];
    return { argv, dir };
}

async function runStep(type: string, inputs: Props, command: string | undefined): Promise<Ran | undefined> {
    if (command === undefined) return undefined;
    for (const key of UNSERVED) {
        if (inputs[key] !== undefined) throw new Error(`command stand-in: ${key} is not served by the stand-in`);
    }
    const stdin = typeof inputs.stdin === "string" ? inputs.stdin : undefined;
    if (type === LOCAL) {
        const interpreter =
            Array.isArray(inputs.interpreter) && inputs.interpreter.length > 0 ? inputs.interpreter.map(String) : ["/bin/sh", "-c"];
        return exec([...interpreter, command], stdin, command);
    }
    const { argv, dir } = sshArgv((inputs.connection ?? {}) as Props, command);
    try {
        return await exec(argv, stdin, command);
    } catch (e) {
        // OpenSSH's own failures (refused, host key mismatch) exit 255 before the script runs; the
        // real provider fails the same way at dial time, without "running <script>" (remote/connection.go Dial).
        const message = (e as Error).message;
        if (message.startsWith("exit status 255:"))
            throw new Error(`ssh: dial or handshake failed: ${message.split(":\n").pop()?.trim() ?? ""}`, { cause: e });
        throw e;
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

/**
 * The outputs: every input back as it came (a secret input stays secret),
 * then stdout and stderr, never secret: infer's default secret flow goes
 * only from an input to the output of the same name
 * (pulumi-go-provider v1.3.0 infer/resource.go ensureDefaultSecrets).
 */
function outputs(raw: Props, ran: Ran | undefined, previous?: Props): Props {
    const prev = previous ? plain(previous) : {};
    return { ...raw, stdout: ran ? ran.stdout : (prev.stdout ?? ""), stderr: ran ? ran.stderr : (prev.stderr ?? "") };
}

const provider: pulumi.provider.Provider = {
    version: "1.2.1",
    async check(_urn, _olds, news) {
        return { inputs: news };
    },
    async diff(_id, _urn, olds, news) {
        const o = plain(olds);
        const n = plain(news);
        const changed = INPUT_KEYS.filter((k) => JSON.stringify(o[k] ?? null) !== JSON.stringify(n[k] ?? null));
        // The schema marks triggers replaceOnChanges (v1.2.1 cmd/pulumi-resource-command/schema.json),
        // so infer's diff reports a triggers change as a replacement, whatever the SDK asks.
        return { changes: changed.length > 0, replaces: changed.filter((k) => k === "triggers") };
    },
    async create(urn, inputs) {
        const type = typeOf(urn);
        const values = plain(inputs);
        const ran = await runStep(type, values, values.create as string | undefined);
        return { id: `${urn.split("::").pop()}${randomBytes(4).toString("hex")}`, outs: outputs(inputs, ran) };
    },
    async update(_id, urn, olds, news) {
        const type = typeOf(urn);
        const values = plain(news);
        const command = (values.update ?? values.create) as string | undefined;
        const ran = await runStep(type, values, command);
        return { outs: outputs(news, ran, olds) };
    },
    async delete(_id, urn, props) {
        const type = typeOf(urn);
        const values = plain(props);
        await runStep(type, values, values.delete as string | undefined);
    },
};

pulumi.provider.main(provider, process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
});
