import type * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { AcmeArgs } from "./acme";
import { PairArgs } from "./pair";
import { BackendServer, DEFAULT_TLS_CERT_PATH, PublicSettingName, ResolvedSettings, SETTINGS, SETTINGS_KEYS } from "./settings";

/*
 * What a user gives HaproxyLoadBalancer, its defaults, and which keys are
 * settings (rendered into haproxy.cfg) and which say where and how the
 * container is provisioned.
 */

/** Every field of T as a pulumi.Input. */
export type Inputs<T> = { [K in keyof T]?: pulumi.Input<T[K]> };

/** Certificate and key served on the HTTPS listener. Both are kept as Pulumi secrets. */
export interface HaproxyTlsArgs {
    /** PEM certificate (chain allowed). */
    certificatePem: pulumi.Input<string>;
    /** PEM private key of the certificate. */
    privateKeyPem: pulumi.Input<string>;
}

/** A certificate from an ACME CA (Let's Encrypt by default), obtained and renewed in the container: docs/certificates.md. */
export interface HaproxyAcmeTlsArgs {
    acme: pulumi.Input<AcmeArgs>;
}

export function isAcmeTls(tls: unknown): tls is HaproxyAcmeTlsArgs {
    return typeof tls === "object" && tls !== null && "acme" in tls;
}

/** The haproxy.cfg settings a component user sets, as Inputs; each is defined once in SETTINGS (settings.ts): default, rule, doc. */
type SettingArgs = { [K in Exclude<PublicSettingName, "apiServers" | "streamServers">]?: pulumi.Input<ResolvedSettings[K]> };

/**
 * Inputs of HaproxyLoadBalancer: the haproxy.cfg settings (the config
 * table; defaults and rules in settings.ts), plus where and how the container
 * is provisioned.
 */
export interface HaproxyLoadBalancerArgs extends SettingArgs {
    /** api_pool members. Required. */
    apiServers: pulumi.Input<pulumi.Input<BackendServer>[]>;
    /** stream_pool members. Required. */
    streamServers: pulumi.Input<pulumi.Input<BackendServer>[]>;
    /**
     * SSH connection to the Incus host. Default: none, run the local `incus` CLI.
     * Needs `hostKey` (the host's public key line, e.g. the contents of
     * /etc/ssh/ssh_host_ed25519_key.pub) unless `insecureSkipHostKeyCheck` is true.
     */
    connection?: pulumi.Input<command.types.input.remote.ConnectionArgs>;
    /** Run over SSH without verifying the host key (anyone on the path could take the session). Default: false; a warning on every run when true. */
    insecureSkipHostKeyCheck?: boolean;
    /** Incus instance name. Default: the component's name. */
    containerName?: pulumi.Input<string>;
    /**
     * Take over the container even when another stack recorded it as its own
     * (Incus key user.veza.stack). Default: false: refused, naming both stacks,
     * since every stack defaults to the same container name and the second
     * would reconfigure the first one's load balancer, and delete it on its
     * own destroy. A warning on every run while true.
     */
    adoptContainer?: boolean;
    /** Incus image. Default: "images:debian/13" (Debian 12, "images:debian/12", works as well). */
    image?: pulumi.Input<string>;
    /** Incus profiles. Default: ["default"]. */
    profiles?: pulumi.Input<pulumi.Input<string>[]>;
    /**
     * HTTPS on `listenHttps`: a certificate + key to push into the container,
     * or `{ acme }` to have the container obtain and renew one from an ACME CA.
     * Default: none (HTTP only).
     */
    tls?: HaproxyTlsArgs | HaproxyAcmeTlsArgs;
    /**
     * Two nodes holding a floating address (the VIP) with keepalived, instead
     * of one container (docs/pair.md). Node a is the
     * container `containerName` (a single load balancer turned into a pair
     * keeps serving as node a), node b is `<containerName>-b`. Default: none.
     */
    pair?: pulumi.Input<PairArgs>;
}

export const COMPONENT_DEFAULTS = {
    image: "images:debian/13",
    profiles: ["default"],
};

/**
 * The container step's trigger for an image left to the default. 0.2 put its
 * default, "images:debian/12", in the trigger; keeping that token means a new
 * default never replaces a running container (a `triggers` change replaces,
 * and a replace deletes: see the step's comment). New containers launch from
 * the new default; an image that is set is its own token, so only setting it
 * rebuilds.
 */
export const DEFAULTED_IMAGE_TRIGGER = "images:debian/12";

/** Settings that go straight from the args to the renderer (the password and cookie key get generated defaults). */
export const RENDER_FIELDS = SETTINGS_KEYS.filter(
    (key): key is Exclude<PublicSettingName, "statsPassword" | "cookieSecret"> =>
        !("internal" in SETTINGS[key]) && key !== "statsPassword" && key !== "cookieSecret",
);

/** The args that are not haproxy.cfg settings; with PublicSettingName they are every key of HaproxyLoadBalancerArgs (the compiler checks). */
const PROVISIONING_KEYS = [
    "connection",
    "insecureSkipHostKeyCheck",
    "containerName",
    "adoptContainer",
    "image",
    "profiles",
    "tls",
    "pair",
] as const satisfies readonly (keyof HaproxyLoadBalancerArgs)[];
type MissingArgKeys = Exclude<keyof HaproxyLoadBalancerArgs, PublicSettingName | (typeof PROVISIONING_KEYS)[number]>;
const allArgKeysListed: MissingArgKeys extends never ? true : MissingArgKeys = true;
void allArgKeysListed;
export const ARG_KEYS: readonly string[] = [...RENDER_FIELDS, "statsPassword", "cookieSecret", ...PROVISIONING_KEYS];

export function isPlain(value: unknown): boolean {
    if (pulumi.Output.isInstance(value) || value instanceof Promise) return false;
    if (Array.isArray(value)) return value.every(isPlain);
    if (typeof value === "object" && value !== null) return Object.values(value).every(isPlain);
    return true;
}

/**
 * Returns a new args object with the component-level defaults applied; `args`
 * is never modified. The container is named after the component unless
 * `containerName` is given, so two components never share one by default.
 */
export function applyComponentDefaults(name: string, args: HaproxyLoadBalancerArgs) {
    // A pushed certificate needs a place: the default path unless one is given.
    const certPath = (p: string | undefined) => p || DEFAULT_TLS_CERT_PATH;
    return {
        ...args,
        containerName: args.containerName ?? name,
        image: args.image ?? COMPONENT_DEFAULTS.image,
        profiles: args.profiles ?? COMPONENT_DEFAULTS.profiles,
        tlsCertPath: !args.tls
            ? args.tlsCertPath
            : isPlain(args.tlsCertPath)
              ? certPath(args.tlsCertPath as string | undefined)
              : pulumi.output(args.tlsCertPath).apply(certPath),
    };
}

export type ResolvedArgs = ReturnType<typeof applyComponentDefaults>;
