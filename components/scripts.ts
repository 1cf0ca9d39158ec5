import { createHash } from "crypto";
import { AcmeArgs, checkAcme, renderAcmeEnv } from "./acme";
import { ACME_CA_PATH, ACME_STATE_DIR, CONFIG_PATH, MASTER_SOCKET } from "./container-paths";
import { sha256Hex } from "./identity";
import { IPV4_ADDRESS } from "./address";
import { CLUSTER_MEMBER, vipProblem } from "./pair";
import { loadTemplate, renderTemplate } from "./templates";
import { Checker, SettingsError, validateProvisioning, validateTlsPair } from "./validate";

/*
 * The provisioning scripts are constant text. Every value they act on
 * arrives on stdin: a "veza-step/1" header of name=value lines, a blank line,
 * then the payload (a config, a certificate bundle). Nothing is spliced into
 * a script, and nothing travels in the environment: @pulumi/command's remote
 * mode sends each environment entry with an SSH setenv request and fails
 * before the script runs when sshd refuses it, as a stock sshd does
 * (pulumi/pulumi-command provider/pkg/provider/remote/commandOutputs.go, run).
 */

export { CONFIG_PATH, MASTER_SOCKET } from "./container-paths";
/** First line of every step's stdin. */
export const STEP_HEADER = "veza-step/1";

/*
 * templates/ names: `<step>-<op>.sh.mustache` is the script a step runs on the
 * Incus host for one Command operation (`create`, also run on update, or
 * `delete`); `_<step>-<what>` is a constant piece included into that step's
 * script (`_prelude.sh` into every step's); haproxy.cfg.mustache is the one
 * template rendered with values, named after the file it becomes.
 */
/** The pieces, by the partial name the step scripts include them with (`{{> name}}`). */
const PARTIALS = {
    prelude: "_prelude.sh",
    saveState: "_container-save-state.sh",
    dropin: "_container-dropin.conf",
    applyInContainer: "_config-in-container.sh",
    vrrpAlive: "_vrrp-alive.sh",
    vrrpNotify: "_vrrp-notify.sh",
    vrrpHandover: "_vrrp-handover.sh",
    acmeRenew: "_acme-renew.sh",
    acmeService: "_acme-renew.service",
    acmeTimer: "_acme-renew.timer",
    nodeMetrics: "_node-metrics.sh",
    nodeMetricsSocket: "_node-metrics.socket",
    nodeMetricsService: "_node-metrics@.service",
};

/** Renders one of templates/*.sh.mustache with the shared partials. */
export function renderScript(template: string): string {
    const partials: Record<string, string> = {};
    for (const [name, file] of Object.entries(PARTIALS)) partials[name] = loadTemplate(file);
    return renderTemplate(template, {}, partials);
}

/** The constant scripts of each step. `delete` is absent where there is nothing to undo. */
export interface StepScripts {
    create: string;
    update: string;
    delete?: string;
}

export interface ScriptStep extends StepScripts {
    /** Header and payload: everything the scripts act on. */
    stdin: string;
}

const SCRIPT_FILES = {
    container: { create: "container-create.sh.mustache", delete: "container-delete.sh.mustache" },
    tls: { create: "tls-create.sh.mustache", delete: "tls-delete.sh.mustache" },
    config: { create: "config-create.sh.mustache", delete: undefined },
    pairConfig: { create: "pair-config-create.sh.mustache", delete: undefined },
    keepalived: { create: "keepalived-create.sh.mustache", delete: "keepalived-delete.sh.mustache" },
    acme: { create: "acme-create.sh.mustache", delete: "acme-delete.sh.mustache" },
    acmeIssue: { create: "acme-issue-create.sh.mustache", delete: undefined },
} as const;

export type StepKind = keyof typeof SCRIPT_FILES;

/**
 * A step's scripts, known before any input resolves. `update` re-runs the
 * idempotent create. The config step has no delete: the provider runs any
 * delete that is set, even "" (pulumi/pulumi-command
 * provider/pkg/provider/local/commandController.go, Delete: skipped only when
 * nil), and a config needs no undoing.
 */
export function stepScripts(kind: StepKind): StepScripts {
    // Constant text: rendered once per process, however many components and builders ask.
    let scripts = renderedScripts.get(kind);
    if (scripts === undefined) {
        const files = SCRIPT_FILES[kind];
        const create = renderScript(files.create);
        scripts = files.delete === undefined ? { create, update: create } : { create, update: create, delete: renderScript(files.delete) };
        renderedScripts.set(kind, scripts);
    }
    return { ...scripts };
}

const renderedScripts = new Map<StepKind, StepScripts>();

