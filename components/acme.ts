import { X509Certificate } from "crypto";
import { Checker, isRecord, shown } from "./checker";
import { IPV4_ADDRESS } from "./address";

/*
 * Certificates from an ACME CA (Let's Encrypt, a private CA, Pebble in the
 * lab), obtained and renewed inside the load balancer with the HTTP-01
 * challenge: HAProxy hands /.well-known/acme-challenge/ on its HTTP listener
 * to the ACME client's responder (on loopback; a pair's node on its bridge
 * address only). This module holds the
 * settings' rules and the values the scripts and haproxy.cfg derive from
 * them.
 */

/** What `tls: { acme }` asks for. */
export interface AcmeArgs {
    /** DNS names the certificate is for; the first is its subject. Each must resolve to the load balancer. */
    domains: string[];
    /** The ACME account's contact address (expiry warnings from the CA go there). */
    email: string;
    /** The CA's ACME directory. Default: Let's Encrypt production. */
    directoryUrl?: string;
    /** PEM of the CA to trust for the directory's own HTTPS (a private CA, Pebble); default: the system's. Public, not a secret. */
    caBundlePem?: string;
}

export const LETS_ENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory";
export const LETS_ENCRYPT_STAGING_DIRECTORY = "https://acme-staging-v02.api.letsencrypt.org/directory";
/** The port of the ACME client's HTTP-01 responder in the container (127.0.0.1, or a pair node's bridge address), where haproxy.cfg routes the challenges. */
export const ACME_CHALLENGE_PORT = 8402;
/** The challenge path the CA fetches over plain HTTP (RFC 8555 section 8.3). */
export const ACME_CHALLENGE_PREFIX = "/.well-known/acme-challenge/";

