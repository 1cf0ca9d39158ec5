import { spawnSync } from "child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { configStep, containerStep, ownerToken, SettingsError, stackIdentity, tlsStep } from "../../components";
import { keepalivedStep, pairConfigStep, stepScripts, stepStdin } from "../../components/scripts";
import { applyDefaults, validateSettings } from "../../components";
import { openFilesNeeded } from "../../components/render";
import {
    ACME_CA_PATH,
    ACME_ENV_PATH,
    CERT_DIR,
    CONFIG_PATH,
    CONFIG_STAMP_PATH,
    CONFIG_RESULT_PATH,
    ACME_RESULT_PATH,
    ACME_STATE_DIR,
    NODE_METRICS_SCRIPT,
    NODE_METRICS_PORT,
    MASTER_SOCKET,
    VRRP_ALIVE_SCRIPT,
    VRRP_NOTIFY_SCRIPT,
} from "../../components/container-paths";
import { HAPROXY_STOPPING_FILE } from "../../components/pair";
import { MAX_CONFIG_BYTES } from "../../components/scripts";
import { DEFAULT_SETTINGS } from "../../components/settings";
import { loadTemplate } from "../../components/templates";
import { findBinary, requireBinary } from "../support";
import { labSettings } from "./lab-settings";

const OWNER = ownerToken("urn:pulumi:test::veza-haproxy::veza:infra:HaproxyLoadBalancer::haproxy", "local");
const STACK = stackIdentity("veza-haproxy", "test");
const CERT = "-----BEGIN CERTIFICATE-----\ncert-marker-7f3a\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nkey-marker-91bc\n-----END PRIVATE KEY-----\n";
const steps = {
    container: containerStep({
        containerName: "haproxy",
        image: "images:debian/12",
        profiles: ["default", "veza"],
        owner: OWNER,
        stack: STACK,
        adminSocketPath: "/run/haproxy/admin.sock",
        serverStateFile: "/var/lib/haproxy/server-state",
    }),
    config: configStep({ containerName: "lb-marker-c0ffee", config: "# config-marker-55e1\n", openFiles: 8256 }),
    tls: tlsStep({
        containerName: "haproxy",
        certPath: "/etc/haproxy/certs/cert-path-marker.pem",
        owner: OWNER,
        certificatePem: CERT,
        privateKeyPem: KEY,
    }),
};
const scripts: [string, string][] = [
    ["container create", steps.container.create],
    ["container delete", steps.container.delete as string],
    ["config apply", steps.config.create],
    ["tls push", steps.tls.create],
    ["tls remove", steps.tls.delete as string],
    ["pair config apply", stepScripts("pairConfig").create],
    ["keepalived setup", stepScripts("keepalived").create],
    ["keepalived stop", stepScripts("keepalived").delete as string],
    ["acme setup", stepScripts("acme").create],
    ["acme remove", stepScripts("acme").delete as string],
    ["acme issue", stepScripts("acmeIssue").create],
];

