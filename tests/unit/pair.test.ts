/**
 * The load balancer pair's pure core (components/pair.ts): exact messages for
 * bad `pair` inputs, the warning for a pair on one host, and keepalived.conf,
 * pinned by a golden file and checked by the real `keepalived -t`.
 */
import { spawnSync } from "child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";
import { Checker } from "../../components/checker";
import { checkPair, KeepalivedView, pairNodeNames, pairWarnings, renderKeepalivedConfig } from "../../components/pair";
import { loadTemplate } from "../../components/templates";
import { findBinary, requireBinary } from "../support";

const problems = (pair: unknown) => {
    const c = new Checker();
    checkPair(c, "pair", pair);
    return c.problems;
};

describe("pair inputs", () => {
    test.each([
        [{ vip: "198.18.0.10/24" }],
        [{ vip: "198.18.0.10/24", targets: ["node-a", "node-b"], virtualRouterId: 7 }],
        [{ vip: "10.0.0.1/8" }],
    ])("%j is accepted", (pair) => {
        expect(problems(pair)).toEqual([]);
    });

    describe.each([
        ["not an object", "198.18.0.10/24", ['pair must be an object such as { vip: "198.18.0.10/24" } (got "198.18.0.10/24")']],
        [
            "no prefix",
            { vip: "198.18.0.10" },
            ['pair.vip must be an IPv4 address with its prefix length, such as "198.18.0.10/24" (got "198.18.0.10")'],
        ],
        [
            "an octet over 255",
            { vip: "198.18.0.300/24" },
            ['pair.vip must be an IPv4 address with its prefix length, such as "198.18.0.10/24" (got "198.18.0.300/24")'],
        ],
        [
            "a leading zero",
            { vip: "198.18.0.010/24" },
            ['pair.vip must be an IPv4 address with its prefix length, such as "198.18.0.10/24" (got "198.18.0.010/24")'],
        ],
        [
            "a /32",
            { vip: "198.18.0.10/32" },
            ['pair.vip must have a prefix length from /8 to /30: the subnet the nodes share (got "198.18.0.10/32")'],
        ],
        [
            "loopback",
            { vip: "127.0.0.10/8" },
            ['pair.vip must be a unicast address outside 0.0.0.0/8, 127.0.0.0/8 and 224.0.0.0/3 (got "127.0.0.10/8")'],
        ],
        [
            "multicast",
            { vip: "224.0.0.18/24" },
            ['pair.vip must be a unicast address outside 0.0.0.0/8, 127.0.0.0/8 and 224.0.0.0/3 (got "224.0.0.18/24")'],
        ],
        [
            "the network address",
            { vip: "198.18.0.0/24" },
            ['pair.vip must not be the network or broadcast address of its /24 (got "198.18.0.0/24")'],
        ],
        [
            "the broadcast address",
            { vip: "198.18.0.255/24" },
            ['pair.vip must not be the network or broadcast address of its /24 (got "198.18.0.255/24")'],
        ],
        [
            "one target",
            { vip: "198.18.0.10/24", targets: ["node-a"] },
            ['pair.targets must be two Incus cluster members, one per node, such as ["node-a", "node-b"] (got ["node-a"])'],
        ],
        [
            "the same target twice",
            { vip: "198.18.0.10/24", targets: ["node-a", "node-a"] },
            ['pair.targets must name two different cluster members: one host would take both nodes down (got ["node-a","node-a"])'],
        ],
        [
            "a target that is not a member name",
            { vip: "198.18.0.10/24", targets: ["node-a", "node b"] },
            ['pair.targets[1] must be an Incus cluster member name: letters, digits, . and - (got "node b")'],
        ],
        [
            "a router id of 0",
            { vip: "198.18.0.10/24", virtualRouterId: 0 },
            ["pair.virtualRouterId must be an integer from 1 to 255 (got 0)"],
        ],
        ["a typo", { vip: "198.18.0.10/24", target: ["a", "b"] }, ["pair.target is not a known setting: did you mean targets?"]],
    ])("%s", (_name, pair, expected) => {
        test("is refused with exactly these messages", () => {
            expect(problems(pair)).toEqual(expected);
        });
    });

    test("a pair without targets is allowed, with a warning that one host still takes both nodes down", () => {
        expect(pairWarnings("pair", { vip: "198.18.0.10/24" })).toEqual([
            "pair.targets is not set: both nodes run on this Incus host, so the pair survives a node or HAProxy failure but not the host's; set two cluster members to survive that too",
        ]);
        expect(pairWarnings("pair", { vip: "198.18.0.10/24", targets: ["n1", "n2"] })).toEqual([]);
    });

    test("node a keeps the container's name (a single load balancer becomes node a), node b is <name>-b", () => {
        expect(pairNodeNames("edge")).toEqual({ a: "edge", b: "edge-b" });
    });
});

const VIEW_A: KeepalivedView = {
    node: "a",
    selfAddress: "198.18.0.21",
    peerAddress: "198.18.0.22",
    vip: "198.18.0.10/24",
    virtualRouterId: 51,
    interface: "eth0",
    aliveScript: "/usr/local/sbin/veza-haproxy-alive",
    notifyScript: "/usr/local/sbin/veza-vrrp-notify",
};