/** What a header value may hold; the scripts check the same set again. */
/** Not starting with "-": a value reaches incus as an argument, and would be read as an option. */
const HEADER_VALUE = /^[A-Za-z0-9._:/,@+=][A-Za-z0-9._:/,@+=-]*$/;
const HEADER_NAME = /^[a-z][a-z0-9_]*$/;

/** Frames a step's stdin: the header, a blank line, the payload. Throws a SettingsError on a value the header cannot carry. */
export function stepStdin(fields: Record<string, string>, payload = ""): string {
    const problems: string[] = [];
    for (const [name, value] of Object.entries(fields)) {
        if (!HEADER_NAME.test(name))
            problems.push(`step header field name ${JSON.stringify(name)} must be a-z, 0-9 and _, starting with a letter`);
        else if (typeof value !== "string" || !HEADER_VALUE.test(value)) {
            problems.push(
                `${name} must be 1 or more characters of A-Z a-z 0-9 . _ : / , @ + = -, not starting with -, to reach a step script (got ${JSON.stringify(value)})`,
            );
        }
    }
    if (problems.length > 0) throw new SettingsError(problems);
    const lines = Object.entries(fields).map(([name, value]) => `${name}=${value}`);
    return [STEP_HEADER, ...lines, "", ""].join("\n") + payload;
}

/** An owner token: what the container step records in the container (Incus key user.veza.owner). */
const OWNER_TOKEN = /^veza1-[0-9a-f]{32}$/;

/**
 * The identity of one container step: the component's URN (changes on a
 * rename without an alias) and where its commands run ("local", or the SSH
 * host), which together make the step's own URN. A step may delete the
 * container only while the container still carries its token.
 */
export function ownerToken(componentUrn: string, runsOn: string): string {
    const digest = createHash("sha256").update(`${componentUrn}\n${runsOn}`, "utf8").digest("hex");
    return `veza1-${digest.slice(0, 32)}`;
}

export interface ContainerStepInputs {
    containerName: string;
    image: string;
    profiles: string[];
    /** This step's owner token (see `ownerToken`). */
    owner: string;
    /**
     * The stack this step belongs to, `<project>/<stack>` (see `stackIdentity`),
     * recorded in the container (user.veza.stack) beside the owner token.
     */
    stack: string;
    /** Take over a container another stack recorded as its own (adoptContainer). Default: false, refused. */
    adopt?: boolean;
    adminSocketPath: string;
    serverStateFile: string;
    /** Seconds to wait for the container's network and systemd. Default: 60. */
    waitSeconds?: number;
    /** The Incus cluster member to launch on (a pair node with targets). Absent: wherever Incus places it, and no `target` header field. */
    target?: string;
}

function checked(check: (c: Checker) => void): void {
    const c = new Checker();
    check(c);
    c.throwIfAny();
}

/** A stack's identity as the container records it: `<project>/<stack>` (Pulumi's names: letters, digits, . _ -). */
export function stackIdentity(project: string, stack: string): string {
    return `${project}/${stack}`;
}

const STACK_IDENTITY = /^[A-Za-z0-9._-]+\/[A-Za-z0-9._-]+$/;

export function containerStep(inputs: ContainerStepInputs): ScriptStep {
    validateProvisioning(inputs);
    const waitSeconds = inputs.waitSeconds ?? 60;
    checked((c) => {
        c.matches("owner", inputs.owner, OWNER_TOKEN, "must be an owner token from ownerToken()");
        c.matches("stack", inputs.stack, STACK_IDENTITY, "must be <project>/<stack> from stackIdentity()");
        c.absolutePath("adminSocketPath", inputs.adminSocketPath);
        c.absolutePath("serverStateFile", inputs.serverStateFile);
        c.integer("waitSeconds", waitSeconds, 1, 3600);
        if (inputs.target !== undefined)
            c.matches("target", inputs.target, CLUSTER_MEMBER, "must be an Incus cluster member name: letters, digits, . and -");
    });
    return {
        ...stepScripts("container"),
        stdin: stepStdin({
            container: inputs.containerName,
            image: inputs.image,
            profiles: inputs.profiles.join(","),
            owner: inputs.owner,
            stack: inputs.stack,
            admin_socket: inputs.adminSocketPath,
            state_file: inputs.serverStateFile,
            wait_seconds: String(waitSeconds),
            ...(inputs.target === undefined ? {} : { target: inputs.target }),
            ...(inputs.adopt === true ? { adopt: "yes" } : {}),
        }),
    };
}

/** The largest config the step takes; the script refuses a larger one before reading it. */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

