/**
 * The load balancer pair under mocks: which steps the component registers,
 * what each carries, in which order they depend on one another, and which
 * inputs are refused at preview. The scripts themselves run on real Incus in
 * tests/e2e/pair.test.ts.
 */
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "crypto";
import { labSettings } from "./lab-settings";
import { installMocks, parseStepStdin, isSecret, Registered, registeredAll, unwrap, valueOf } from "../support";
import { buildWithOrder } from "./component-build";

const registered: Registered[] = installMocks();
// Imported after the mocks are installed, as the SDK requires.
import { HaproxyLoadBalancer, HaproxyLoadBalancerArgs } from "../../components";
import { forgetClaims } from "../../components/claims";

const VIP = "198.18.0.250/24";
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl incus-host";
const header = (r: Registered) => parseStepStdin(unwrap<string>(r.inputs.stdin)).header;
const payload = (r: Registered) => parseStepStdin(unwrap<string>(r.inputs.stdin)).payload;

const labArgs = (extra: Partial<HaproxyLoadBalancerArgs> = {}): HaproxyLoadBalancerArgs => {
    const { apiServers, streamServers } = labSettings();
    return { apiServers, streamServers, ...extra };
};

const build = (args: HaproxyLoadBalancerArgs, name: string) => buildWithOrder(registered, args, name);

