import { sha256Hex } from "./identity";
import { loadTemplate, renderTemplate } from "./templates";

/*
 * The provisioning scripts are constant text: every value they act on arrives
 * through the environment or stdin, so no input can change what the shell
 * parses, and a script's text only changes when the project changes it.
 */

/** Debian's haproxy unit reads this file and runs the master CLI on this socket. */
export const CONFIG_PATH = "/etc/haproxy/haproxy.cfg";
export const MASTER_SOCKET = "/run/haproxy-master.sock";
/** Where the component installs a pushed certificate when `tlsCertPath` is unset. */
export const DEFAULT_TLS_CERT_PATH = "/etc/haproxy/certs/veza.pem";

const PARTIALS = {
    prelude: "_prelude.sh",
    saveState: "veza-save-state.sh",
    dropin: "haproxy-dropin.conf",
    applyInContainer: "config-apply-in-container.sh",
};

/** Renders one of templates/*.sh.mustache with the shared partials. */
export function renderScript(template: string): string {
    const partials: Record<string, string> = {};
    for (const [name, file] of Object.entries(PARTIALS)) partials[name] = loadTemplate(file);
    return renderTemplate(template, {}, partials);
}

export interface ScriptStep {
    create: string;
    update: string;
    delete?: string;
    environment: Record<string, string>;
    stdin?: string;
}

export interface ContainerStepInputs {
    containerName: string;
    image: string;
    profiles: string[];
    adminSocketPath: string;
    serverStateFile: string;
    /** Seconds to wait for the container's network and systemd. */
    waitSeconds?: number;
}

export function containerStep(inputs: ContainerStepInputs): ScriptStep {
    const create = renderScript("container-create.sh.mustache");
    return {
        create,
        update: create,
        delete: renderScript("container-delete.sh.mustache"),
        environment: {
            VEZA_CONTAINER: inputs.containerName,
            VEZA_IMAGE: inputs.image,
            VEZA_PROFILES: inputs.profiles.join(","),
            VEZA_ADMIN_SOCKET: inputs.adminSocketPath,
            VEZA_STATE_FILE: inputs.serverStateFile,
            VEZA_WAIT_SECONDS: String(inputs.waitSeconds ?? 60),
        },
    };
}

export interface ConfigStepInputs {
    containerName: string;
    config: string;
    /** sha256 of the certificate in use, so a rotated certificate reloads too; "none" without TLS. */
    certSha256?: string;
    reloadWaitSeconds?: number;
}

export function configStep(inputs: ConfigStepInputs): ScriptStep {
    const create = renderScript("config-apply.sh.mustache");
    return {
        create,
        update: create,
        environment: {
            VEZA_CONTAINER: inputs.containerName,
            VEZA_CONFIG_PATH: CONFIG_PATH,
            VEZA_CONFIG_SHA256: sha256Hex(inputs.config),
            VEZA_CERT_SHA256: inputs.certSha256 ?? "none",
            VEZA_MASTER_SOCKET: MASTER_SOCKET,
            VEZA_RELOAD_WAIT_SECONDS: String(inputs.reloadWaitSeconds ?? 15),
        },
        stdin: inputs.config,
    };
}

export interface TlsStepInputs {
    containerName: string;
    certPath: string;
    certificatePem: string;
    privateKeyPem: string;
}

/** HAProxy wants one PEM holding the certificate (chain) followed by its key. */
export function tlsBundle(certificatePem: string, privateKeyPem: string): string {
    const withNewline = (pem: string) => (pem.endsWith("\n") ? pem : `${pem}\n`);
    return withNewline(certificatePem) + withNewline(privateKeyPem);
}

export function tlsStep(inputs: TlsStepInputs): ScriptStep {
    const create = renderScript("tls-push.sh.mustache");
    return {
        create,
        update: create,
        environment: { VEZA_CONTAINER: inputs.containerName, VEZA_CERT_PATH: inputs.certPath },
        stdin: tlsBundle(inputs.certificatePem, inputs.privateKeyPem),
    };
}
