import { Checker, shown } from "./checker";

/*
 * The SSH path to the Incus host (and its bastion): which hosts, ports and
 * pinned host keys are accepted, as the command provider will use them.
 */

/** What the SSH host key must look like: one public key line as in known_hosts/authorized_keys. */
const HOST_KEY = /^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}( [^\r\n]*)?$/;
const SSH_HOST = /^[A-Za-z0-9]([A-Za-z0-9.:-]{0,252})$/;

export interface SshTarget {
    host?: unknown;
    port?: unknown;
    hostKey?: unknown;
    /** The bastion (connection.proxy): checked by the same rules. */
    proxy?: SshTarget;
}

/**
 * The checked fields of a connection (no key or password): the host's, and
 * the bastion's when there is one (a bastion has no bastion of its own:
 * ProxyConnection, remote/proxyConnection.go).
 */
export function sshTargetOf(c: { host?: unknown; port?: unknown; hostKey?: unknown; proxy?: unknown }): SshTarget {
    const proxy = c.proxy as SshTarget | undefined | null;
    return {
        host: c.host,
        port: c.port,
        hostKey: c.hostKey,
        ...(proxy == null ? {} : { proxy: { host: proxy.host, port: proxy.port, hostKey: proxy.hostKey } }),
    };
}

/**
 * @pulumi/command accepts any host key when `hostKey` is unset
 * (pulumi/pulumi-command provider/pkg/provider/remote/connection.go,
 * SSHConfig: ssh.InsecureIgnoreHostKey) and pins the one given, parsed with
 * ssh.ParseAuthorizedKey, with HostKeyAlgorithms limited to its type. An
 * ssh-rsa key would pin the SHA-1 "ssh-rsa" signature, which OpenSSH 8.8+
 * servers no longer offer, so only ed25519 and ECDSA keys are accepted.
 */
export function checkSshTarget(target: SshTarget, insecure: boolean): void {
    const c = new Checker();
    checkSshEnd(c, "connection", target, insecure, {
        host: "the Incus host's DNS name or IP address",
        missingKey:
            "must be set to the Incus host's SSH public key line (stack config haproxy:incusHost.hostKey), " +
            "e.g. the contents of /etc/ssh/ssh_host_ed25519_key.pub on that host: without it any host key is accepted and whoever " +
            "answers in its place gets root commands, the TLS key and the stats password. To run unverified anyway, set insecureSkipHostKeyCheck: true",
    });
    // The provider treats a bastion's host key as the main connection's (remote/proxyConnection.go embeds connectionBase).
    if (target.proxy !== undefined && target.proxy !== null) {
        checkSshEnd(c, "connection.proxy", target.proxy, insecure, {
            host: "the bastion's DNS name or IP address",
            missingKey:
                "must be set to the bastion's SSH public key line, e.g. the contents of /etc/ssh/ssh_host_ed25519_key.pub on that host: " +
                "without it any host key is accepted, and whoever answers in its place sees every command and secret the steps send. " +
                "To run unverified anyway, set insecureSkipHostKeyCheck: true",
        });
    }
    c.throwIfAny();
}

/**
 * Why a host key line that looks right is not a whole key, or undefined: its
 * blob (SSH wire format: length-prefixed strings) must name the same type as
 * the line and hold exactly that type's key, as `ssh-keygen -l` reads it. A
 * label that does not match its blob would get round the no-ssh-rsa rule.
 */
export function hostKeyBlobProblem(line: string): string | undefined {
    const [type, base64] = line.split(" ");
    const blob = Buffer.from(base64, "base64");
    const fields: Buffer[] = [];
    for (let at = 0; at < blob.length;) {
        if (at + 4 > blob.length) return "its key data is cut short";
        const length = blob.readUInt32BE(at);
        if (at + 4 + length > blob.length) return "its key data is cut short";
        fields.push(blob.subarray(at + 4, at + 4 + length));
        at += 4 + length;
    }
    const named = fields[0]?.toString("latin1");
    if (named !== type) return `its key data is ${named === undefined ? "empty" : `a ${JSON.stringify(named)} key`}, not ${type}`;
    const sizes: Record<string, number[]> = {
        "ssh-ed25519": [32],
        "ecdsa-sha2-nistp256": [8, 65],
        "ecdsa-sha2-nistp384": [8, 97],
        "ecdsa-sha2-nistp521": [8, 133],
    };
    const want = sizes[type];
    const got = fields.slice(1).map((f) => f.length);
    if (want === undefined || JSON.stringify(got) !== JSON.stringify(want)) return `its key data is not a whole ${type} key`;
    return undefined;
}

/** One end of the SSH path (the Incus host, or the bastion before it): its host, port and pinned host key. */
function checkSshEnd(c: Checker, field: string, end: SshTarget, insecure: boolean, say: { host: string; missingKey: string }): void {
    c.matches(`${field}.host`, end.host, SSH_HOST, `must be ${say.host}`);
    if (end.port !== undefined) c.port(`${field}.port`, end.port);
    if (end.hostKey === undefined || end.hostKey === "") {
        if (!insecure) c.fail(`${field}.hostKey`, say.missingKey);
    } else {
        c.matches(
            `${field}.hostKey`,
            end.hostKey,
            HOST_KEY,
            'must be one public key line, "ssh-ed25519 AAAA..." or "ecdsa-sha2-nistp256 AAAA..." (ssh-rsa host keys are not accepted: the provider would pin SHA-1 signatures)',
        );
        const problem = typeof end.hostKey === "string" && HOST_KEY.test(end.hostKey) ? hostKeyBlobProblem(end.hostKey) : undefined;
        if (problem !== undefined) {
            c.fail(
                `${field}.hostKey`,
                `is not a usable public key: ${problem} (ssh-keygen -l refuses it too); copy the whole line from the host's /etc/ssh/ssh_host_ed25519_key.pub (got ${shown(end.hostKey)})`,
            );
        }
    }
}