describe("provisioning scripts", () => {
    test.each(scripts)("%s is POSIX sh that bash -n and dash -n accept", (_name, script) => {
        for (const shell of ["bash", "dash"]) {
            const check = spawnSync(shell, ["-n"], { input: script, encoding: "utf8" });
            expect(check.stderr).toBe("");
            expect(check.status).toBe(0);
        }
    });

    test.each(scripts)("%s holds no data: values only arrive on stdin", (_name, script) => {
        for (const value of [
            "images:debian/12",
            "lb-marker-c0ffee",
            "config-marker-55e1",
            "cert-path-marker",
            "cert-marker-7f3a",
            "key-marker-91bc",
            "veza,",
        ]) {
            expect(script).not.toContain(value);
        }
        expect(script).not.toMatch(/\{\{|\}\}/);
    });

    test("the systemd drop-in asks for the open files the largest accepted maxConnections needs", () => {
        const limit = Number(/^LimitNOFILE=(\d+)$/m.exec(steps.container.create)?.[1]);
        const settings = applyDefaults({ ...labSettings(), maxConnections: 100000 });
        expect(() => validateSettings(settings)).not.toThrow();
        expect(limit).toBeGreaterThanOrEqual(openFilesNeeded(settings));
    });

    test("each step's stdin is the veza-step/1 header, a blank line, then the payload", () => {
        expect(steps.container.stdin).toBe(
            `veza-step/1\ncontainer=haproxy\nimage=images:debian/12\nprofiles=default,veza\nowner=${OWNER}\nstack=veza-haproxy/test\n` +
                "admin_socket=/run/haproxy/admin.sock\nstate_file=/var/lib/haproxy/server-state\nwait_seconds=60\n\n",
        );
        expect(steps.config.stdin.endsWith("\n\n# config-marker-55e1\n")).toBe(true);
        expect(steps.tls.stdin.endsWith(`\n\n${CERT}${KEY}`)).toBe(true);
        // The config step has nothing to undo: no delete script at all (an empty one would still run).
        expect("delete" in steps.config).toBe(false);
    });

    test("a value starting with - is refused by the builder, naming the field (incus would read it as an option)", () => {
        expect(() => stepStdin({ container: "--force" })).toThrow(
            'container must be 1 or more characters of A-Z a-z 0-9 . _ : / , @ + = -, not starting with -, to reach a step script (got "--force")',
        );
    });

    test("a value the header cannot carry is refused by the builder, naming the field", () => {
        expect(() => stepStdin({ container: "a\nimage=evil" })).toThrow(
            'container must be 1 or more characters of A-Z a-z 0-9 . _ : / , @ + = -, not starting with -, to reach a step script (got "a\\nimage=evil")',
        );
        expect(() =>
            containerStep({
                containerName: "haproxy",
                image: "x",
                profiles: ["default"],
                owner: OWNER,
                stack: STACK,
                adminSocketPath: "/run/$(reboot)",
                serverStateFile: "/var/lib/s",
            }),
        ).toThrow('adminSocketPath must be an absolute path of A-Z a-z 0-9 . _ - segments without ".." (got "/run/$(reboot)")');
        expect(() =>
            tlsStep({
                containerName: "haproxy",
                certPath: "/etc/haproxy/haproxy.cfg",
                owner: OWNER,
                certificatePem: CERT,
                privateKeyPem: KEY,
            }),
        ).toThrow(
            'certPath must be a .pem file directly in /etc/haproxy/certs/ (name of A-Z a-z 0-9 . _ -), e.g. "/etc/haproxy/certs/veza.pem", when the component pushes the certificate (got "/etc/haproxy/haproxy.cfg")',
        );
    });

    // The builders are public API: every value is checked before it can reach a shell.
    test.each<[string, () => unknown, string]>([
        [
            "a command substitution in the admin socket",
            () =>
                containerStep({
                    containerName: "haproxy",
                    image: "x",
                    profiles: ["default"],
                    owner: OWNER,
                    stack: STACK,
                    adminSocketPath: "/run/$(id)",
                    serverStateFile: "/var/lib/s",
                }),
            'adminSocketPath must be an absolute path of A-Z a-z 0-9 . _ - segments without ".." (got "/run/$(id)")',
        ],
        [
            "a glob in a profile",
            () =>
                containerStep({
                    containerName: "haproxy",
                    image: "x",
                    profiles: ["*"],
                    owner: OWNER,
                    stack: STACK,
                    adminSocketPath: "/run/a",
                    serverStateFile: "/var/lib/s",
                }),
            'profiles[0] must be an Incus profile name of A-Z a-z 0-9 . _ - (got "*")',
        ],
        [
            "a semicolon in the container name",
            () => configStep({ containerName: "lb;reboot", config: "x", openFiles: 1 }),
            'containerName must be an Incus instance name: 1-63 letters, digits and -, starting with a letter, not ending with - (got "lb;reboot")',
        ],
        [
            "a made-up owner token",
            () =>
                tlsStep({
                    containerName: "haproxy",
                    certPath: "/etc/haproxy/certs/a.pem",
                    owner: "anyone",
                    certificatePem: CERT,
                    privateKeyPem: KEY,
                }),
            'owner must be an owner token from ownerToken() (got "anyone")',
        ],
        [
            "a certificate path climbing out",
            () =>
                tlsStep({
                    containerName: "haproxy",
                    certPath: "/etc/haproxy/certs/../haproxy.cfg",
                    owner: OWNER,
                    certificatePem: CERT,
                    privateKeyPem: KEY,
                }),
            'certPath must be a .pem file directly in /etc/haproxy/certs/ (name of A-Z a-z 0-9 . _ -), e.g. "/etc/haproxy/certs/veza.pem", when the component pushes the certificate (got "/etc/haproxy/certs/../haproxy.cfg")',
        ],
        [
            "a config over 4 MiB",
            () => configStep({ containerName: "haproxy", config: "#".repeat(4 * 1024 * 1024 + 1), openFiles: 1 }),
            "config must be at most 4194304 bytes (got 4194305)",
        ],
        [
            "a fractional open-files count",
            () => configStep({ containerName: "haproxy", config: "x", openFiles: 1.5 }),
            "openFiles must be an integer from 1 to 100000000 (got 1.5)",
        ],
    ])("a step builder refuses %s", (_case, build, message) => {
        expect(build).toThrow(new SettingsError([message]));
    });

    describe.each([
        ["sh (dash)", "/bin/sh"],
        ["bash", "/bin/bash"],
    ])("the header reader under %s", (_shell, shell) => {
        /** Runs a step script with a fake incus that records its arguments and says every container is absent. */
        function runWithFakeIncus(script: string, stdin: string): { status: number | null; stderr: string; calls: string } {
            return runStepWithFakeIncus({ create: script, stdin }, ["info*) exit 1 ;;"], {}, shell);
        }

        test.each<[string, string, string]>([
            ["no stdin at all", "", "nothing on stdin: the step's inputs arrive there (veza-step/1 header)"],
            ["another format", "VEZA_CONTAINER=haproxy\n\n", "stdin does not start with the veza-step/1 header"],
            [
                "a header cut short",
                "veza-step/1\ncontainer=haproxy\n",
                "the veza-step/1 header ends without its blank line: input cut short",
            ],
            ["an unknown field", "veza-step/1\ncontainer=haproxy\nevil=1\n\n", "unexpected header field evil"],
            ["a shell metacharacter", "veza-step/1\ncontainer=$(touch /tmp/x)\n\n", "header field container holds a character outside"],
            ["a missing field", "veza-step/1\ncontainer=haproxy\n\n", "header field cert_path is missing or empty"],
            [
                "a value starting with -",
                "veza-step/1\ncontainer=--force\n\n",
                "header field container starts with -: incus would read it as an option",
            ],
        ])("refuses %s before calling incus", (_case, stdin, message) => {
            const run = runWithFakeIncus(steps.tls.delete as string, stdin);
            expect(run.status).toBe(1);
            expect(run.stderr).toContain(message);
            expect(run.calls).toBe("");
        });

        test.each([
            "/etc/haproxy/haproxy.cfg",
            "/etc/haproxy/certs/../haproxy.pem",
            "/etc/haproxy/certs/sub/x.pem",
            "/etc/haproxy/certs/.pem",
        ])("the TLS step refuses to write %s, outside its directory or not a .pem in it, before calling incus", (certPath) => {
            const run = runWithFakeIncus(steps.tls.create, steps.tls.stdin.replace(/^cert_path=.*$/m, `cert_path=${certPath}`));
            expect(run.status).toBe(1);
            expect(run.stderr).toContain(`cert_path must be a .pem file directly in /etc/haproxy/certs/ (got ${certPath})`);
            expect(run.calls).toBe("");
        });

        test("an optional field (target?) may be absent, and is read when present; any other field is still refused", () => {
            const create = steps.container.create;
            // The fake gives the container no address: a 1 s wait, then the step fails after the calls that matter here.
            const stdin = (extra: string) => steps.container.stdin.replace("wait_seconds=60\n", `wait_seconds=1\n${extra}`);
            const absent = runWithFakeIncus(create, stdin(""));
            // The fake says the container is absent: it is launched, with no --target.
            expect(absent.calls).toMatch(
                /^launch images:debian\/12 haproxy --profile default --profile veza --config user\.veza\.owner=veza1-[0-9a-f]+ --config user\.veza\.stack=veza-haproxy\/test$/m,
            );
            const placed = runWithFakeIncus(create, stdin("target=member-2\n"));
            expect(placed.calls).toMatch(/^launch images:debian\/12 haproxy --profile default --profile veza --target member-2 --config /m);
            const unknown = runWithFakeIncus(create, stdin("targets=m\n"));
            expect(unknown.stderr).toContain("unexpected header field targets");
            expect(unknown.calls).toBe("");
        });

        test("reads the header and leaves the payload on stdin for the step", () => {
            // The fake says the container is absent: the delete reads its header and stops there.
            const run = runWithFakeIncus(steps.tls.delete as string, steps.tls.stdin);
            expect(run.stderr).toContain("veza-haproxy[tls-delete]: haproxy is gone: nothing to remove");
            expect(run.status).toBe(0);
            expect(run.calls).toBe("info haproxy\n");
        });
    });
});

