/**
 * The real Pulumi CLI and engine, driven as a user drives them: a project
 * directory holding this repository's Pulumi.yaml (its `main` pointed at
 * this checkout's index.ts) and a stack config file, a local file backend
 * (`pulumi login file://…`) and a passphrase, all in a temp dir.
 *
 * - The CLI: the one scripts/pulumi-toolchain.sh built from Go modules.
 * - The program: run by the CLI through tests/engine/inline-host.ts (the
 *   Automation API's in-process language host; pulumi-language-nodejs is not
 *   served by the Go module proxy).
 * - Providers: the real pulumi-resource-command when VEZA_COMMAND_PROVIDER
 *   names one, else the stand-in; random is always the stand-in
 *   (tests/engine/stand-ins/, README there).
 */
import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { findBinary, isCI, makeTempDir, onCleanup } from "../support";
import { REPO_ROOT } from "../support/lab";

const STAND_IN_BIN = path.join(__dirname, "stand-ins", "bin");
const INLINE_HOST = path.join(__dirname, "inline-host.ts");

export interface Toolchain {
    /** Directory holding `pulumi`. */
    cliDir: string;
    /** A real pulumi-resource-command (VEZA_COMMAND_PROVIDER); absent: the stand-in runs. */
    realCommandProvider?: string;
}

/** Which command provider the engine runs, for the test's notes. */
export function commandProviderName(toolchain: Toolchain): string {
    return toolchain.realCommandProvider ? `real ${toolchain.realCommandProvider}` : "stand-in";
}

/** The toolchain if built (scripts/pulumi-toolchain.sh --find), else why not. */
export function findToolchain(): Toolchain | string {
    let cliDir: string;
    try {
        cliDir =
            execFileSync("bash", [path.join(REPO_ROOT, "scripts/pulumi-toolchain.sh"), "--find"], { encoding: "utf8" })
                .trim()
                .split("\n")
                .pop() ?? "";
    } catch (e) {
        return `the Pulumi CLI is not built: run npm run pulumi:toolchain (${(e as { stderr?: string }).stderr?.trim() ?? (e as Error).message})`;
    }
    const real = process.env.VEZA_COMMAND_PROVIDER;
    return { cliDir, ...(real ? { realCommandProvider: real } : {}) };
}

/** `describe` when the toolchain and the binaries are there; under CI=true a missing one fails loudly, else SKIPPED. */
export function requireEngine(...binaries: string[]): { describe: jest.Describe; toolchain?: Toolchain } {
    const toolchain = findToolchain();
    const missing = [
        ...(typeof toolchain === "string" ? [toolchain] : []),
        ...binaries.filter((b) => !findBinary(b)).map((b) => `${b} not found`),
    ];
    if (missing.length === 0) return { describe, toolchain: toolchain as Toolchain };
    if (isCI()) throw new Error(`CI=true and the engine tests cannot run: ${missing.join("; ")}`);
    console.warn(`SKIPPED: engine tests: ${missing.join("; ")}`);
    return { describe: describe.skip };
}

export interface CliResult {
    code: number;
    stdout: string;
    stderr: string;
    /** The command was killed at its time limit (a program that never ended). */
    timedOut: boolean;
}

export class EngineProject {
    readonly dir: string;
    readonly backend: string;
    readonly passphrase = "veza-engine-test-passphrase";
    private readonly env: NodeJS.ProcessEnv;

