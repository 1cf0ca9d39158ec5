import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
import { ACME_CHALLENGE_PORT, AcmeArgs, checkAcme } from "./acme";
import {
    applyComponentDefaults,
    DEFAULTED_IMAGE_TRIGGER,
    HaproxyLoadBalancerArgs,
    Inputs,
    isAcmeTls,
    isPlain,
    RENDER_FIELDS,
    ResolvedArgs,
} from "./args";
import { claimContainer, claimPairAddresses } from "./claims";
import { checkKnownSettings, checkNotSelf, checkPairNames, onResource, ownContainers, validateNowOrLater } from "./input-checks";
import { checkPeersPort, PairArgs, pairWarnings, PEERS_CERT_VALIDITY_HOURS } from "./pair";
import { stackIdentity } from "./scripts";
import { applyDefaults, HaproxySettings, ResolvedSettings } from "./settings";
import { checkSshTarget, SshTarget, sshTargetOf } from "./ssh";
import {
    Checker,
    ProvisioningSettings,
    settingsProblems,
    settingsWarnings,
    shown,
    validateProvisioning,
    validateTlsPair,
} from "./validate";

/*
 * resolve → validate: the component's args with their defaults applied, the
 * generated secrets made, and every input checked, now when it is known,
 * else when it resolves (then no step built from it registers).
 */

/** Every input, resolved and checked (now, or when it resolves). */
export interface ResolvedInputs {
    /** true once every input above is checked; fails with the first problem found. */
    valid: pulumi.Output<boolean>;
    connection: HaproxyLoadBalancerArgs["connection"];
    runsOn: pulumi.Input<string>;
    provisioning: pulumi.Output<ProvisioningSettings & { runsOn: string }>;
    /** The image as the container step's trigger: DEFAULTED_IMAGE_TRIGGER unless set. */
    imageTrigger: pulumi.Input<string>;
    tlsPair?: pulumi.Output<[string, string]>;
    /** With a pair: the peers certificate and key both nodes present and trust (secret). */
    peersTlsPair?: pulumi.Output<[string, string]>;
    /** tls.acme, checked; absent when the certificate is pushed (or TLS is off). */
    acme?: pulumi.Output<AcmeArgs>;
    /** Checked; absent for one container. */
    pair?: pulumi.Output<PairArgs>;
    settings: pulumi.Output<ResolvedSettings>;
    statsPassword: pulumi.Output<string>;
    fingerprintKey: pulumi.Output<string>;
    /** This stack, `<project>/<stack>`: recorded in the container beside the owner token. */
    stack: string;
    adoptContainer: boolean;
}

/**
 * Defaults applied, generated secrets made, every input checked: what is
 * known now fails the constructor, the rest when it resolves (then no step
 * built from it registers).
 */
export function resolveInputs(parent: pulumi.ComponentResource, name: string, args: HaproxyLoadBalancerArgs): ResolvedInputs {
    const a = applyComponentDefaults(name, args);
    if (a.insecureSkipHostKeyCheck !== undefined && typeof a.insecureSkipHostKeyCheck !== "boolean") {
        throw new pulumi.ResourceError(`insecureSkipHostKeyCheck must be true or false (got ${shown(a.insecureSkipHostKeyCheck)})`, parent);
    }
    const insecure = a.insecureSkipHostKeyCheck === true;
    const hasPair = a.pair !== undefined;
    onResource(parent, () => checkKnownSettings(args, a));
    const runsOn = stepHost(parent, a.connection, insecure);
    const provisioning = validateNowOrLater(
        parent,
        { containerName: a.containerName, image: a.image, profiles: a.profiles, runsOn } as pulumi.Input<
            ProvisioningSettings & { runsOn: string }
        >,
        (p) => {
            validateProvisioning(p);
            for (const node of ownContainers(p.containerName, hasPair)) claimContainer(name, p.runsOn, node);
        },
    );
    const pair =
        a.pair === undefined
            ? undefined
            : validateNowOrLater(
                  parent,
                  { pair: a.pair, containerName: a.containerName, runsOn } as pulumi.Input<{
                      pair: PairArgs;
                      containerName: string;
                      runsOn: string;
                  }>,
                  (v) => {
                      const c = new Checker();
                      checkPairNames(c, v.pair, v.containerName);
                      c.throwIfAny();
                      claimPairAddresses(name, v.runsOn, v.pair);
                  },
              ).apply((v) => v.pair);
    pair?.apply((p) => pairWarnings("pair", p).forEach((warning) => pulumi.log.warn(warning, parent)));
    const acme = isAcmeTls(a.tls)
        ? validateNowOrLater(parent, a.tls.acme, (v) => {
              const c = new Checker();
              checkAcme(c, "tls.acme", v);
              c.throwIfAny();
          })
        : undefined;
    const tlsPair =
        a.tls &&
        !isAcmeTls(a.tls) &&
        validateNowOrLater(
            parent,
            pulumi.all([pulumi.secret(a.tls.certificatePem), pulumi.secret(a.tls.privateKeyPem)]),
            ([certificatePem, privateKeyPem]) => validateTlsPair(certificatePem, privateKeyPem),
        );

    const statsPassword = pulumi.secret(a.statsPassword ?? randomKey(parent, `${name}-stats-password`));
    const cookieSecret = a.cookieSecret ?? randomKey(parent, `${name}-cookie-secret`);
    const renderInputs: Inputs<HaproxySettings> = { statsPassword, cookieSecret };
    for (const field of RENDER_FIELDS) (renderInputs as Record<string, unknown>)[field] = a[field];
    // HAProxy hands the CA's HTTP-01 challenges to the ACME client's responder in the container.
    if (acme) renderInputs.acmeChallengePort = ACME_CHALLENGE_PORT;
    const settings: pulumi.Output<ResolvedSettings> = validateNowOrLater(
        parent,
        pulumi.all([pulumi.all(renderInputs), a.containerName, a.pair]).apply(([s, containerName, pairArgs]) => ({
            resolved: applyDefaults(s as unknown as HaproxySettings),
            containerName,
            vip: (pairArgs as PairArgs | undefined)?.vip,
        })),
        ({ resolved, containerName, vip }) => {
            const c = new Checker();
            c.found.push(...settingsProblems(resolved));
            checkNotSelf(c, resolved as unknown as Record<string, unknown>, ownContainers(containerName, hasPair), vip);
            if (hasPair) checkPeersPort(c, resolved);
            c.throwIfAny();
        },
    ).apply(({ resolved }) => resolved);
    // Legal but unusual values: said on every run, never refused.
    settings.apply((s) => settingsWarnings(s).forEach((warning) => pulumi.log.warn(warning, parent)));
    return {
        connection: a.connection,
        runsOn,
        provisioning,
        imageTrigger: args.image === undefined ? DEFAULTED_IMAGE_TRIGGER : provisioning.image,
        tlsPair: tlsPair || undefined,
        peersTlsPair: hasPair ? peersCertificate(parent, name) : undefined,
        acme,
        pair,
        settings,
        statsPassword,
        fingerprintKey: randomKey(parent, `${name}-fingerprint-key`),
        stack: stackIdentity(pulumi.getProject(), pulumi.getStack()),
        adoptContainer: adoptContainer(parent, a.adoptContainer, a.containerName),
        valid: pulumi.unsecret(
            pulumi.all([provisioning, settings, pair ?? true, tlsPair || true, acme ?? true] as pulumi.Input<unknown>[]).apply(() => true),
        ),
    };
}