/**
 * Runs a step's create script with a fake `incus` on PATH that records its
 * arguments and answers through `cases` (lines of a shell `case "$*" in`;
 * `$DIR` is the fake's directory, where `files` are written). Returns exit,
 * stderr and the calls.
 */
function runStepWithFakeIncus(
    step: { create: string; stdin: string },
    cases: string[],
    files: Record<string, string> = {},
    shell = "/bin/sh",
): { status: number | null; stdout: string; stderr: string; calls: string } {
    const dir = mkdtempSync(path.join(tmpdir(), "veza-fake-incus-"));
    try {
        for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
        writeFileSync(
            path.join(dir, "incus"),
            [
                "#!/bin/sh",
                `DIR="${dir}"`,
                'printf \'%s\\n\' "$*" >> "$DIR/calls"',
                'case "$*" in',
                ...cases.map((c) => `    ${c}`),
                "esac",
                "",
            ].join("\n"),
            { mode: 0o755 },
        );
        const run = spawnSync(shell, ["-c", step.create], {
            encoding: "utf8",
            env: { PATH: `${dir}:/usr/bin:/bin` },
            input: step.stdin,
        });
        let calls = "";
        try {
            calls = readFileSync(path.join(dir, "calls"), "utf8");
        } catch {
            /* none */
        }
        return { status: run.status, stdout: run.stdout, stderr: run.stderr, calls };
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

describe("the container step and a container that already exists", () => {
    const OTHER_OWNER = ownerToken("urn:pulumi:other::veza-haproxy::veza:infra:HaproxyLoadBalancer::haproxy", "local");
    const THIRD_OWNER = ownerToken("urn:pulumi:other::veza-haproxy::veza:infra:HaproxyLoadBalancer::edge", "local");
    /** Runs the container step with a fake incus: the container exists, with `owner` and `stack` recorded (empty: none). */
    function runOver(
        recorded: { owner: string; stack: string; adoptedFrom?: string },
        adopt = false,
        op: "create" | "delete" = "create",
    ): { status: number | null; stderr: string; calls: string } {
        const step = containerStep({
            containerName: "haproxy",
            image: "images:debian/12",
            profiles: ["default"],
            owner: OWNER,
            stack: STACK,
            adopt,
            adminSocketPath: "/run/haproxy/admin.sock",
            serverStateFile: "/var/lib/haproxy/server-state",
            waitSeconds: 1,
        });
        return runStepWithFakeIncus({ create: op === "create" ? step.create : (step.delete as string), stdin: step.stdin }, [
            "info*) exit 0 ;;",
            `"config get haproxy user.veza.owner") echo "${recorded.owner}" ;;`,
            `"config get haproxy user.veza.stack") echo "${recorded.stack}" ;;`,
            `"config get haproxy user.veza.adopted-from") echo "${recorded.adoptedFrom ?? ""}" ;;`,
            '"config set "*) exit 0 ;;',
            '"delete --force haproxy") exit 0 ;;',
            // Nothing else answers: the step stops at its next check, after the calls that matter here.
            "*) exit 1 ;;",
        ]);
    }
    const setOwner = `config set haproxy user.veza.owner=${OWNER} user.veza.stack=veza-haproxy/test`;

    test("another stack's container is refused, naming both stacks, and nothing is changed", () => {
        const run = runOver({ owner: OTHER_OWNER, stack: "veza-haproxy/other" });
        expect(run.status).toBe(1);
        expect(run.stderr).toContain(
            "veza-haproxy[container]: ERROR: haproxy belongs to stack veza-haproxy/other, not to this stack (veza-haproxy/test): not taking it over, nothing changed",
        );
        expect(run.stderr).toContain("set adoptContainer (haproxy:adoptContainer) to take it over on purpose");
        expect(run.calls).not.toContain("config set");
    });

    test("with adoptContainer another stack's container is taken over, with a warning", () => {
        const run = runOver({ owner: OTHER_OWNER, stack: "veza-haproxy/other" }, true);
        expect(run.stderr).toContain("warning: taking over haproxy from stack veza-haproxy/other (adoptContainer)");
        expect(run.calls).toContain(setOwner);
    });

    test.each<[string, { owner: string; stack: string }]>([
        ["a step of this stack under another name (a rename, a local/SSH switch)", { owner: OTHER_OWNER, stack: "veza-haproxy/test" }],
        ["a container recorded before stacks were (no stack key)", { owner: OTHER_OWNER, stack: "" }],
        ["a container with no owner at all", { owner: "", stack: "" }],
    ])("%s is adopted, and the stack recorded", (_case, recorded) => {
        const run = runOver(recorded);
        expect(run.stderr).not.toContain("ERROR: haproxy belongs to stack");
        expect(run.calls).toContain(setOwner);
    });

    test.each<[string, { owner: string; stack: string; adoptedFrom?: string }, boolean, string]>([
        [
            "from a step of this stack: pending until that step's delete confirms it",
            { owner: OTHER_OWNER, stack: STACK },
            false,
            OTHER_OWNER,
        ],
        [
            "while an earlier takeover is pending: the first owner stays the one to hand back to",
            { owner: OTHER_OWNER, stack: STACK, adoptedFrom: THIRD_OWNER },
            false,
            THIRD_OWNER,
        ],
        ["back by the step it was taken from: nothing pending", { owner: OTHER_OWNER, stack: STACK, adoptedFrom: OWNER }, false, ""],
        ["of a container with no owner: nothing to hand back", { owner: "", stack: "" }, false, ""],
        ["from another stack (adoptContainer): final at once", { owner: OTHER_OWNER, stack: "veza-haproxy/other" }, true, ""],
    ])("a takeover %s", (_case, recorded, adopt, pending) => {
        const run = runOver(recorded, adopt);
        expect(run.calls).toContain(`${setOwner} user.veza.adopted-from=${pending}\n`);
    });

    test.each<[string, { owner: string; stack: string; adoptedFrom?: string }, string, string]>([
        [
            "the new owner's delete, its takeover pending (a failed run, reverted), hands the container back and leaves it",
            { owner: OWNER, stack: STACK, adoptedFrom: OTHER_OWNER },
            `config set haproxy user.veza.owner=${OTHER_OWNER} user.veza.adopted-from=\n`,
            "handing it back, leaving it running",
        ],
        [
            "the old owner's delete confirms the takeover and leaves the container",
            { owner: OTHER_OWNER, stack: STACK, adoptedFrom: OWNER },
            "config set haproxy user.veza.adopted-from=\n",
            "leaving it running",
        ],
        ["the owner's delete, nothing pending, deletes it", { owner: OWNER, stack: STACK }, "delete --force haproxy\n", "deleting haproxy"],
    ])("%s", (_case, recorded, call, message) => {
        const run = runOver(recorded, false, "delete");
        expect(run.status).toBe(0);
        expect(run.stderr).toContain(message);
        expect(run.calls).toContain(call);
        if (!call.startsWith("delete")) expect(run.calls).not.toContain("delete --force");
    });

    test("its own container is left as it is", () => {
        const run = runOver({ owner: OWNER, stack: "veza-haproxy/test" });
        expect(run.calls).not.toContain("config set");
    });
});

describe("the prelude's owner and running checks, as each step uses them", () => {
    const OTHER = ownerToken("urn:pulumi:test::veza-haproxy::veza:infra:HaproxyLoadBalancer::renamed", "local");
    const acmeStdin = stepStdin({
        container: "haproxy",
        owner: OWNER,
        cert_path: "/etc/haproxy/certs/veza.pem",
        domain: "veza.example.com",
        env_bytes: "0",
        env_sha256: "0".repeat(64),
        ca_sha256: "none",
    });
    const acmeIssueStdin = stepStdin({
        container: "haproxy",
        owner: OWNER,
        cert_path: "/etc/haproxy/certs/veza.pem",
        env_sha256: "0".repeat(64),
    });
    const keepalived = keepalivedStep({
        containerName: "haproxy",
        containerStep: "haproxy-container-1234",
        owner: OWNER,
        vip: "198.18.0.250/24",
        keepalivedConf: "# keepalived.conf\n",
    });
    /** The container exists with `status`, and records `owner` and `adoptedFrom`; any other call fails. */
    const world = (status: string, owner: string, adoptedFrom = "") => [
        "info*) exit 0 ;;",
        `"list ^haproxy\\$ --format csv --columns s") echo ${status} ;;`,
        `"config get haproxy user.veza.owner") echo "${owner}" ;;`,
        `"config get haproxy user.veza.adopted-from") echo "${adoptedFrom}" ;;`,
        "*) cat >/dev/null 2>&1; exit 1 ;;",
    ];
    const creates: [string, { create: string; stdin: string }, boolean, string][] = [
        ["acme setup", { create: stepScripts("acme").create, stdin: acmeStdin }, true, "not touching it"],
        ["acme issue", { create: stepScripts("acmeIssue").create, stdin: acmeIssueStdin }, false, "not touching it"],
        ["keepalived setup", keepalived, true, "not touching its keepalived"],
        [
            "certificate install",
            tlsStep({
                containerName: "haproxy",
                certPath: "/etc/haproxy/certs/veza.pem",
                owner: OWNER,
                certificatePem: CERT,
                privateKeyPem: KEY,
            }),
            false,
            "not touching its certificate",
        ],
    ];

    test.each(creates)("%s fails on another step's container, touching nothing", (_name, step, _checksRunning, what) => {
        const run = runStepWithFakeIncus(step, world("RUNNING", OTHER));
        expect(run.status).toBe(1);
        expect(run.stderr).toContain(`ERROR: haproxy is owned by another step (owner ${OTHER}, this step ${OWNER}): ${what}`);
        expect(run.calls).not.toContain("exec");
    });

    test.each(creates.filter(([, , checksRunning]) => checksRunning))(
        "%s fails on a container that is not running, touching nothing",
        (_name, step) => {
            const run = runStepWithFakeIncus(step, world("STOPPED", OWNER));
            expect(run.status).toBe(1);
            expect(run.stderr).toContain("ERROR: haproxy does not exist or is not running");
            expect(run.calls).not.toContain("exec");
        },
    );

    test("the config step exits 10 on a container that is not running, before anything reaches it", () => {
        const run = runStepWithFakeIncus(steps.config, [
            '"list ^lb-marker-c0ffee\\$ --format csv --columns s") echo STOPPED ;;',
            "*) cat >/dev/null 2>&1; exit 1 ;;",
        ]);
        expect(run.status).toBe(10);
        expect(run.stderr).toContain("container lb-marker-c0ffee does not exist or is not running: nothing applied");
        expect(run.calls).not.toContain("exec");
    });

    const deletes: [string, { create: string; stdin: string }, string][] = [
        ["acme remove", { create: stepScripts("acme").delete as string, stdin: acmeStdin }, "its ACME setup in place"],
        ["keepalived stop", { create: keepalived.delete as string, stdin: keepalived.stdin }, "its keepalived running"],
        ["tls remove", { create: steps.tls.delete as string, stdin: steps.tls.stdin }, "/etc/haproxy/certs/cert-path-marker.pem in place"],
    ];

    test.each(deletes)("%s leaves another step's container alone, and succeeds", (_name, step, leaving) => {
        const run = runStepWithFakeIncus(step, world("RUNNING", OTHER));
        expect(run.status).toBe(0);
        expect(run.stderr).toContain(`haproxy is owned by another step now (owner ${OTHER}): leaving ${leaving}`);
        expect(run.calls).not.toContain("exec");
    });

    test.each(deletes)("%s leaves a container it took over in a run that did not finish alone, and succeeds", (_name, step, leaving) => {
        const run = runStepWithFakeIncus(step, world("RUNNING", OWNER, OTHER));
        expect(run.status).toBe(0);
        expect(run.stderr).toContain(`this step took haproxy over in a run that did not finish: leaving ${leaving}`);
        expect(run.calls).not.toContain("exec");
    });
});

/** The scripts that name exit codes: every step script, the config step's in-container part, the ACME renew script. */
const TEMPLATE_DIR = path.join(__dirname, "..", "..", "templates");
const CODED_SCRIPTS = readdirSync(TEMPLATE_DIR)
    .filter((f) => f.endsWith(".sh.mustache") || f === "_config-in-container.sh" || f === "_acme-renew.sh")
    .sort();
const templateText = (file: string) => readFileSync(path.join(TEMPLATE_DIR, file), "utf8");
const PRELUDE = templateText("_prelude.sh");
/** `NAME=value` pairs a script defines (`EXIT_A=0 EXIT_B=1` lines), and its table rows (`#   <code> <NAME>  meaning`). */
function exitCodes(text: string): { defined: [string, number][]; documented: [string, number][] } {
    const defined = [...text.matchAll(/^(?:EXIT_\w+=\d+ ?)+$/gm)].flatMap((line) =>
        [...line[0].matchAll(/(EXIT_\w+)=(\d+)/g)].map((m): [string, number] => [m[1], Number(m[2])]),
    );
    const documented = [...text.matchAll(/^#\s+(\d+)\s+(EXIT_[A-Z_]+)\s/gm)].map((m): [string, number] => [m[2], Number(m[1])]);
    return { defined, documented };
}

describe("exit codes", () => {
    test("are named by every step script, the config step's in-container part and the ACME renew script", () => {
        expect(CODED_SCRIPTS).toEqual([
            "_acme-renew.sh",
            "_config-in-container.sh",
            "acme-create.sh.mustache",
            "acme-delete.sh.mustache",
            "acme-issue-create.sh.mustache",
            "config-create.sh.mustache",
            "container-create.sh.mustache",
            "container-delete.sh.mustache",
            "keepalived-create.sh.mustache",
            "keepalived-delete.sh.mustache",
            "pair-config-create.sh.mustache",
            "tls-create.sh.mustache",
            "tls-delete.sh.mustache",
        ]);
    });

    test.each(CODED_SCRIPTS)(
        "%s defines each code once, lists them in one table in numeric order, uses each by name, never exits with a bare number",
        (file) => {
            const text = templateText(file);
            const { defined, documented } = exitCodes(text);
            const names = defined.map(([name]) => name);
            expect(new Set(names).size).toBe(names.length);
            // The table: rows in numeric order, each a constant defined with that value; every defined value has a row.
            expect(documented.length).toBeGreaterThan(0);
            expect(documented.map(([, code]) => code)).toEqual([...new Set(documented.map(([, code]) => code))].sort((a, b) => a - b));
            expect(defined).toEqual(expect.arrayContaining(documented));
            for (const [, code] of defined) expect(documented.map(([, c]) => c)).toContain(code);
            // Used by name: in the script, or by the prelude it includes (fail exits with EXIT_FAILED).
            const includesPrelude = text.includes("{{> prelude}}");
            const used = (name: string) => text.includes(`"$${name}"`) || (includesPrelude && PRELUDE.includes(`"$${name}"`));
            expect(names.filter((name) => !used(name))).toEqual([]);
            const code = text
                .split("\n")
                .filter((line) => !/^\s*#/.test(line))
                .join("\n");
            expect(code).not.toMatch(/\b(exit|die) \d/);
        },
    );

    test("every step script defines the prelude's codes before including it", () => {
        const preludeUses = [...new Set([...PRELUDE.matchAll(/"\$(EXIT_\w+)"/g)].map((m) => m[1]))];
        expect(preludeUses).toEqual(["EXIT_FAILED"]);
        for (const file of CODED_SCRIPTS.filter((f) => f.endsWith(".sh.mustache"))) {
            const text = templateText(file);
            const head = text.slice(0, text.indexOf("{{> prelude}}"));
            expect({ file, defined: exitCodes(head).defined }).toEqual({
                file,
                defined: expect.arrayContaining([
                    ["EXIT_OK", 0],
                    ["EXIT_FAILED", 1],
                ]),
            });
        }
        expect(PRELUDE).not.toMatch(/^EXIT_/m);
    });

    test("the config step defines exactly the codes docs/lifecycle.md's table lists (0-9 in the container, 10 and 11 on the host)", () => {
        const lifecycle = readFileSync(path.join(__dirname, "..", "..", "docs", "lifecycle.md"), "utf8");
        const table = lifecycle.slice(lifecycle.indexOf("| code | meaning |"));
        const rows = table.slice(0, table.search(/\n\s*\n/));
        const documented = [...rows.matchAll(/^\s*\| (\d+) \|/gm)].map((m) => Number(m[1]));
        expect(documented).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        const codes = (file: string) => exitCodes(templateText(file)).defined.map(([, code]) => code);
        const defined = new Set([
            ...codes("_config-in-container.sh"),
            ...codes("config-create.sh.mustache"),
            ...codes("pair-config-create.sh.mustache"),
        ]);
        expect([...defined].sort((a, b) => a - b)).toEqual(documented);
        expect(codes("_config-in-container.sh")).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        expect(codes("config-create.sh.mustache")).toContain(10);
        expect(codes("pair-config-create.sh.mustache")).toEqual(expect.arrayContaining([10, 11]));
    });

    test("the ACME renew script defines exactly the codes docs/certificates.md lists", () => {
        const certificates = readFileSync(path.join(__dirname, "..", "..", "docs", "certificates.md"), "utf8");
        const sentence = certificates.slice(certificates.indexOf("The renew script exits"));
        const documented = [...sentence.slice(0, sentence.indexOf(".\n")).matchAll(/\b(\d+) \(/g)].map((m) => Number(m[1]));
        expect(documented).toEqual([20, 21, 22, 23, 24, 25]);
        const defined = exitCodes(templateText("_acme-renew.sh")).defined.map(([, code]) => code);
        expect(defined.filter((code) => code !== 0)).toEqual(documented);
    });
});

const describeWithShellcheck = requireBinary("shellcheck");
describe("the keepalived step checks the VIP against the node's own eth0 before keepalived gets it", () => {
    const stepFor = (vip: string) =>
        keepalivedStep({
            containerName: "edge-b",
            containerStep: "edge-b-container-1234",
            owner: OWNER,
            vip,
            keepalivedConf: "# keepalived.conf\n",
        });

    /**
     * Runs the step for `vip` with a fake incus: the node runs, is ours, its
     * eth0 holds `eth0` (lines of `ip -4 -o addr`) and its default route is `route`.
     */
    function runWith(eth0: string, vip = "198.18.0.250/24", route = "default via 198.18.0.1 dev eth0 proto dhcp src 198.18.0.17\n") {
        return runStepWithFakeIncus(
            stepFor(vip),
            [
                '"list "*) echo RUNNING ;;',
                `"config get "*) echo ${OWNER} ;;`,
                '*"ip -4 -o addr show dev eth0 scope global") cat "$DIR/eth0" ;;',
                '*"ip -4 route show default dev eth0") cat "$DIR/route" ;;',
                "*) cat >/dev/null 2>&1; exit 1 ;;",
            ],
            { eth0, route },
        );
    }
    const onBridge = "2: eth0    inet 198.18.0.17/24 brd 198.18.0.255 scope global dynamic eth0\n";

    test.each<[string, string, string | undefined, string | undefined, string]>([
        [
            "a VIP on another subnet",
            "2: eth0    inet 10.1.2.3/24 brd 10.1.2.255 scope global dynamic eth0\n",
            undefined,
            undefined,
            "pair.vip 198.18.0.250/24 is not on edge-b's subnet (eth0: 10.1.2.3/24): the VIP must be on the nodes' bridge subnet",
        ],
        [
            "the node's own address",
            "2: eth0    inet 198.18.0.250/24 brd 198.18.0.255 scope global dynamic eth0\n",
            undefined,
            undefined,
            "pair.vip 198.18.0.250/24 is edge-b's own address: choose a free address on the bridge, outside its DHCP range",
        ],
        ["no address at all", "", undefined, undefined, "edge-b has no IPv4 address on eth0: cannot check pair.vip"],
        [
            "a VIP with a wider prefix than the bridge's (/16 on a /24)",
            onBridge,
            "198.18.0.250/16",
            undefined,
            "pair.vip 198.18.0.250/16 has another prefix than edge-b's subnet (eth0: 198.18.0.17/24): write it with the bridge's, /24",
        ],
        [
            "the bridge's broadcast address, written with another prefix so that it looks like a host",
            onBridge,
            "198.18.0.255/23",
            undefined,
            "pair.vip 198.18.0.255/23 has another prefix than edge-b's subnet (eth0: 198.18.0.17/24): write it with the bridge's, /24",
        ],
        [
            "the bridge's gateway",
            onBridge,
            "198.18.0.1/24",
            undefined,
            "pair.vip 198.18.0.1/24 is the gateway of edge-b's subnet: choose a free address on the bridge, outside its DHCP range",
        ],
    ])("%s is refused before keepalived is installed or configured", (_case, eth0, vip, route, message) => {
        const run = runWith(eth0, vip, route);
        expect({ status: run.status, said: run.stderr }).toEqual({ status: 1, said: expect.stringContaining(message) });
        expect(run.calls).not.toContain("keepalived");
    });

    test("a VIP on the node's subnet passes, also while the node holds it (a secondary address)", () => {
        const run = runWith(
            "2: eth0    inet 198.18.0.17/24 brd 198.18.0.255 scope global dynamic eth0\n" +
                "2: eth0    inet 198.18.0.250/24 scope global secondary eth0\n",
        );
        expect(run.stderr).not.toContain("pair.vip");
        // Past the check: the next thing it does is look for keepalived in the node.
        expect(run.calls).toContain("command -v keepalived");
    });
});

describeWithShellcheck("shellcheck", () => {
    test.each(scripts)("%s passes shellcheck -s sh", (_name, script) => {
        const check = spawnSync(findBinary("shellcheck") as string, ["-s", "sh", "-"], { input: script, encoding: "utf8" });
        expect(check.stdout).toBe("");
        expect(check.status).toBe(0);
    });
});

/** The repository's own shell scripts (drills, lab setup, the HAProxy-root runner, the Pulumi toolchain, the stand-in plugins), as files. */
const REPO = path.join(__dirname, "..", "..");
const PLUGIN_WRAPPERS = "tests/engine/stand-ins/bin";
const REPO_SCRIPTS = [
    ...["scripts", "lab", "tests/support"].flatMap((dir) =>
        readdirSync(path.join(REPO, dir))
            .filter((f) => f.endsWith(".sh"))
            .map((f) => path.join(dir, f)),
    ),
    ...readdirSync(path.join(REPO, PLUGIN_WRAPPERS)).map((f) => path.join(PLUGIN_WRAPPERS, f)),
];
describeWithShellcheck("the repository's shell scripts", () => {
    test("are found (drills, install, lab and test commands, lab setup and teardown, the HAProxy-root runner, the Pulumi toolchain, the stand-in plugins)", () => {
        expect(REPO_SCRIPTS.sort()).toEqual([
            "lab/setup-incus.sh",
            "lab/teardown-incus.sh",
            "scripts/_drill-lib.sh",
            "scripts/failover-drill.sh",
            "scripts/install.sh",
            "scripts/lab.sh",
            "scripts/pulumi-toolchain.sh",
            "scripts/test.sh",
            "scripts/vip-failover-drill.sh",
            "tests/engine/stand-ins/bin/pulumi-resource-command",
            "tests/engine/stand-ins/bin/pulumi-resource-random",
            "tests/support/run-with-haproxy-root.sh",
        ]);
    });
    test.each(REPO_SCRIPTS)("%s passes shellcheck (sourced files followed) and its shell's -n", (file) => {
        const text = readFileSync(path.join(REPO, file), "utf8");
        const shell = text.startsWith("#!/usr/bin/env bash") ? "bash" : "sh";
        const check = spawnSync(findBinary("shellcheck") as string, ["-x", "-s", shell, file], { cwd: REPO, encoding: "utf8" });
        expect({ status: check.status, out: check.stdout }).toEqual({ status: 0, out: "" });
        expect(spawnSync(shell === "bash" ? "bash" : "dash", ["-n", file], { cwd: REPO }).status).toBe(0);
    });
});

/*
 * Values both the TypeScript and a script spell out (the scripts are constant
 * text, so a path cannot reach them as a variable). Each is defined once in
 * TypeScript; this table reads each script's copy and must find the same.
 */
describe("values the scripts and the TypeScript share agree", () => {
    test.each<[string, string, string, RegExp]>([
        ["the VRRP track script", VRRP_ALIVE_SCRIPT, "keepalived-create.sh.mustache", /^alive=(\S+)$/m],
        ["the VRRP track script", VRRP_ALIVE_SCRIPT, "pair-config-create.sh.mustache", /^alive=(\S+)$/m],
        ["the VRRP notify script", VRRP_NOTIFY_SCRIPT, "keepalived-create.sh.mustache", /^notify=(\S+)$/m],
        ["the planned-stop file", HAPROXY_STOPPING_FILE, "_vrrp-handover.sh", /^stopping=(\S+)$/m],
        ["the applied-config stamp", CONFIG_STAMP_PATH, "_vrrp-alive.sh", /^\[ -s (\S+) \]/m],
        [
            "the applied-config stamp (after the config path)",
            CONFIG_STAMP_PATH.slice(CONFIG_PATH.length),
            "_config-in-container.sh",
            /stamp="\$cfg(\S+?)"/,
        ],
        ["the admin socket", DEFAULT_SETTINGS.adminSocketPath, "_vrrp-alive.sh", /^ADMIN_SOCKET=(\S+)$/m],
        ["the config size limit", String(MAX_CONFIG_BYTES), "_config-in-container.sh", /^max_bytes=(\d+)$/m],
        ["the certificate directory", CERT_DIR, "tls-create.sh.mustache", /^\s+(\S+)\/\?\*\.pem\) in_cert_dir=yes/m],
        ["the ACME settings", ACME_ENV_PATH, "acme-create.sh.mustache", /^env_file=(\S+)$/m],
        ["the ACME settings", ACME_ENV_PATH, "_acme-renew.sh", /env_file=\$\{1:-(\S+)\}/],
        ["the ACME settings", ACME_ENV_PATH, "_acme-renew.service", /^ExecStart=\S+ (\S+)$/m],
        ["the ACME settings", ACME_ENV_PATH, "acme-issue-create.sh.mustache", /acme-renew\.sh (\S+) </],
        ["the ACME settings", ACME_ENV_PATH, "acme-delete.sh.mustache", /^\s+rm -f .* (\S+acme\.env) /m],
        ["the ACME CA bundle", ACME_CA_PATH, "acme-create.sh.mustache", /^ca_file=(\S+)$/m],
        ["the ACME CA bundle", ACME_CA_PATH, "acme-delete.sh.mustache", /^\s+rm -f .* (\S+acme-ca\.pem)$/m],
        [
            "the config apply's result (after the config path)",
            CONFIG_RESULT_PATH.slice(CONFIG_PATH.length),
            "_config-in-container.sh",
            /result="\$cfg(\S+?)"/,
        ],
        ["the config apply's result", CONFIG_RESULT_PATH, "_node-metrics.sh", /^config_result=\$\{VEZA_CONFIG_RESULT:-(\S+)\}$/m],
        [
            "the ACME run's result (after its state directory)",
            ACME_RESULT_PATH.slice(ACME_STATE_DIR.length),
            "_acme-renew.sh",
            /"\$state(\/\S+)" 2>/,
        ],
        ["the ACME run's result", ACME_RESULT_PATH, "_node-metrics.sh", /^acme_result=\$\{VEZA_ACME_RESULT:-(\S+)\}$/m],
        ["the config path", CONFIG_PATH, "_node-metrics.sh", /^config=\$\{VEZA_CONFIG_PATH:-(\S+)\}$/m],
        ["the master CLI", MASTER_SOCKET, "_node-metrics.sh", /^master=\$\{VEZA_MASTER_SOCKET:-(\S+)\}$/m],
        ["the admin socket", DEFAULT_SETTINGS.adminSocketPath, "_node-metrics.sh", /^ADMIN_SOCKET=(\S+)$/m],
        [
            "the node metrics script",
            NODE_METRICS_SCRIPT,
            "container-create.sh.mustache",
            /^install_file "\$container" (\S+) 755 <<'VEZA_NODE_METRICS'$/m,
        ],
        ["the node metrics script", NODE_METRICS_SCRIPT, "_node-metrics@.service", /^ExecStart=(\S+)$/m],
        ["the node metrics port", String(NODE_METRICS_PORT), "_node-metrics.socket", /^ListenStream=127\.0\.0\.1:(\d+)$/m],
    ])("%s: %s in %s", (_what, value, file, copy) => {
        expect(copy.exec(loadTemplate(file))?.[1]).toBe(value);
    });
});

describe("the pair's config step when no node holds the VIP (a new pair, or both rebuilt)", () => {
    const step = pairConfigStep({ nodes: ["veza-a", "veza-b"], vip: "198.18.0.250", config: "# pair config\n", openFiles: 8256 });
    const VIP_LINE = "2: eth0    inet 198.18.0.250/24 scope global secondary eth0";

    /**
     * keepalived as the fake sees it: a node is eligible for the VIP only once
     * its config is applied (the track script needs the stamp), and node a
     * takes the VIP on the third look after its apply. The apply to node b
     * records whether node a held the VIP by then.
     */
    const keepalivedTakesTime = [
        '"list ^veza-"*) echo RUNNING ;;',
        '"exec veza-a -- sh -c "*) cat >/dev/null; : >"$DIR/applied-a" ;;',
        '"exec veza-b -- sh -c "*) cat >/dev/null; if [ -e "$DIR/vip-a" ]; then echo yes >"$DIR/b-saw"; else echo no >"$DIR/b-saw"; fi ;;',
        '"exec veza-"*" -- /usr/local/sbin/veza-haproxy-alive") exit 0 ;;',
        `"exec veza-a -- ip -4 -o addr show dev eth0") if [ -e "$DIR/applied-a" ]; then echo x >>"$DIR/looks-a"; [ "$(wc -l <"$DIR/looks-a")" -ge 3 ] && : >"$DIR/vip-a"; fi; [ -e "$DIR/vip-a" ] && echo "${VIP_LINE}"; exit 0 ;;`,
        '"exec veza-b -- ip -4 -o addr show dev eth0") exit 0 ;;',
        "*) cat >/dev/null 2>&1; exit 1 ;;",
    ];

    test("node a takes the VIP before node b gets the config (and with it, eligibility): the first election is node a's, every time", () => {
        const dir = mkdtempSync(path.join(tmpdir(), "veza-pair-first-"));
        try {
            const run = runStepWithFakeIncus(
                step,
                keepalivedTakesTime.map((c) => c.replace(/\$DIR/g, dir)),
            );
            expect(run.status).toBe(0);
            expect(readFileSync(path.join(dir, "b-saw"), "utf8")).toBe("yes\n");
            expect(run.stderr).toMatch(/veza-a holds the VIP 198\.18\.0\.250 \(no node did\); applying to veza-b/);
            expect(run.stdout).toBe("vip_node=veza-a\n");
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});