describe("a load balancer pair under mocks", () => {
    test("two nodes: node a keeps the one-container names, node b is <name>-b; each has keepalived; one config step; all parented", async () => {
        const { lb, children } = await build(labArgs({ pair: { vip: VIP } }), "edge");
        expect(children.map((c) => c.name).sort()).toEqual([
            "edge-b-container",
            "edge-b-keepalived",
            "edge-b-peers-tls",
            "edge-config",
            "edge-container",
            "edge-cookie-secret",
            "edge-fingerprint-key",
            "edge-keepalived",
            "edge-peers-cert",
            "edge-peers-key",
            "edge-peers-tls",
            "edge-stats-password",
        ]);
        for (const child of children) expect(child.parent).toBe(lb);
    });

    test("the engine's order: both containers, then node a's keepalived, then node b's, then the config step after all of them", async () => {
        const { children } = await build(labArgs({ pair: { vip: VIP } }), "order");
        const deps = Object.fromEntries(children.map((c) => [c.name, c.dependsOn.sort()]));
        expect(deps["order-keepalived"]).toEqual(["order-b-container", "order-b-peers-tls", "order-container", "order-peers-tls"]);
        // Node b's after node a's: node a wins the first election alone.
        expect(deps["order-b-keepalived"]).toEqual([
            "order-b-container",
            "order-b-peers-tls",
            "order-container",
            "order-keepalived",
            "order-peers-tls",
        ]);
        // Each node's peers certificate is in place before the config that names it.
        expect(deps["order-b-peers-tls"]).toEqual(["order-b-container"]);
        expect(deps["order-config"]).toEqual([
            "order-b-container",
            "order-b-keepalived",
            "order-b-peers-tls",
            "order-container",
            "order-keepalived",
            "order-peers-tls",
        ]);
    });

    test("turning one container into a pair leaves node a's container step byte-identical: it is neither replaced nor re-run", async () => {
        const single = await build(labArgs(), "grow");
        const singleInputs = single.byName("container").inputs;
        const pair = await build(labArgs({ pair: { vip: VIP } }), "grow");
        const matches = registered.filter((r) => r.name === "grow-container");
        expect(matches).toHaveLength(2);
        expect(matches[1].inputs).toEqual(singleInputs);
        expect(header(pair.byName("b-container")).container).toBe("grow-b");
        // Same triggers but node b's name.
        expect(pair.byName("b-container").inputs.triggers).toEqual(["grow-b", "images:debian/12", "default", "local"]);
    });

    test("each node's keepalived.conf names itself and the other node (the container steps' addresses), the VIP, and a higher priority on node a", async () => {
        const { byName } = await build(labArgs({ pair: { vip: VIP, virtualRouterId: 77 } }), "vrrp");
        const a = payload(byName("keepalived"));
        const b = payload(byName("b-keepalived"));
        expect(a).toContain("unicast_src_ip 198.18.0.10\n    unicast_peer {\n        198.18.0.11\n");
        expect(b).toContain("unicast_src_ip 198.18.0.11\n    unicast_peer {\n        198.18.0.10\n");
        for (const conf of [a, b]) {
            expect(conf).toContain(`        ${VIP} dev eth0\n`);
            expect(conf).toContain("virtual_router_id 77\n");
            expect(conf).toContain("nopreempt\n");
        }
        expect(a).toContain("priority 150\n");
        expect(b).toContain("priority 100\n");
        expect(header(byName("keepalived"))).toEqual({
            container: "vrrp",
            container_step: "vrrp-container-id",
            owner: header(byName("container")).owner,
            vip: VIP,
            conf_sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        });
        expect(byName("keepalived").inputs.delete).toContain("systemctl disable --now keepalived");
    });

    test("the config step sends one config to both nodes by name, with the VIP to find the holder; it has no delete", async () => {
        const { lb, byName } = await build(labArgs({ pair: { vip: VIP } }), "roll");
        const config = byName("config");
        // It carries the stats password: secret, as one container's is; keepalived.conf holds none.
        expect(isSecret(config.inputs.stdin)).toBe(true);
        expect(isSecret(byName("keepalived").inputs.stdin)).toBe(false);
        expect(header(config)).toMatchObject({ nodes: "roll,roll-b", vip: "198.18.0.250" });
        expect(payload(config)).toBe(await valueOf(lb.renderedConfig));
        // Its peers section names both nodes at the addresses their container steps printed, over mutual TLS.
        expect(payload(config)).toContain(
            "peers veza_peers\n" +
                "    default-bind ssl crt /etc/haproxy/certs/veza-peers.pem ca-file /etc/haproxy/certs/veza-peers.pem verify required\n" +
                "    default-server ssl crt /etc/haproxy/certs/veza-peers.pem ca-file /etc/haproxy/certs/veza-peers.pem verify required\n" +
                "    peer roll 198.18.0.10:10000\n    peer roll-b 198.18.0.11:10000\n",
        );
        expect(unwrap<string>(config.inputs.create)).toContain(
            'log "$(stamp) applying to $first first (it does not hold the VIP $hdr_vip)"',
        );
        expect("delete" in config.inputs).toBe(false);
        expect(config.inputs.triggers).toEqual(["roll-container-id", "roll-b-container-id"]);
    });

    test("each node gets the pair's peers certificate and key through a TLS step, secret on stdin, the same pair on both nodes", async () => {
        const { byName } = await build(labArgs({ pair: { vip: VIP } }), "mtls");
        const [a, b] = [byName("peers-tls"), byName("b-peers-tls")];
        for (const [step, container] of [
            [a, "mtls-container"],
            [b, "mtls-b-container"],
        ] as const) {
            expect(isSecret(step.inputs.stdin)).toBe(true);
            expect(header(step)).toMatchObject({ cert_path: "/etc/haproxy/certs/veza-peers.pem" });
            // A rebuilt node gets it again.
            expect(step.inputs.triggers).toEqual([`${container}-id`, "/etc/haproxy/certs/veza-peers.pem"]);
        }
        expect(header(a).container).not.toBe(header(b).container);
        expect(payload(a)).toBe(payload(b));
        expect(payload(a)).toMatch(/-----BEGIN CERTIFICATE-----[\s\S]+PRIVATE KEY-----/);
        // The config step carries the peers certificate's digest: a rotated one reloads both nodes.
        const certificatePem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/.exec(payload(a))?.[0] ?? "";
        expect(header(byName("config")).cert_sha256).toBe(createHash("sha256").update(certificatePem).digest("hex"));
    });

    test("outputs: the address and URLs are the VIP's, nodes lists both containers, vip and vipNode are set", async () => {
        const { lb } = await build(labArgs({ pair: { vip: VIP } }), "out");
        expect(await valueOf(lb.address)).toBe("198.18.0.250");
        expect(await valueOf(lb.httpUrl)).toBe("http://198.18.0.250/");
        expect(await valueOf(lb.vip)).toBe(VIP);
        expect(await valueOf(lb.nodes)).toEqual([
            { name: "out", address: "198.18.0.10" },
            { name: "out-b", address: "198.18.0.11" },
        ]);
        // The mocked config step prints nothing: no node named.
        expect(await valueOf(lb.vipNode)).toBe("");
    });

    test("without a pair: nodes is the one container, vip and vipNode are empty, no keepalived step", async () => {
        const { lb, children } = await build(labArgs(), "solo");
        expect(await valueOf(lb.nodes)).toEqual([{ name: "solo", address: "198.18.0.10" }]);
        expect(await valueOf(lb.vip)).toBe("");
        expect(await valueOf(lb.vipNode)).toBe("");
        expect(children.some((c) => c.name.endsWith("keepalived"))).toBe(false);
    });

    test("targets place each node on its cluster member (incus launch --target) without becoming a trigger: no serving node is rebuilt to move", async () => {
        const { byName } = await build(labArgs({ pair: { vip: VIP, targets: ["member-1", "member-2"] } }), "placed");
        expect(header(byName("container")).target).toBe("member-1");
        expect(header(byName("b-container")).target).toBe("member-2");
        expect(byName("container").inputs.triggers).toEqual(["placed", "images:debian/12", "default", "local"]);
        expect(unwrap<string>(byName("container").inputs.create)).toContain('set -- "$@" --target "$hdr_target"');
    });

    test("a pair without targets is allowed, with a warning that one host carries both nodes", async () => {
        const warn = jest.spyOn(pulumi.log, "warn").mockImplementation(() => Promise.resolve());
        try {
            const { lb, byName } = await build(labArgs({ pair: { vip: VIP } }), "onehost");
            await valueOf(lb.vip);
            expect(warn).toHaveBeenCalledWith(
                "pair.targets is not set: both nodes run on this Incus host, so the pair survives a node or HAProxy failure but not the host's; set two cluster members to survive that too",
                lb,
            );
            expect("target" in header(byName("container"))).toBe(false);
        } finally {
            warn.mockRestore();
        }
    });
});