export interface ConfigStepInputs {
    containerName: string;
    config: string;
    /** Open files HAProxy needs for this config (`openFilesNeeded`); the step refuses it where fewer are allowed. */
    openFiles: number;
    /** sha256 of the certificates HAProxy loads (the served one, a pair's peers one), so a rotated one reloads too; "none" without any. */
    certSha256?: string;
    reloadWaitSeconds?: number;
}

/** The config payload's checks and header fields, shared by the one-node and the pair config steps. */
function configPayloadFields(c: Checker, inputs: Omit<ConfigStepInputs, "containerName">): Record<string, string> {
    const certSha256 = inputs.certSha256 ?? "none";
    const reloadWaitSeconds = inputs.reloadWaitSeconds ?? 15;
    if (typeof inputs.config !== "string" || inputs.config === "") c.fail("config", "must be the rendered haproxy.cfg text");
    else if (Buffer.byteLength(inputs.config, "utf8") > MAX_CONFIG_BYTES) {
        c.fail("config", `must be at most ${MAX_CONFIG_BYTES} bytes (got ${Buffer.byteLength(inputs.config, "utf8")})`);
    }
    c.integer("openFiles", inputs.openFiles, 1, 100_000_000);
    c.matches("certSha256", certSha256, /^([0-9a-f]{64}|none)$/, 'must be a hex SHA-256 or "none"');
    c.integer("reloadWaitSeconds", reloadWaitSeconds, 1, 3600);
    if (c.found.length > 0) return {};
    return {
        config_path: CONFIG_PATH,
        config_sha256: sha256Hex(inputs.config),
        config_bytes: String(Buffer.byteLength(inputs.config, "utf8")),
        open_files: String(inputs.openFiles),
        cert_sha256: certSha256,
        master_socket: MASTER_SOCKET,
        reload_wait_seconds: String(reloadWaitSeconds),
    };
}

export function configStep(inputs: ConfigStepInputs): ScriptStep {
    const c = new Checker();
    c.containerName("containerName", inputs.containerName);
    const fields = configPayloadFields(c, inputs);
    c.throwIfAny();
    return { ...stepScripts("config"), stdin: stepStdin({ container: inputs.containerName, ...fields }, inputs.config) };
}

export interface PairConfigStepInputs extends Omit<ConfigStepInputs, "containerName"> {
    /** Node a's and node b's containers. */
    nodes: readonly [string, string];
    /** The VIP's address, without its prefix: how the step tells which node holds it. */
    vip: string;
}

/** The pair's config step: the same config to both nodes, the one without the VIP first (templates/pair-config-create.sh.mustache). */
export function pairConfigStep(inputs: PairConfigStepInputs): ScriptStep {
    const c = new Checker();
    c.containerName("nodes[0]", inputs.nodes[0]);
    c.containerName("nodes[1]", inputs.nodes[1]);
    if (inputs.nodes[0] === inputs.nodes[1]) c.fail("nodes", `must be two different containers (both ${JSON.stringify(inputs.nodes[0])})`);
    c.matches("vip", inputs.vip, IPV4_ADDRESS, "must be an IPv4 address without prefix");
    const fields = configPayloadFields(c, inputs);
    c.throwIfAny();
    return {
        ...stepScripts("pairConfig"),
        stdin: stepStdin({ nodes: `${inputs.nodes[0]},${inputs.nodes[1]}`, vip: inputs.vip, ...fields }, inputs.config),
    };
}

export interface KeepalivedStepInputs {
    containerName: string;
    /** The container step's owner token: keepalived is stopped on delete only while it still owns the container. */
    owner: string;
    /** "198.18.0.10/24": checked against the node's own subnet before keepalived gets it. */
    vip: string;
    /** keepalived.conf as renderKeepalivedConfig renders it for this node. */
    keepalivedConf: string;
    /**
     * The node's container step id. A rebuilt container is a new step id, so
     * this step runs again and sets keepalived up in it, even when the new
     * container got the old address and the config is the same.
     */
    containerStep: string;
}

/** One pair node's keepalived step (templates/keepalived-create.sh.mustache). */
export function keepalivedStep(inputs: KeepalivedStepInputs): ScriptStep {
    checked((c) => {
        c.containerName("containerName", inputs.containerName);
        c.matches("owner", inputs.owner, OWNER_TOKEN, "must be an owner token from ownerToken()");
        const vip = vipProblem(inputs.vip);
        if (vip !== undefined) c.fail("vip", vip);
        c.matches("containerStep", inputs.containerStep, HEADER_VALUE, "must be the container step's id");
        if (typeof inputs.keepalivedConf !== "string" || inputs.keepalivedConf === "")
            c.fail("keepalivedConf", "must be the rendered keepalived.conf text");
    });
    return {
        ...stepScripts("keepalived"),
        stdin: stepStdin(
            {
                container: inputs.containerName,
                container_step: inputs.containerStep,
                owner: inputs.owner,
                vip: inputs.vip,
                conf_sha256: sha256Hex(inputs.keepalivedConf),
            },
            inputs.keepalivedConf,
        ),
    };
}

