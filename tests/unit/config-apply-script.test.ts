/**
 * The config step's in-container script (templates/_config-in-container.sh)
 * run for real under bash and dash, with a real `haproxy -c`, flock, head and
 * sha256sum, and stand-ins only for what needs a container: systemctl (a
 * state directory plays the service) and the master CLI (socat answers
 * `show proc` from that state, or stays silent). Faults are real too: a disk
 * that is full is /dev/full behind the file the script writes.
 */
import { spawn, spawnSync } from "child_process";
import { createHash } from "crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { loadTemplate } from "../../components/templates";
import { findBinary, requireBinary } from "../support";

const SCRIPT = loadTemplate("_config-in-container.sh");
// Checked by the real `haproxy -c`, never started: the listener's port is not bound.
const CONFIG_A =
    "defaults\n    mode http\n    timeout client 1s\n    timeout server 1s\n    timeout connect 1s\nfrontend f\n    bind 127.0.0.1:1\n";
const CONFIG_B = `${CONFIG_A}# B\n`;
const sha = (text: string) => createHash("sha256").update(text).digest("hex");

const FAKE_SYSTEMCTL = `#!/bin/sh
echo "systemctl $*" >> "$FAKE/calls"
case "$1" in
    is-active) [ -f "$FAKE/active" ] ;;
    reload)
        [ -f "$FAKE/reload-sleep" ] && sleep "$(cat "$FAKE/reload-sleep")"
        if [ -f "$FAKE/reload-works" ]; then
            echo $(( $(cat "$FAKE/reloads") + 1 )) > "$FAKE/reloads"
            echo $(( $(cat "$FAKE/worker") + 1 )) > "$FAKE/worker"
            rm -f "$FAKE/serving-in-old"
        fi ;;
    show) case "$*" in *MainPID*) echo 0 ;; *LimitNOFILE*) echo infinity ;; esac ;;
esac
exit 0
`;
// Answers "show proc" like HAProxy's master CLI, from the state directory; silent when "mute" exists.
// 2.6 lists the serving worker under "# workers" (reloads 0) and a lingering
// one under "# old workers"; with "serving-in-old", the serving worker is
// listed as 3.1+ does after a failed reload: under "# old workers", reloads 1
// (src/mworker.c, cli_io_handler_show_proc).
const FAKE_SOCAT = `#!/bin/sh
cat > /dev/null
[ -f "$FAKE/mute" ] && exit 0
worker=$(cat "$FAKE/worker")
printf '#<PID>          <type>          <reloads>       <uptime>        <version>\\n'
printf '1               master          %s [failed: 0]   0d00h00m05s     2.6.12\\n' "$(cat "$FAKE/reloads")"
if [ -f "$FAKE/serving-in-old" ]; then
    printf '# workers\\n# old workers\\n7               worker          3               0d00h00m09s     3.2.26\\n'
    printf '%s              worker          1               0d00h00m05s     3.2.26\\n' "$worker"
else
    printf '# workers\\n%s              worker          0               0d00h00m05s     2.6.12\\n' "$worker"
    printf '# old workers\\n7               worker          2               0d00h00m09s     2.6.12\\n'
fi
`;

interface Box {
    dir: string;
    cfg: string;
    fake: string;
    shell: string;
}

interface Run {
    code: number;
    stderr: string;
    ms: number;
}

