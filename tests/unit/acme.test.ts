import { spawnSync } from "child_process";
import { readFileSync, rmSync } from "fs";
import * as path from "path";
import { AcmeArgs, checkAcme, renderAcmeEnv } from "../../components/acme";
import { Checker, SettingsError } from "../../components/checker";
import { loadTemplate } from "../../components/templates";
import { stepScripts } from "../../components/scripts";
import { findBinary, makeTempDir, makeTestCert, requireBinary } from "../support";

/** A certificate openssl made for this file: what a real CA bundle holds. */
const REAL_CERT = (() => {
    const dir = makeTempDir("veza-acme-unit-");
    try {
        return readFileSync(makeTestCert(dir).certPath, "utf8");
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
})();
const valid: AcmeArgs = { domains: ["veza.example.com", "www.veza.example.com"], email: "ops@example.com" };
const problems = (value: unknown) => {
    const c = new Checker();
    checkAcme(c, "tls.acme", value);
    return c.problems;
};

describe.each<[string, unknown, string[]]>([
    [
        "not an object",
        "veza.example.com",
        ['tls.acme must be an object { domains, email, directoryUrl?, caBundlePem? } (got "veza.example.com")'],
    ],
    [
        "no domains",
        { ...valid, domains: [] },
        ['tls.acme.domains must list 1 to 100 DNS names the certificate is for, e.g. ["veza.example.com"] (got [])'],
    ],
    [
        "a wildcard",
        { ...valid, domains: ["*.example.com"] },
        [
            'tls.acme.domains[0] is a wildcard, which needs the DNS-01 challenge; HTTP-01 (what this uses) can only prove single names (got "*.example.com")',
        ],
    ],
    [
        "a name with a shell character",
        { ...valid, domains: ["veza.example.com;reboot"] },
        ['tls.acme.domains[0] must be a DNS name of two or more labels of A-Z a-z 0-9 - (got "veza.example.com;reboot")'],
    ],
    [
        "a bare host name",
        { ...valid, domains: ["localhost"] },
        ['tls.acme.domains[0] must be a DNS name of two or more labels of A-Z a-z 0-9 - (got "localhost")'],
    ],
    [
        "a name twice, in another case",
        { ...valid, domains: ["veza.example.com", "VEZA.example.com"] },
        ["tls.acme.domains[1] lists VEZA.example.com twice"],
    ],
    [
        "an email without a domain",
        { ...valid, email: "ops" },
        ['tls.acme.email must be an email address such as ops@example.com: the CA sends expiry warnings there (got "ops")'],
    ],
    [
        "a directory over plain HTTP",
        { ...valid, directoryUrl: "http://acme.example.com/directory" },
        [
            'tls.acme.directoryUrl must be the CA\'s https:// ACME directory URL, e.g. "https://acme-staging-v02.api.letsencrypt.org/directory" (got "http://acme.example.com/directory")',
        ],
    ],
    [
        "a directory URL with a query string",
        { ...valid, directoryUrl: "https://acme.example.com/dir?x=$(id)" },
        [
            'tls.acme.directoryUrl must be the CA\'s https:// ACME directory URL, e.g. "https://acme-staging-v02.api.letsencrypt.org/directory" (got "https://acme.example.com/dir?x=$(id)")',
        ],
    ],
    [
        "a CA bundle that is not PEM",
        { ...valid, caBundlePem: "MIIB..." },
        [
            "tls.acme.caBundlePem must be PEM certificates (-----BEGIN CERTIFICATE-----): the CA that signed the directory's HTTPS certificate",
        ],
    ],
    [
        "a first domain longer than a certificate's common name may be",
        { ...valid, domains: [`${"a".repeat(57)}.example`, "veza.example.com"] },
        [
            "tls.acme.domains[0] is the certificate's subject (its common name), which X.509 limits to 64 characters (got 65): list a name of 64 or fewer first",
        ],
    ],
    ...[".ops@example.com", "ops.@example.com", "o..ps@example.com"].map((email): [string, unknown, string[]] => [
        `an email CAs refuse (${email})`,
        { ...valid, email },
        [
            `tls.acme.email must be an email address such as ops@example.com: the CA sends expiry warnings there (got ${JSON.stringify(email)})`,
        ],
    ]),
    ...["https://.../dir", "https://ca.example/~acme/dir", "https://-ca.example/dir"].map((directoryUrl): [string, unknown, string[]] => [
        `a directory URL the renew script or DNS cannot use (${directoryUrl})`,
        { ...valid, directoryUrl },
        [
            `tls.acme.directoryUrl must be the CA's https:// ACME directory URL, e.g. "https://acme-staging-v02.api.letsencrypt.org/directory" (got ${JSON.stringify(directoryUrl)})`,
        ],
    ]),
    ...["https://ca.example:0/dir", "https://ca.example:70000/dir"].map((directoryUrl): [string, unknown, string[]] => [
        `a directory port out of range (${directoryUrl})`,
        { ...valid, directoryUrl },
        [`tls.acme.directoryUrl must have a port from 1 to 65535 (got ${JSON.stringify(directoryUrl)})`],
    ]),
    [
        "a CA bundle that is not X.509",
        { ...valid, caBundlePem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" },
        ["tls.acme.caBundlePem certificate 1 of the bundle cannot be read as X.509 (lego would stop at it): paste the CA's PEM whole"],
    ],
    [
        "a CA bundle that carries a private key",
        { ...valid, caBundlePem: `${REAL_CERT}-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n` },
        [
            "tls.acme.caBundlePem holds a private key: the bundle is stored in the stack's state in clear and in a world-readable file in the container; give only the CA's certificates (value not shown)",
        ],
    ],
    [
        "a misspelt key",
        { ...valid, directoryURL: "https://x.example/dir" },
        ["tls.acme.directoryURL is not a known setting: did you mean directoryUrl?"],
    ],
])("tls.acme refused: %s", (_case, value, expected) => {
    test("with the exact messages", () => {
        expect(problems(value)).toEqual(expected);
    });
});

describe("tls.acme accepted", () => {
    test.each<[string, AcmeArgs]>([
        ["names and an email", valid],
        ["Let's Encrypt staging", { ...valid, directoryUrl: "https://acme-staging-v02.api.letsencrypt.org/directory" }],
        [
            "a private CA on a port, with its bundle",
            {
                ...valid,
                directoryUrl: "https://ca.internal:14000/dir",
                caBundlePem: REAL_CERT,
            },
        ],
    ])("%s", (_case, value) => {
        expect(problems(value)).toEqual([]);
    });
});

describe("renderAcmeEnv", () => {
    test("checks its values as the component does: an exported helper renders nothing the renew script would refuse", () => {
        expect(() =>
            renderAcmeEnv(
                { ...valid, email: "ops@example.com\nACME_DIRECTORY=https://evil.example/dir" },
                {
                    certPath: "/etc/haproxy/certs/veza.pem",
                    adminSocket: "relative.sock",
                    stateDir: "/var/lib/veza-acme",
                    challengeAddress: "0.0.0.0\nACME_CERT_PATH=/etc/passwd",
                },
            ),
        ).toThrow(
            new SettingsError([
                'acme.email must be an email address such as ops@example.com: the CA sends expiry warnings there (got "ops@example.com\\nACME_DIRECTORY=https://evil.example/dir")',
                'paths.adminSocket must be an absolute path of A-Z a-z 0-9 . _ - segments without ".." (got "relative.sock")',
                'paths.challengeAddress must be an IPv4 address (the node\'s on the bridge) (got "0.0.0.0\\nACME_CERT_PATH=/etc/passwd")',
            ]),
        );
    });

    test("a pair node's responder listens on the node's own address only", () => {
        const env = renderAcmeEnv(valid, {
            certPath: "/etc/haproxy/certs/veza.pem",
            adminSocket: "/run/haproxy/admin.sock",
            stateDir: "/var/lib/veza-acme",
            challengeAddress: "198.18.0.10",
        });
        expect(env.split("\n").filter((line) => line.startsWith("ACME_CHALLENGE_ADDRESS="))).toEqual([
            "ACME_CHALLENGE_ADDRESS=198.18.0.10:8402",
        ]);
    });

    test("is the renew script's settings, Let's Encrypt production by default, the responder on loopback", () => {
        expect(
            renderAcmeEnv(valid, {
                certPath: "/etc/haproxy/certs/veza.pem",
                adminSocket: "/run/haproxy/admin.sock",
                stateDir: "/var/lib/veza-acme",
            }),
        ).toBe(
            [
                "# Managed by veza-haproxy (Pulumi): the ACME client's settings, read by veza-acme-renew.",
                "ACME_DOMAINS=veza.example.com,www.veza.example.com",
                "ACME_EMAIL=ops@example.com",
                "ACME_DIRECTORY=https://acme-v02.api.letsencrypt.org/directory",
                "ACME_CHALLENGE_ADDRESS=127.0.0.1:8402",
                "ACME_STATE_DIR=/var/lib/veza-acme",
                "ACME_CERT_PATH=/etc/haproxy/certs/veza.pem",
                "ACME_ADMIN_SOCKET=/run/haproxy/admin.sock",
                "",
            ].join("\n"),
        );
    });
});

const describeWithShellcheck = requireBinary("shellcheck");
describeWithShellcheck("the renew script (templates/_acme-renew.sh)", () => {
    test("passes shellcheck and bash -n", () => {
        const file = path.join(__dirname, "..", "..", "templates", "_acme-renew.sh");
        const check = spawnSync(findBinary("shellcheck") as string, ["-s", "bash", file], { encoding: "utf8" });
        expect({ status: check.status, out: check.stdout }).toEqual({ status: 0, out: "" });
        expect(spawnSync("bash", ["-n", file]).status).toBe(0);
    });
});

describe("the renewal timer and its service (installed by the ACME step)", () => {
    const unit = (text: string) =>
        Object.fromEntries(
            text
                .split("\n")
                .filter((line) => /^[A-Za-z]+=/.test(line))
                .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
        );

    test("the timer fires twice a day with 3 hours of jitter, and catches up a run missed while the container was off", () => {
        expect(unit(loadTemplate("_acme-renew.timer"))).toEqual({
            Description: "veza-haproxy: renew the ACME certificate twice a day",
            OnCalendar: "*-*-* 00,12:00:00",
            RandomizedDelaySec: "3h",
            Persistent: "true",
            WantedBy: "timers.target",
        });
    });

    test("the service runs the renew script the step installs, with the settings the step writes, logging under veza-acme", () => {
        const service = unit(loadTemplate("_acme-renew.service"));
        expect(service).toMatchObject({
            Type: "oneshot",
            ExecStart: "/usr/local/lib/veza-haproxy/acme-renew.sh /etc/veza-haproxy/acme.env",
            SyslogIdentifier: "veza-acme",
        });
        const create = stepScripts("acme").create;
        expect(create).toContain("renew=/usr/local/lib/veza-haproxy/acme-renew.sh\n");
        expect(create).toContain("env_file=/etc/veza-haproxy/acme.env\n");
        // Both unit files and the script are embedded whole, as constant text.
        expect(create).toContain(loadTemplate("_acme-renew.timer"));
        expect(create).toContain(loadTemplate("_acme-renew.service"));
        expect(create).toContain(loadTemplate("_acme-renew.sh"));
    });
});