export interface TlsStepInputs {
    containerName: string;
    /** Where the bundle goes: a file directly in CERT_DIR (/etc/haproxy/certs). */
    certPath: string;
    /** The container step's owner token: the certificate is removed only while it still owns the container. */
    owner: string;
    certificatePem: string;
    privateKeyPem: string;
}

/** HAProxy wants one PEM holding the certificate (chain) followed by its key. */
export function tlsBundle(certificatePem: string, privateKeyPem: string): string {
    const withNewline = (pem: string) => (pem.endsWith("\n") ? pem : `${pem}\n`);
    return withNewline(certificatePem) + withNewline(privateKeyPem);
}

export function tlsStep(inputs: TlsStepInputs): ScriptStep {
    checked((c) => {
        c.containerName("containerName", inputs.containerName);
        c.certPath("certPath", inputs.certPath);
        c.matches("owner", inputs.owner, OWNER_TOKEN, "must be an owner token from ownerToken()");
    });
    validateTlsPair(inputs.certificatePem, inputs.privateKeyPem);
    return {
        ...stepScripts("tls"),
        stdin: stepStdin(
            { container: inputs.containerName, cert_path: inputs.certPath, owner: inputs.owner },
            tlsBundle(inputs.certificatePem, inputs.privateKeyPem),
        ),
    };
}

export interface AcmeStepInputs {
    containerName: string;
    /** The container step's owner token: the ACME setup is removed only while it still owns the container. */
    owner: string;
    /** The certificate file HAProxy serves (tlsCertPath): the renew script replaces it, a placeholder stands in until then. */
    certPath: string;
    adminSocketPath: string;
    acme: AcmeArgs;
    /** A node of a pair: its bridge address, the one address its responder listens on (both nodes' haproxy routes the CA's fetches there). */
    pairNodeAddress?: string;
}

/** acme.env as the container's renew script reads it, for these inputs. */
export function acmeEnv(inputs: AcmeStepInputs): string {
    return renderAcmeEnv(inputs.acme, {
        certPath: inputs.certPath,
        adminSocket: inputs.adminSocketPath,
        stateDir: ACME_STATE_DIR,
        caBundlePath: inputs.acme.caBundlePem === undefined ? undefined : ACME_CA_PATH,
        challengeAddress: inputs.pairNodeAddress,
    });
}

function checkAcmeStep(c: Checker, inputs: AcmeStepInputs): void {
    c.containerName("containerName", inputs.containerName);
    c.matches("owner", inputs.owner, OWNER_TOKEN, "must be an owner token from ownerToken()");
    c.certPath("certPath", inputs.certPath);
    c.absolutePath("adminSocketPath", inputs.adminSocketPath);
    checkAcme(c, "tls.acme", inputs.acme);
}

/** The ACME step, before the config step: client, settings, CA bundle, timer, placeholder (templates/acme-create.sh.mustache). */
export function acmeStep(inputs: AcmeStepInputs): ScriptStep {
    checked((c) => checkAcmeStep(c, inputs));
    const env = acmeEnv(inputs);
    const ca = inputs.acme.caBundlePem ?? "";
    return {
        ...stepScripts("acme"),
        stdin: stepStdin(
            {
                container: inputs.containerName,
                owner: inputs.owner,
                cert_path: inputs.certPath,
                domain: inputs.acme.domains[0],
                env_bytes: String(Buffer.byteLength(env, "utf8")),
                env_sha256: sha256Hex(env),
                ca_sha256: ca === "" ? "none" : sha256Hex(ca),
            },
            env + ca,
        ),
    };
}

/** The ACME issue step, after the config step: obtains the certificate now and prints its expiry and issuer (templates/acme-issue-create.sh.mustache). */
export function acmeIssueStep(inputs: AcmeStepInputs): ScriptStep {
    checked((c) => checkAcmeStep(c, inputs));
    return {
        ...stepScripts("acmeIssue"),
        stdin: stepStdin({
            container: inputs.containerName,
            owner: inputs.owner,
            cert_path: inputs.certPath,
            env_sha256: sha256Hex(acmeEnv(inputs)),
        }),
    };
}