function makeBox(shell: string): Box {
    const dir = mkdtempSync(path.join(tmpdir(), "veza-apply-"));
    const bin = path.join(dir, "bin");
    const fake = path.join(dir, "state");
    mkdirSync(bin);
    mkdirSync(fake);
    writeFileSync(path.join(bin, "systemctl"), FAKE_SYSTEMCTL, { mode: 0o755 });
    writeFileSync(path.join(bin, "socat"), FAKE_SOCAT, { mode: 0o755 });
    writeFileSync(path.join(bin, "journalctl"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    writeFileSync(path.join(bin, "chgrp"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    writeFileSync(path.join(bin, "haproxy"), `#!/bin/sh\nexec ${findBinary("haproxy")} "$@"\n`, { mode: 0o755 });
    writeFileSync(path.join(fake, "reloads"), "3\n");
    writeFileSync(path.join(fake, "worker"), "100\n");
    writeFileSync(path.join(fake, "calls"), "");
    const cfg = path.join(dir, "haproxy.cfg");
    writeFileSync(cfg, CONFIG_A);
    writeFileSync(path.join(fake, "active"), "");
    return { dir, cfg, fake, shell };
}

/** Runs the script as the outer step does: positional arguments, the config on stdin. */
function apply(box: Box, config: string, opts: { wait?: number; bytes?: number; openFiles?: number; stdin?: string } = {}): Promise<Run> {
    const args = [
        box.cfg,
        sha(config),
        "none",
        path.join(box.dir, "master.sock"),
        String(opts.wait ?? 2),
        String(opts.bytes ?? Buffer.byteLength(config)),
        String(opts.openFiles ?? 1000),
    ];
    const started = Date.now();
    return new Promise((resolve, reject) => {
        const child = spawn(box.shell, ["-c", SCRIPT, "veza-config", ...args], {
            env: { PATH: `${path.join(box.dir, "bin")}:/usr/bin:/bin:/usr/sbin:/sbin`, FAKE: box.fake },
            stdio: ["pipe", "ignore", "pipe"],
        });
        let stderr = "";
        child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
        child.on("error", reject);
        child.on("close", (code) => resolve({ code: code ?? 128, stderr, ms: Date.now() - started }));
        child.stdin.on("error", () => undefined);
        child.stdin.end(opts.stdin ?? config);
    });
}

const calls = (box: Box) => readFileSync(path.join(box.fake, "calls"), "utf8").trim().split("\n").filter(Boolean);
const reloads = (box: Box) => calls(box).filter((c) => c === "systemctl reload haproxy").length;

const describeWithHaproxy = requireBinary("haproxy", "flock", "dash", "bash");
describeWithHaproxy.each([
    ["dash", "/bin/dash"],
    ["bash", "/bin/bash"],
])("the config step in the container, under %s", (_name, shell) => {
    let box: Box;
    beforeEach(() => {
        box = makeBox(shell);
        writeFileSync(path.join(box.fake, "reload-works"), "");
    });
    afterEach(() => rmSync(box.dir, { recursive: true, force: true }));

    test("a proven reload: the master's reload count and worker both moved; exit 0 and the stamp written", async () => {
        const r = await apply(box, CONFIG_B);
        expect(r.stderr).toContain("reloaded: worker 100 -> 101 (master reload 4)");
        expect(r.code).toBe(0);
        expect(readFileSync(box.cfg, "utf8")).toBe(CONFIG_B);
        expect(readFileSync(`${box.cfg}.veza-stamp`, "utf8")).toBe(`${sha(CONFIG_B)} none\n`);
    });

    test("every run leaves its exit code and end time for the node metrics: 0 after an apply, then 3 after a failed reload", async () => {
        const [result, seconds] = [`${box.cfg}.veza-result`, () => Math.floor(Date.now() / 1000)];
        const started = seconds();
        expect((await apply(box, CONFIG_B)).code).toBe(0);
        const [ok, okAt] = readFileSync(result, "utf8").trim().split(" ").map(Number);
        rmSync(path.join(box.fake, "reload-works"));
        expect((await apply(box, `${CONFIG_A}# C\n`, { wait: 1 })).code).toBe(3);
        const [failed, failedAt] = readFileSync(result, "utf8").trim().split(" ").map(Number);
        expect([ok, failed]).toEqual([0, 3]);
        expect(okAt).toBeGreaterThanOrEqual(started);
        expect(failedAt).toBeGreaterThanOrEqual(okAt);
        expect(failedAt).toBeLessThanOrEqual(seconds());
    });

    test("HAProxy 3.1+ after a failed reload lists the serving worker under '# old workers': it is still found, and the next reload proven", async () => {
        writeFileSync(path.join(box.fake, "serving-in-old"), "");
        const r = await apply(box, CONFIG_B);
        expect(r.stderr).toContain("reloaded: worker 100 -> 101 (master reload 4)");
        expect(r.code).toBe(0);
    });

    test("a config edited on the box since the last apply is not replaced silently: a warning, and the edit kept beside it", async () => {
        expect((await apply(box, CONFIG_B)).code).toBe(0);
        const edited = `${CONFIG_B}# an operator's 3 a.m. change\n`;
        writeFileSync(box.cfg, edited);
        const r = await apply(box, `${CONFIG_A}# C\n`);
        expect(r.code).toBe(0);
        expect(r.stderr).toContain(
            `warning: ${box.cfg} was changed on the box since the last apply; this apply replaces it, the edited file is kept as ${box.cfg}.veza-local-edit`,
        );
        expect(readFileSync(`${box.cfg}.veza-local-edit`, "utf8")).toBe(edited);
        expect(readFileSync(box.cfg, "utf8")).toBe(`${CONFIG_A}# C\n`);
    });

    // The config holds the stats password and the cookie secret, and a step's
    // stderr lands in the state in clear: an unsalted digest of it would let
    // anyone holding the state test password guesses offline.
    test("no digest of a config, applied, edited or arriving, is ever printed", async () => {
        expect((await apply(box, CONFIG_B)).code).toBe(0);
        const edited = `${CONFIG_B}# an operator's 3 a.m. change\n`;
        writeFileSync(box.cfg, edited);
        const next = `${CONFIG_A}# C\n`;
        const replaced = await apply(box, next);
        const damaged = await apply(box, CONFIG_B, { stdin: CONFIG_B.slice(0, 20) });
        const printed = replaced.stderr + damaged.stderr;
        expect(printed).toContain("changed on the box");
        expect(printed).toContain("config arrived damaged");
        for (const text of [CONFIG_B, edited, next, CONFIG_B.slice(0, 20)]) expect(printed).not.toContain(sha(text));
    });

    test("an apply over the config it applied itself warns of nothing", async () => {
        expect((await apply(box, CONFIG_B)).code).toBe(0);
        const r = await apply(box, `${CONFIG_A}# C\n`);
        expect(r.code).toBe(0);
        expect(r.stderr).not.toContain("changed on the box");
        expect(existsSync(`${box.cfg}.veza-local-edit`)).toBe(false);
    });

    // 10. Success is proven, never inferred from a missing value.
    test("a master that does not answer: nothing touched, no reload sent, exit 7", async () => {
        writeFileSync(path.join(box.fake, "mute"), "");
        const r = await apply(box, CONFIG_B, { wait: 1 });
        expect(r.stderr).toContain("did not answer within 1s: a reload could not be proven, so nothing was touched");
        expect(r.code).toBe(7);
        expect(readFileSync(box.cfg, "utf8")).toBe(CONFIG_A);
        expect(reloads(box)).toBe(0);
        expect(existsSync(`${box.cfg}.veza-stamp`)).toBe(false);
    });

    test("a reload that brings up no new worker is not a success: previous config restored, exit 3, no stamp", async () => {
        rmSync(path.join(box.fake, "reload-works"));
        const r = await apply(box, CONFIG_B, { wait: 1 });
        expect(r.stderr).toContain("reload did not bring up a new worker within 1s; restoring the previous config");
        expect(r.code).toBe(3);
        expect(readFileSync(box.cfg, "utf8")).toBe(CONFIG_A);
        expect(reloads(box)).toBe(2); // the attempt, then the restore
        expect(existsSync(`${box.cfg}.veza-stamp`)).toBe(false);
    });

    // 11. Two applies at once.
    test("two applies at once take turns: the second waits for the lock, both apply their own checked bytes", async () => {
        writeFileSync(path.join(box.fake, "reload-sleep"), "1");
        const first = apply(box, CONFIG_B, { wait: 5 });
        await new Promise((r) => setTimeout(r, 300));
        const configC = `${CONFIG_A}# C\n`;
        const second = await apply(box, configC, { wait: 5 });
        const one = await first;
        expect(one.code).toBe(0);
        expect(second.stderr).toContain("another apply is running (it holds");
        expect(second.code).toBe(0);
        expect(readFileSync(box.cfg, "utf8")).toBe(configC);
        expect(readFileSync(`${box.cfg}.veza-stamp`, "utf8")).toBe(`${sha(configC)} none\n`);
    }, 20_000);

    test("an apply that outlasts the other's wait: the other touches nothing and says so, exit 5", async () => {
        writeFileSync(path.join(box.fake, "reload-sleep"), "2");
        const first = apply(box, CONFIG_B, { wait: 5 });
        await new Promise((r) => setTimeout(r, 300));
        const second = await apply(box, `${CONFIG_A}# C\n`, { wait: 1 });
        expect(second.stderr).toContain("another apply still holds");
        expect(second.code).toBe(5);
        expect((await first).code).toBe(0);
        expect(readFileSync(box.cfg, "utf8")).toBe(CONFIG_B);
    }, 20_000);

    // 12. Exit codes under faults.
    test("a full disk while receiving says so (exit 6), not 'damaged', and leaves the running config", async () => {
        symlinkSync("/dev/full", `${box.cfg}.veza-new`);
        const r = await apply(box, CONFIG_B);
        expect(r.stderr).toContain("could not write");
        expect(r.stderr).not.toContain("damaged");
        expect(r.code).toBe(6);
        expect(readFileSync(box.cfg, "utf8")).toBe(CONFIG_A);
        expect(reloads(box)).toBe(0);
    });

    test("a stamp that cannot be written after a good reload is a warning: the config is live, exit 0", async () => {
        symlinkSync("/dev/full", `${box.cfg}.veza-stamp`);
        const r = await apply(box, CONFIG_B);
        expect(r.stderr).toContain("warning: the config is live but its stamp could not be written");
        expect(r.code).toBe(0);
        expect(readFileSync(box.cfg, "utf8")).toBe(CONFIG_B);
    });

    test("input cut short is 'damaged' (exit 1), the running config untouched", async () => {
        const r = await apply(box, CONFIG_B, { stdin: CONFIG_B.slice(0, 20) });
        expect(r.stderr).toContain(`config arrived damaged (20 of ${Buffer.byteLength(CONFIG_B)} bytes`);
        expect(r.code).toBe(1);
        expect(readFileSync(box.cfg, "utf8")).toBe(CONFIG_A);
    });

    test("a 20 MiB config is refused by its declared size before a byte is read (exit 8)", async () => {
        const big = 20 * 1024 * 1024;
        const r = await apply(box, CONFIG_B, { bytes: big, stdin: "x".repeat(big) });
        expect(r.stderr).toContain(`the config is ${big} bytes, over the 4194304-byte limit: not read, nothing touched`);
        expect(r.code).toBe(8);
        expect(existsSync(`${box.cfg}.veza-new`)).toBe(false);
    });

    test("more open files than haproxy may hold: refused before the swap (exit 9), naming maxConnections", async () => {
        const limit = Number(/^Max open files\s+\S+\s+(\d+)/m.exec(readFileSync("/proc/1/limits", "utf8"))?.[1]);
        expect(limit).toBeGreaterThan(0);
        const r = await apply(box, CONFIG_B, { openFiles: limit + 1 });
        expect(r.stderr).toContain(`maxConnections needs about ${limit + 1} open files`);
        expect(r.code).toBe(9);
        expect(readFileSync(box.cfg, "utf8")).toBe(CONFIG_A);
    });
});

describe("the script's own text", () => {
    test("defines each exit code once by name, documents exactly those, uses every one, and never exits with a bare number", () => {
        const defined = [...SCRIPT.matchAll(/\b(EXIT_\w+)=(\d+)\b/g)];
        const names = defined.map((m) => m[1]);
        const codes = defined.map((m) => Number(m[2])).sort((a, b) => a - b);
        const documented = [...SCRIPT.matchAll(/^#\s+(\d+) /gm)].map((m) => Number(m[1]));
        const used = [...new Set([...SCRIPT.matchAll(/"\$(EXIT_\w+)"/g)].map((m) => m[1]))].sort();
        expect(codes).toEqual(documented);
        expect(new Set(names).size).toBe(names.length);
        expect(used).toEqual([...names].sort());
        expect(SCRIPT).not.toMatch(/\bexit \d/);
        expect(spawnSync("dash", ["-n"], { input: SCRIPT }).status).toBe(0);
    });
});