/**
 * 32 random characters, secret in the state. RandomPassword, not RandomId:
 * RandomId marks none of its outputs secret and its id is the value itself
 * (@pulumi/random randomId.js has no additionalSecretOutputs;
 * randomPassword.js marks "result").
 */
function randomKey(parent: pulumi.ComponentResource, name: string): pulumi.Output<string> {
    return new random.RandomPassword(name, { length: 32, special: false }, { parent }).result;
}

/**
 * A pair's peers certificate and key: self-signed, made once per
 * component, secret in the state. Both nodes present it and trust only
 * it (mutual TLS on the peers port). Nothing renews it, hence the
 * century; replacing the key resource is a deliberate rotation.
 */
function peersCertificate(parent: pulumi.ComponentResource, name: string): pulumi.Output<[string, string]> {
    const key = new tls.PrivateKey(`${name}-peers-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent });
    const cert = new tls.SelfSignedCert(
        `${name}-peers-cert`,
        {
            privateKeyPem: key.privateKeyPem,
            subject: { commonName: "veza-haproxy peers" },
            isCaCertificate: true,
            validityPeriodHours: PEERS_CERT_VALIDITY_HOURS,
            allowedUses: ["digital_signature", "cert_signing", "server_auth", "client_auth"],
        },
        { parent },
    );
    return pulumi.secret(pulumi.all([cert.certPem, key.privateKeyPem]));
}

/** adoptContainer, checked, with its warning on every run while it is true. */
function adoptContainer(parent: pulumi.ComponentResource, adopt: unknown, containerName: pulumi.Input<string>): boolean {
    if (adopt === undefined || adopt === false) return false;
    if (adopt !== true) {
        throw new pulumi.ResourceError(`adoptContainer must be true or false (got ${shown(adopt)})`, parent);
    }
    pulumi
        .output(containerName)
        .apply((c) =>
            pulumi.log.warn(
                `adoptContainer is set: if container ${c} belongs to another stack, this run takes it over, and this stack's destroy will delete it. ` +
                    "Unset it once the container is this stack's.",
                parent,
            ),
        );
    return true;
}

/**
 * Where the steps run: "local", or "ssh:<host>:<port>". Checks the SSH
 * rules (host key) now when the connection is known, else when it resolves.
 */
function stepHost(parent: pulumi.ComponentResource, connection: ResolvedArgs["connection"], insecure: boolean): pulumi.Input<string> {
    if (connection === undefined) return "local";
    if (insecure) {
        pulumi.log.warn(
            "insecureSkipHostKeyCheck is set: the Incus host's SSH key is not verified, so whoever answers at its address " +
                "receives root commands, the TLS key and the stats password. Set connection.hostKey (haproxy:incusHost.hostKey) instead.",
            parent,
        );
    }
    const describe = (t: SshTarget) => `ssh:${t.host}:${t.port ?? 22}`;
    // The connection is secret as a whole (its private key); host, port and host key are not.
    // A plain connection may still hold Outputs (a bastion from another resource): then it is checked when they resolve.
    const fields = pulumi.Output.isInstance(connection) || connection instanceof Promise ? undefined : sshTargetOf(connection);
    const target: pulumi.Input<SshTarget> =
        fields !== undefined && isPlain(fields) ? fields : pulumi.unsecret(pulumi.output(connection).apply((c) => sshTargetOf(c)));
    if (isPlain(target)) {
        onResource(parent, () => checkSshTarget(target as SshTarget, insecure));
        return describe(target as SshTarget);
    }
    return validateNowOrLater(parent, target, (t) => checkSshTarget(t, insecure)).apply(describe);
}
