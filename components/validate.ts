import { createPrivateKey, X509Certificate } from "crypto";
import { Checker, isRecord, Problem, SettingsError, shown } from "./checker";
import { NODE_METRICS_PORT } from "./container-paths";
import { checkNotOwnListener } from "./pools";
import { ResolvedSettings, SETTINGS, SETTINGS_KEYS } from "./settings";

export { Checker, Problem, SettingsError, shown } from "./checker";

const NAME = /^[A-Za-z0-9._-]{1,64}$/;
const IMAGE = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,254}$/;

function checkListeners(c: Checker, s: ResolvedSettings): void {
    const listeners: [string, unknown][] = [
        ["listenHttp", s.listenHttp],
        ["statsPort", s.statsPort],
    ];
    if (s.tlsCertPath !== "") listeners.push(["listenHttps", s.listenHttps]);
    // The ACME client's responder is the challenge route's target: a listener on its port would route the
    // CA's fetches back to HAProxy itself, a loop.
    if (s.acmeChallengePort > 0) {
        for (const [field, port] of listeners) {
            if (port === s.acmeChallengePort)
                c.fail(
                    field,
                    `must differ from the ACME client's challenge port ${s.acmeChallengePort} (tls.acme): HAProxy hands /.well-known/acme-challenge/ to a responder there, and a listener on it would hand the challenges back to HAProxy itself`,
                );
        }
    }
    // The node metrics listen there (systemd, on loopback): a listener on it would fail to bind, or take it first.
    for (const [field, port] of listeners) {
        if (port === NODE_METRICS_PORT)
            c.fail(field, `must differ from ${NODE_METRICS_PORT}: the node metrics (/veza-metrics) listen on that port in the container`);
    }
    for (let i = 0; i < listeners.length; i++) {
        for (let j = i + 1; j < listeners.length; j++) {
            if (listeners[i][1] === listeners[j][1]) {
                c.fail(
                    listeners[j][0],
                    `must differ from ${listeners[i][0]}: both are ${shown(listeners[i][1])}; two listeners cannot share a port`,
                    listeners[i][0],
                    "tlsCertPath",
                );
            }
        }
    }
}

/** Checks resolved settings; throws a SettingsError naming every offending field and what is allowed. */
export function validateSettings(s: ResolvedSettings): void {
    const problems = settingsProblems(s);
    if (problems.length > 0) throw new SettingsError(problems.map((p) => p.message));
}

/** Every problem of resolved settings, with the fields each involves: each setting's own rule, then the rules across settings. */
export function settingsProblems(s: ResolvedSettings): Problem[] {
    const c = new Checker();
    c.knownKeys("", s, SETTINGS_KEYS);
    for (const [field, spec] of Object.entries(SETTINGS)) spec.check(c, field, s[field as keyof ResolvedSettings]);
    checkListeners(c, s);
    const own: [string, unknown][] = [
        ["statsPort", s.statsPort],
        ["listenHttp", s.listenHttp],
    ];
    if (s.tlsCertPath !== "") own.push(["listenHttps", s.listenHttps]);
    checkNotOwnListener(c, "apiServers", s.apiServers, s.backendApiPort, own);
    checkNotOwnListener(c, "streamServers", s.streamServers, s.streamServerPort, own);
    if (s.stickyCookieSameSite === "None" && s.tlsCertPath === "") {
        c.fail(
            "stickyCookieSameSite",
            'may be "None" only with TLS (tlsCertPath or a pushed certificate): browsers drop SameSite=None cookies that are not Secure, and stickiness would be lost',
            "tlsCertPath",
        );
    }
    return c.found;
}

/**
 * Legal but unusual values: said as warnings (the component logs them on
 * itself), never refused.
 */