    /**
     * A project dir in a temp dir with `stackConfig` as Pulumi.<stack>.yaml
     * (the repo's Pulumi.lab.yaml by default: `pulumi stack init` rewrites the
     * file it reads, so the repo's copy is never the one used).
     */
    constructor(
        toolchain: Toolchain,
        readonly stack = "lab",
        stackConfig = path.join(REPO_ROOT, "Pulumi.lab.yaml"),
    ) {
        const root = makeTempDir("veza-engine-");
        this.dir = path.join(root, "project");
        const state = path.join(root, "state");
        const home = path.join(root, "pulumi-home");
        const plugins = path.join(root, "plugins");
        for (const d of [this.dir, state, home, plugins]) mkdirSync(d, { recursive: true });
        const project = readFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), "utf8").replace(
            /^main: index\.ts$/m,
            `main: ${path.join(REPO_ROOT, "index.ts")}`,
        );
        writeFileSync(path.join(this.dir, "Pulumi.yaml"), project);
        copyFileSync(stackConfig, path.join(this.dir, `Pulumi.${stack}.yaml`));
        if (toolchain.realCommandProvider) symlinkSync(toolchain.realCommandProvider, path.join(plugins, "pulumi-resource-command"));
        this.backend = `file://${state}`;
        this.env = {
            ...process.env,
            PATH: [toolchain.cliDir, plugins, STAND_IN_BIN, process.env.PATH].join(path.delimiter),
            PULUMI_HOME: home,
            PULUMI_BACKEND_URL: this.backend,
            PULUMI_CONFIG_PASSPHRASE: this.passphrase,
            PULUMI_SKIP_UPDATE_CHECK: "true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
            PULUMI_SKIP_CONFIRMATIONS: "true",
            TS_NODE_PROJECT: path.join(REPO_ROOT, "tsconfig.json"),
            TS_NODE_TRANSPILE_ONLY: "true",
            NO_COLOR: "1",
        };
        onCleanup(() => rmSync(root, { recursive: true, force: true }));
    }

    /** A CLI command that runs no program (stack init, config, export, output, destroy, refresh). */
    cli(args: string[], timeoutMs = 120_000): Promise<CliResult> {
        return this.spawn("pulumi", [...args, "--non-interactive"], timeoutMs);
    }

    /**
     * A CLI command that runs the stack program (preview, up): through the
     * in-process language host. `programPath`: another program in place of
     * index.ts, as a user would edit it (tests/engine/programs/).
     */
    program(args: string[], programPath = path.join(REPO_ROOT, "index.ts"), timeoutMs = 600_000): Promise<CliResult> {
        return this.spawn(
            process.execPath,
            [
                "-r",
                require.resolve("ts-node/register"),
                INLINE_HOST,
                programPath,
                "--",
                ...args,
                "--stack",
                this.stack,
                "--non-interactive",
            ],
            timeoutMs,
        );
    }

    async ok(result: Promise<CliResult>, what: string): Promise<CliResult> {
        const r = await result;
        if (r.code !== 0) throw new Error(`${what}: exit ${r.code}\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);
        return r;
    }

    private spawn(file: string, args: string[], timeoutMs: number, stdin?: string): Promise<CliResult> {
        return new Promise((resolve, reject) => {
            const child = spawn(file, args, {
                cwd: this.dir,
                env: this.env,
                stdio: ["pipe", "pipe", "pipe"],
            });
            child.stdin.end(stdin ?? "");
            let stdout = "";
            let stderr = "";
            child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
            child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
            let timedOut = false;
            const timer = setTimeout(() => {
                timedOut = true;
                child.kill("SIGTERM");
            }, timeoutMs);
            child.on("error", (e) => {
                clearTimeout(timer);
                reject(e);
            });
            child.on("close", (code) => {
                clearTimeout(timer);
                resolve({ code: code ?? 1, stdout, stderr, timedOut });
            });
        });
    }

    async init(): Promise<void> {
        await this.ok(this.cli(["login", this.backend]), "pulumi login");
        await this.ok(this.cli(["stack", "init", this.stack]), "pulumi stack init");
    }

    /** `pulumi config set --secret`, the value on stdin (never in an argument). */
    async setSecret(key: string, value: string): Promise<void> {
        await this.ok(
            this.spawn("pulumi", ["config", "set", "--secret", "--stack", this.stack, key, "--non-interactive"], 60_000, value),
            `pulumi config set --secret ${key}`,
        );
    }

    async removeConfig(key: string): Promise<void> {
        await this.ok(this.cli(["config", "rm", "--stack", this.stack, key]), `pulumi config rm ${key}`);
    }

    /** `pulumi config set --path`: `key` may reach into a list (`haproxy:apiServers[0].address`). */
    async setConfig(key: string, value: string): Promise<void> {
        await this.ok(this.cli(["config", "set", "--path", "--stack", this.stack, key, value]), `pulumi config set ${key}`);
    }

    /** `pulumi preview --json`: the engine's plan, step by step. */
    async previewJson(extra: string[] = [], programPath?: string): Promise<{ code: number; steps: PreviewStep[]; raw: CliResult }> {
        const r = await this.program(["preview", "--json", ...extra], programPath);
        let parsed: { steps?: PreviewStep[] } = {};
        try {
            parsed = JSON.parse(r.stdout);
        } catch {
            // preview --json prints JSON even on failure; anything else is in raw.
        }
        return { code: r.code, steps: parsed.steps ?? [], raw: r };
    }

    up(extra: string[] = [], programPath?: string, timeoutMs?: number): Promise<CliResult> {
        return this.program(["up", "--yes", "--skip-preview", ...extra], programPath, timeoutMs);
    }

    /** The stack's state as `pulumi stack export` gives it (secrets encrypted), as text. */
    async exportText(showSecrets = false): Promise<string> {
        return (
            await this.ok(
                this.cli(["stack", "export", "--stack", this.stack, ...(showSecrets ? ["--show-secrets"] : [])]),
                "pulumi stack export",
            )
        ).stdout;
    }

    async outputs(showSecrets = false): Promise<Record<string, unknown>> {
        const r = await this.ok(
            this.cli(["stack", "output", "--json", "--stack", this.stack, ...(showSecrets ? ["--show-secrets"] : [])]),
            "pulumi stack output",
        );
        return JSON.parse(r.stdout) as Record<string, unknown>;
    }

    destroy(): Promise<CliResult> {
        return this.cli(["destroy", "--yes", "--skip-preview", "--stack", this.stack], 600_000);
    }
}

export interface PreviewStep {
    op: string;
    urn: string;
}

/** "create haproxy-container" style lines of a preview's steps (the stack resource left out), sorted. */
export function stepSummary(steps: PreviewStep[]): string[] {
    return steps
        .filter((s) => !s.urn.includes("::pulumi:pulumi:Stack::"))
        .map((s) => `${s.op} ${s.urn.split("::").pop()}`)
        .sort();
}

/** The steps that change something ("same" left out), as stepSummary gives them. */
export function changedSteps(steps: PreviewStep[]): string[] {
    return stepSummary(steps).filter((s) => !s.startsWith("same "));
}

/**
 * The warnings of a CLI run, without the engine's notes about plugins found
 * on PATH (the toolchain puts them there on purpose) and the stand-in's version.
 */
export function programWarnings(r: CliResult): string[] {
    const lines = `${r.stdout}\n${r.stderr}`.split("\n").filter((l) => /\bwarning: /.test(l));
    const plugin = /using pulumi-resource-\w+ from \$PATH|resource plugin \w+ is expected to have version/;
    return [...new Set(lines.filter((l) => !plugin.test(l)).map((l) => l.replace(/^.*\bwarning: /, "")))];
}