const ACME_KEYS = ["domains", "email", "directoryUrl", "caBundlePem"] as const;
/** RFC 1123 labels, at least two of them; a leading "*." (wildcard) needs DNS-01, which this does not do. */
const DOMAIN = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
/** A local part of dot-separated atoms (no leading, trailing or doubled dot: CAs refuse those), then a DNS name. */
const EMAIL = /^(?=[^@]{1,64}@)[A-Za-z0-9_%+-]+(\.[A-Za-z0-9_%+-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$/;
/**
 * https://host[:port]/path: the host a DNS name or an IPv4 address, the path
 * of characters the renew script also accepts (templates/_acme-renew.sh
 * reads A-Z a-z 0-9 . _ : / , @ % + = -), nothing a shell could read otherwise.
 */
const HTTPS_URL =
    /^https:\/\/[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(:(\d{1,5}))?(\/[A-Za-z0-9._/-]*)?$/;
/** X.509's upper bound on a common name (the certificate's subject is the first domain). */
const MAX_COMMON_NAME = 64;
/** Let's Encrypt's limit on names per certificate. */
const MAX_DOMAINS = 100;

/** `tls.acme`'s rules: every problem at once, each naming its field. */
export function checkAcme(c: Checker, field: string, value: unknown): void {
    if (!isRecord(value)) {
        c.fail(field, `must be an object { domains, email, directoryUrl?, caBundlePem? } (got ${shown(value)})`);
        return;
    }
    c.knownKeys(field, value, ACME_KEYS);
    const domains = value.domains;
    if (!Array.isArray(domains) || domains.length === 0 || domains.length > MAX_DOMAINS) {
        c.fail(
            `${field}.domains`,
            `must list 1 to ${MAX_DOMAINS} DNS names the certificate is for, e.g. ["veza.example.com"] (got ${shown(domains)})`,
        );
    } else {
        const seen = new Set<string>();
        domains.forEach((domain, i) => {
            const at = `${field}.domains[${i}]`;
            if (typeof domain === "string" && domain.startsWith("*.")) {
                c.fail(
                    at,
                    `is a wildcard, which needs the DNS-01 challenge; HTTP-01 (what this uses) can only prove single names (got ${shown(domain)})`,
                );
            } else if (typeof domain !== "string" || !DOMAIN.test(domain)) {
                c.fail(at, `must be a DNS name of two or more labels of A-Z a-z 0-9 - (got ${shown(domain)})`);
            } else if (seen.has(domain.toLowerCase())) {
                c.fail(at, `lists ${domain} twice`);
            }
            if (typeof domain === "string") seen.add(domain.toLowerCase());
        });
        if (typeof domains[0] === "string" && domains[0].length > MAX_COMMON_NAME) {
            c.fail(
                `${field}.domains[0]`,
                `is the certificate's subject (its common name), which X.509 limits to ${MAX_COMMON_NAME} characters (got ${domains[0].length}): list a name of ${MAX_COMMON_NAME} or fewer first`,
            );
        }
    }
    c.matches(`${field}.email`, value.email, EMAIL, "must be an email address such as ops@example.com: the CA sends expiry warnings there");
    if (value.directoryUrl !== undefined) {
        c.matches(
            `${field}.directoryUrl`,
            value.directoryUrl,
            HTTPS_URL,
            `must be the CA's https:// ACME directory URL, e.g. "${LETS_ENCRYPT_STAGING_DIRECTORY}"`,
        );
        const port = typeof value.directoryUrl === "string" ? HTTPS_URL.exec(value.directoryUrl)?.[5] : undefined;
        if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) {
            c.fail(`${field}.directoryUrl`, `must have a port from 1 to 65535 (got ${shown(value.directoryUrl)})`);
        }
    }
    if (value.caBundlePem !== undefined) checkCaBundle(c, `${field}.caBundlePem`, value.caBundlePem);
}

/** The CA to trust for the directory: certificates lego can read, and nothing secret (it is stored in clear and world-readable). */
function checkCaBundle(c: Checker, field: string, bundle: unknown): void {
    if (typeof bundle !== "string" || !/-----BEGIN CERTIFICATE-----/.test(bundle)) {
        c.fail(field, "must be PEM certificates (-----BEGIN CERTIFICATE-----): the CA that signed the directory's HTTPS certificate");
        return;
    }
    if (/PRIVATE KEY-----/.test(bundle)) {
        c.fail(
            field,
            "holds a private key: the bundle is stored in the stack's state in clear and in a world-readable file in the container; give only the CA's certificates (value not shown)",
        );
        return;
    }
    (bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).forEach((pem, i) => {
        try {
            new X509Certificate(pem);
        } catch {
            c.fail(field, `certificate ${i + 1} of the bundle cannot be read as X.509 (lego would stop at it): paste the CA's PEM whole`);
        }
    });
}

/** The ACME client's settings as the renew script reads them (acme.env): plain KEY=value lines, every value checked by checkAcme. */
export function renderAcmeEnv(
    acme: AcmeArgs,
    paths: {
        certPath: string;
        adminSocket: string;
        stateDir: string;
        caBundlePath?: string;
        challengePort?: number;
        /**
         * Where the responder listens: 127.0.0.1 (the default) for one node; a
         * pair node's own bridge address, where both nodes' haproxy routes the
         * CA's fetches, never the VIP or any other address.
         */
        challengeAddress?: string;
    },
): string {
    const c = new Checker();
    checkAcme(c, "acme", acme);
    for (const key of ["certPath", "adminSocket", "stateDir", "caBundlePath"] as const) {
        if (key !== "caBundlePath" || paths[key] !== undefined) c.absolutePath(`paths.${key}`, paths[key]);
    }
    if (paths.challengePort !== undefined) c.integer("paths.challengePort", paths.challengePort, 1, 65535);
    if (paths.challengeAddress !== undefined)
        c.matches("paths.challengeAddress", paths.challengeAddress, IPV4_ADDRESS, "must be an IPv4 address (the node's on the bridge)");
    c.throwIfAny();
    const lines = [
        "# Managed by veza-haproxy (Pulumi): the ACME client's settings, read by veza-acme-renew.",
        `ACME_DOMAINS=${acme.domains.join(",")}`,
        `ACME_EMAIL=${acme.email}`,
        `ACME_DIRECTORY=${acme.directoryUrl ?? LETS_ENCRYPT_DIRECTORY}`,
        `ACME_CHALLENGE_ADDRESS=${paths.challengeAddress ?? "127.0.0.1"}:${paths.challengePort ?? ACME_CHALLENGE_PORT}`,
        `ACME_STATE_DIR=${paths.stateDir}`,
        `ACME_CERT_PATH=${paths.certPath}`,
        `ACME_ADMIN_SOCKET=${paths.adminSocket}`,
    ];
    if (paths.caBundlePath !== undefined) lines.push(`ACME_CA_BUNDLE=${paths.caBundlePath}`);
    return `${lines.join("\n")}\n`;
}
