import { spawnSync } from "child_process";
import { mkdtempSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { configStep, containerStep, tlsStep } from "../../components";
import { findBinary, requireBinary } from "../support/requirements";

const steps = {
    container: containerStep({ containerName: "haproxy", image: "images:debian/12", profiles: ["default", "veza"], adminSocketPath: "/run/haproxy/admin.sock", serverStateFile: "/var/lib/haproxy/server-state" }),
    config: configStep({ containerName: "lb-marker-c0ffee", config: "# config-marker-55e1\n" }),
    tls: tlsStep({ containerName: "haproxy", certPath: "/srv/cert-path-marker.pem", certificatePem: "cert-marker-7f3a", privateKeyPem: "key-marker-91bc" }),
};
const scripts: [string, string][] = [
    ["container create", steps.container.create],
    ["container delete", steps.container.delete as string],
    ["config apply", steps.config.create],
    ["tls push", steps.tls.create],
];

describe("provisioning scripts", () => {
    test.each(scripts)("%s is POSIX sh that bash -n and dash -n accept", (_name, script) => {
        for (const shell of ["bash", "dash"]) {
            const check = spawnSync(shell, ["-n"], { input: script, encoding: "utf8" });
            expect(check.stderr).toBe("");
            expect(check.status).toBe(0);
        }
    });

    test.each(scripts)("%s holds no data: values only arrive by environment or stdin", (_name, script) => {
        for (const value of ["images:debian/12", "lb-marker-c0ffee", "config-marker-55e1", "cert-path-marker", "cert-marker-7f3a", "key-marker-91bc", "veza,"]) {
            expect(script).not.toContain(value);
        }
        expect(script).not.toMatch(/\{\{|\}\}/);
    });

    test("every step's environment uses the VEZA_ prefix (one AcceptEnv line over SSH)", () => {
        for (const step of Object.values(steps)) {
            for (const key of Object.keys(step.environment)) expect(key).toMatch(/^VEZA_[A-Z0-9_]+$/);
        }
        expect(steps.container.environment.VEZA_PROFILES).toBe("default,veza");
    });

    test("a missing variable fails with the AcceptEnv hint, before touching incus", () => {
        const dir = mkdtempSync(path.join(tmpdir(), "veza-env-"));
        try {
            // A fake incus that records any call: none may happen.
            const fake = path.join(dir, "incus");
            writeFileSync(fake, `#!/bin/sh\necho called >> "${dir}/calls"\n`, { mode: 0o755 });
            const run = spawnSync("/bin/sh", ["-c", steps.config.create], { encoding: "utf8", env: { PATH: `${dir}:/usr/bin:/bin` }, input: "" });
            expect(run.status).toBe(1);
            expect(run.stderr).toContain("environment variable VEZA_CONTAINER is not set");
            expect(run.stderr).toContain('add "AcceptEnv VEZA_*" to its sshd_config');
            expect(spawnSync("test", ["-e", path.join(dir, "calls")]).status).toBe(1);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});

const describeWithShellcheck = requireBinary("shellcheck");
describeWithShellcheck("shellcheck", () => {
    test.each(scripts)("%s passes shellcheck -s sh", (_name, script) => {
        const check = spawnSync(findBinary("shellcheck") as string, ["-s", "sh", "-"], { input: script, encoding: "utf8" });
        expect(check.stdout).toBe("");
        expect(check.status).toBe(0);
    });
});