describe("keepalived.conf", () => {
    const golden = path.join(__dirname, "golden", "keepalived-a.conf");

    test("node a's config is the golden one; node b's differs only in priority and addresses", () => {
        const a = renderKeepalivedConfig(VIEW_A);
        if (process.env.UPDATE_GOLDEN === "1") writeFileSync(golden, a);
        expect(a).toBe(readFileSync(golden, "utf8"));
        const b = renderKeepalivedConfig({ ...VIEW_A, node: "b", selfAddress: "198.18.0.22", peerAddress: "198.18.0.21" });
        const changed = a
            .split("\n")
            .map((line, i) => [line, b.split("\n")[i]])
            .filter(([x, y]) => x !== y);
        expect(changed).toEqual([
            [
                "# Managed by veza-haproxy (Pulumi): node a of a load balancer pair.",
                "# Managed by veza-haproxy (Pulumi): node b of a load balancer pair.",
            ],
            ["    priority 150", "    priority 100"],
            ["    unicast_src_ip 198.18.0.21", "    unicast_src_ip 198.18.0.22"],
            ["        198.18.0.22", "        198.18.0.21"],
        ]);
    });

    test.each([
        [{ vip: "198.18.0.21/24" }, 'keepalived.conf: vip must not be a node\'s own address (got "198.18.0.21/24")'],
        [{ peerAddress: "198.18.0.21" }, 'keepalived.conf: peerAddress must differ from selfAddress (both "198.18.0.21")'],
        [
            { interface: "eth0; rm -rf /" },
            'keepalived.conf: interface must be an interface name of 1-15 letters, digits, _ . - (got "eth0; rm -rf /")',
        ],
        [{ aliveScript: "/tmp/x y" }, 'keepalived.conf: aliveScript must be an absolute path of A-Z a-z 0-9 . _ - (got "/tmp/x y")'],
    ])("a view with %j is refused: %s", (override, message) => {
        expect(() => renderKeepalivedConfig({ ...VIEW_A, ...(override as Partial<KeepalivedView>) })).toThrow(message);
    });
});

const describeWithKeepalived = requireBinary("keepalived");
describeWithKeepalived("keepalived.conf under the real keepalived", () => {
    let dir: string;
    beforeAll(() => {
        dir = mkdtempSync(path.join(tmpdir(), "veza-keepalived-"));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    test("keepalived -t accepts both nodes' configs without a warning", () => {
        const alive = path.join(dir, "alive");
        const notify = path.join(dir, "notify");
        for (const script of [alive, notify]) {
            writeFileSync(script, "#!/bin/sh\nexit 0\n");
            chmodSync(script, 0o755);
        }
        // keepalived refuses scripts in a directory others can write to (enable_script_security).
        chmodSync(dir, 0o755);
        for (const node of ["a", "b"] as const) {
            const file = path.join(dir, `keepalived-${node}.conf`);
            const self = node === "a" ? "198.18.0.21" : "198.18.0.22";
            const peer = node === "a" ? "198.18.0.22" : "198.18.0.21";
            writeFileSync(
                file,
                renderKeepalivedConfig({ ...VIEW_A, node, selfAddress: self, peerAddress: peer, aliveScript: alive, notifyScript: notify }),
            );
            const check = spawnSync(findBinary("keepalived") as string, ["-t", "-f", file, "-l", "-D"], { encoding: "utf8" });
            const output = `${check.stdout}${check.stderr}`;
            expect({ node, status: check.status, warnings: output.split("\n").filter((l) => /warning|error|unknown/i.test(l)) }).toEqual({
                node,
                status: 0,
                warnings: [],
            });
        }
    });

    test("keepalived -t does check: the same config with a track script that is not there is refused", () => {
        const file = path.join(dir, "keepalived-missing.conf");
        writeFileSync(
            file,
            renderKeepalivedConfig({ ...VIEW_A, aliveScript: path.join(dir, "not-there"), notifyScript: path.join(dir, "notify") }),
        );
        const check = spawnSync(findBinary("keepalived") as string, ["-t", "-f", file, "-l", "-D"], { encoding: "utf8" });
        expect(check.status).not.toBe(0);
        expect(`${check.stdout}${check.stderr}`).toContain("Disabling track script veza_haproxy_alive since not found/accessible");
    });
});

const describeWithShellcheck = requireBinary("shellcheck", "dash");
describeWithShellcheck("the scripts keepalived runs on a node", () => {
    test.each(["_vrrp-alive.sh", "_vrrp-notify.sh"])("%s passes dash -n and shellcheck", (file) => {
        const script = loadTemplate(file);
        expect(script.startsWith("#!/bin/sh\n")).toBe(true);
        expect(spawnSync("dash", ["-n"], { input: script }).status).toBe(0);
        const check = spawnSync(findBinary("shellcheck") as string, ["-s", "sh", "-"], { input: script, encoding: "utf8" });
        expect({ status: check.status, out: check.stdout }).toEqual({ status: 0, out: "" });
    });
});