export function settingsWarnings(s: ResolvedSettings): string[] {
    const warnings: string[] = [];
    if (s.acmeChallengePort > 0 && s.listenHttp !== 80) {
        warnings.push(
            `listenHttp is ${s.listenHttp} with tls.acme: the CA fetches its HTTP-01 challenges from port 80, so port 80 must reach this listener (a port forward or a proxy in front); without that, issuance fails and the placeholder or the current certificate keeps serving`,
        );
    }
    if (Number.isInteger(s.healthCheckIntervalMs) && s.healthCheckIntervalMs < 1000) {
        warnings.push(
            `healthCheckIntervalMs is ${s.healthCheckIntervalMs}: every server gets a check more than once a second from each pool it is in; 1000-5000 is usual`,
        );
    }
    for (const pool of ["apiServers", "streamServers"] as const) {
        const servers = Array.isArray(s[pool]) ? s[pool] : [];
        const idle = servers.filter((server) => isRecord(server) && server.weight === 0);
        if (idle.length > 0 && idle.length < servers.length) {
            warnings.push(`${pool}: ${idle.map((server) => server.name).join(", ")} at weight 0 take no new traffic (as if drained)`);
        }
    }
    if (Number.isInteger(s.timeoutServerMs) && Number.isInteger(s.healthCheckIntervalMs) && s.timeoutServerMs < 1000) {
        warnings.push(`timeoutServerMs is ${s.timeoutServerMs}: a response slower than that is cut with a 504`);
    }
    if (s.hstsMaxAgeSeconds > 0 && s.tlsCertPath === "") {
        warnings.push(
            `hstsMaxAgeSeconds is ${s.hstsMaxAgeSeconds} but TLS is off: the header is sent only over HTTPS, so it has no effect`,
        );
    }
    return warnings;
}

/** Where and how the HAProxy container is provisioned: checked before any command runs. */
export interface ProvisioningSettings {
    containerName: string;
    image: string;
    profiles: string[];
}

export function validateProvisioning(p: ProvisioningSettings): void {
    const c = new Checker();
    c.containerName("containerName", p.containerName);
    c.matches(
        "image",
        p.image,
        IMAGE,
        'must be an Incus image reference such as "images:debian/12" or a local alias (A-Z a-z 0-9 . _ : / -)',
    );
    if (!Array.isArray(p.profiles) || p.profiles.length === 0) {
        c.fail("profiles", 'must list at least one Incus profile, e.g. ["default"]');
    } else {
        p.profiles.forEach((profile, i) =>
            c.matches(`profiles[${i}]`, profile, NAME, "must be an Incus profile name of A-Z a-z 0-9 . _ -"),
        );
    }
    c.throwIfAny();
}

/** A certificate is only usable with its key, and the other way round. */
export function validateTlsPair(certificatePem: string, privateKeyPem: string): void {
    const problems: string[] = [];
    if (!/-----BEGIN CERTIFICATE-----/.test(certificatePem)) {
        problems.push("tls.certificatePem must be a PEM certificate (-----BEGIN CERTIFICATE-----)");
    }
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(privateKeyPem)) {
        problems.push(
            "tls.privateKeyPem must be the certificate's PEM private key (-----BEGIN ... PRIVATE KEY-----); a certificate without its key cannot serve HTTPS (value not shown)",
        );
    }
    if (problems.length === 0 && !isKeyOf(certificatePem, privateKeyPem)) {
        problems.push(
            "tls.privateKeyPem is not the private key of tls.certificatePem (their public keys differ): HAProxy would refuse the pair, " +
                "and a restart would find a broken certificate file. Give the key the certificate was issued for (values not shown)",
        );
    }
    if (problems.length > 0) throw new SettingsError(problems);
}

/**
 * Whether the key is the certificate's (the first certificate of the PEM:
 * the leaf). A PEM that Node cannot read (an encrypted key, an unusual
 * algorithm) is not judged here: the config step's haproxy -c judges it.
 */
function isKeyOf(certificatePem: string, privateKeyPem: string): boolean {
    let certificate: X509Certificate;
    let key: ReturnType<typeof createPrivateKey>;
    try {
        certificate = new X509Certificate(certificatePem);
        key = createPrivateKey(privateKeyPem);
    } catch {
        return true;
    }
    return certificate.checkPrivateKey(key);
}