describe("pair input refused at preview, naming the field", () => {
    beforeEach(() => forgetClaims());

    test.each<[string, Partial<HaproxyLoadBalancerArgs>, string]>([
        [
            "a VIP without prefix",
            { pair: { vip: "198.18.0.250" } },
            'pair.vip must be an IPv4 address with its prefix length, such as "198.18.0.10/24" (got "198.18.0.250")',
        ],
        [
            "one cluster member twice",
            { pair: { vip: VIP, targets: ["m1", "m1"] } },
            'pair.targets must name two different cluster members: one host would take both nodes down (got ["m1","m1"])',
        ],
        [
            "a misspelt pair field",
            { pair: { vip: VIP, virtualRouterID: 5 } as never },
            "pair.virtualRouterID is not a known setting: did you mean virtualRouterId?",
        ],
        [
            "a container name with no room for node b's suffix",
            { containerName: "a".repeat(62), pair: { vip: VIP } },
            "(with pair set, node b is named <containerName>-b)",
        ],
        [
            "a listener on the peers port",
            { pair: { vip: VIP }, listenHttp: 10000 },
            "listenHttp must differ from the pair's peers port 10000 (both nodes listen there for each other's tables)",
        ],
        [
            "a pool member that is node b",
            { containerName: "edge", pair: { vip: VIP }, apiServers: [{ name: "x", address: "edge-b.lxd" }] },
            'apiServers[0].address is this load balancer\'s own container "edge-b": requests would loop back into it (got "edge-b.lxd")',
        ],
        [
            "a pool member at the pair's own VIP",
            { pair: { vip: VIP }, streamServers: [{ name: "x", address: "198.18.0.250" }] },
            'streamServers[0].address is this load balancer\'s own VIP (pair.vip "198.18.0.250/24"): requests would loop back into it (got "198.18.0.250")',
        ],
    ])("%s", (_case, extra, message) => {
        const before = registered.length;
        expect(() => new HaproxyLoadBalancer("refused", labArgs(extra))).toThrow(message);
        expect(registered.length).toBe(before);
    });

    test.each<[string, Partial<HaproxyLoadBalancerArgs>, Partial<HaproxyLoadBalancerArgs>, string]>([
        [
            "one VIP (another prefix does not make it another address)",
            { pair: { vip: VIP, virtualRouterId: 60 } },
            { pair: { vip: "198.18.0.250/25", virtualRouterId: 61 } },
            'pair.vip 198.18.0.250 on the local Incus is already the VIP of HaproxyLoadBalancer "pair-one"; "pair-two"\'s pair would fight it for the address: give each pair its own VIP',
        ],
        [
            "the default VRRP router id, twice",
            { pair: { vip: VIP } },
            { pair: { vip: "198.18.0.251/24" } },
            'pair.virtualRouterId 51 (the default) on the local Incus is already the VRRP router id of HaproxyLoadBalancer "pair-one"\'s pair; "pair-two"\'s would share it on the bridge: set pair.virtualRouterId (1-255) to an id no other VRRP router there uses',
        ],
        [
            "one VRRP router id set on both, over one SSH host written two ways",
            { pair: { vip: VIP, virtualRouterId: 7 }, connection: { host: "INCUS.LAN", hostKey: HOST_KEY } },
            { pair: { vip: "198.18.0.251/24", virtualRouterId: 7 }, connection: { host: "incus.lan.", hostKey: HOST_KEY } },
            'pair.virtualRouterId 7 on ssh:incus.lan.:22 is already the VRRP router id of HaproxyLoadBalancer "pair-one"\'s pair; "pair-two"\'s would share it on the bridge: set pair.virtualRouterId (1-255) to an id no other VRRP router there uses',
        ],
    ])("two pairs that would fight fail at construction, naming the field: %s", (_case, first, second, message) => {
        new HaproxyLoadBalancer("pair-one", labArgs({ containerName: "one", ...first }));
        const before = registered.length;
        expect(() => new HaproxyLoadBalancer("pair-two", labArgs({ containerName: "two", ...second }))).toThrow(message);
        expect(registered.length).toBe(before);
    });

    test("two pairs with their own VIPs and router ids, or on two hosts, are two pairs", async () => {
        const lbs = [
            new HaproxyLoadBalancer("apart-one", labArgs({ containerName: "one", pair: { vip: VIP } })),
            new HaproxyLoadBalancer("apart-two", labArgs({ containerName: "two", pair: { vip: "198.18.0.251/24", virtualRouterId: 52 } })),
            new HaproxyLoadBalancer(
                "apart-three",
                labArgs({ containerName: "three", pair: { vip: VIP }, connection: { host: "h2", hostKey: HOST_KEY } }),
            ),
        ];
        await registeredAll(lbs.flatMap((lb) => lb.nodeCommands.map((n) => n.keepalived as pulumi.Resource)));
        const keepalived = registered.filter((r) => r.name.startsWith("apart-") && r.name.endsWith("-keepalived")).map((r) => r.name);
        expect(keepalived.sort()).toEqual([
            "apart-one-b-keepalived",
            "apart-one-keepalived",
            "apart-three-b-keepalived",
            "apart-three-keepalived",
            "apart-two-b-keepalived",
            "apart-two-keepalived",
        ]);
    });
});
