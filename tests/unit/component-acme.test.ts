/**
 * tls.acme under mocks: the steps the component registers for it, their
 * order, what they carry (never a key: the container makes its own), and
 * what is refused at preview. The steps' scripts run against a real Pebble on
 * Incus in tests/e2e/acme.test.ts; the renew script in tests/behaviour/acme.test.ts.
 */
import { labSettings } from "./lab-settings";
import { readFileSync, rmSync } from "fs";
import { installMocks, parseStepStdin, makeTempDir, makeTestCert, Registered, unwrap, valueOf } from "../support";

const registered: Registered[] = installMocks();
// Imported after the mocks are installed, as the SDK requires.
import { HaproxyLoadBalancer, HaproxyLoadBalancerArgs } from "../../components";
import { forgetClaims } from "../../components/claims";
import { certificateReport } from "../../components/steps";
import { buildWithOrder } from "./component-build";

const build = (args: HaproxyLoadBalancerArgs, name: string) => buildWithOrder(registered, args, name);
const step = (r: Registered) => parseStepStdin(unwrap<string>(r.inputs.stdin));
const ACME = { domains: ["veza.example.com"], email: "ops@example.com" };
const labArgs = (extra: Partial<HaproxyLoadBalancerArgs> = {}): HaproxyLoadBalancerArgs => {
    const { apiServers, streamServers } = labSettings();
    return { apiServers, streamServers, ...extra };
};

describe("tls.acme under mocks", () => {
    test("an ACME step after the container and before the config, and an issue step after the config; no TLS push", async () => {
        const { children } = await build(labArgs({ tls: { acme: ACME } }), "edge");
        const deps = Object.fromEntries(children.map((c) => [c.name, c.dependsOn.sort()]));
        expect(Object.keys(deps).filter((n) => n.endsWith("-acme") || n.endsWith("-acme-issue") || n.endsWith("-tls"))).toEqual([
            "edge-acme",
            "edge-acme-issue",
        ]);
        expect(deps["edge-acme"]).toEqual(["edge-container"]);
        expect(deps["edge-config"]).toEqual(["edge-acme", "edge-container"]);
        expect(deps["edge-acme-issue"]).toEqual(["edge-acme", "edge-config"]);
    });

    test("the config serves HTTPS from the ACME certificate's path and routes the challenges to the client's responder", async () => {
        const { byName, lb } = await build(labArgs({ tls: { acme: ACME } }), "route");
        const config = step(byName("config")).payload;
        expect(config).toContain("bind *:443 ssl crt /etc/haproxy/certs/veza.pem");
        expect(config).toContain("    server acme 127.0.0.1:8402\n");
        expect(config).toContain("code 301 unless { ssl_fc } || veza_acme_challenge\n");
        expect(await valueOf(lb.httpsUrl)).toBe("https://198.18.0.10/");
    });

    test("the ACME step carries the client's settings and the CA bundle, no key; its header names the certificate file and the first domain", async () => {
        // A real certificate: the bundle must be X.509 lego can read.
        const dir = makeTempDir("veza-acme-carry-");
        const caBundlePem = readFileSync(makeTestCert(dir).certPath, "utf8");
        rmSync(dir, { recursive: true, force: true });
        const { byName } = await build(
            labArgs({ tls: { acme: { ...ACME, directoryUrl: "https://198.18.0.1:14000/dir", caBundlePem } } }),
            "carry",
        );
        const { header, payload } = step(byName("acme"));
        expect(header).toMatchObject({ container: "carry", cert_path: "/etc/haproxy/certs/veza.pem", domain: "veza.example.com" });
        const env = payload.slice(0, Number(header.env_bytes));
        expect(env).toContain("ACME_DIRECTORY=https://198.18.0.1:14000/dir\n");
        expect(env).toContain("ACME_CA_BUNDLE=/etc/veza-haproxy/acme-ca.pem\n");
        expect(payload.slice(Number(header.env_bytes))).toBe(caBundlePem);
        // What the steps carry (their stdin) holds no key: the container makes its own.
        expect(JSON.stringify(registered.filter((r) => r.name.startsWith("carry-")).map((r) => r.inputs.stdin))).not.toContain(
            "PRIVATE KEY",
        );
        expect(step(byName("acme-issue")).header).toMatchObject({ container: "carry", cert_path: "/etc/haproxy/certs/veza.pem" });
    });

    test("on a pair each node gets its ACME step and orders its own certificate after the pair's config, node b after node a; the VIP holder passes the CA's fetches to either node's responder", async () => {
        const { children, byName } = await build(labArgs({ tls: { acme: ACME }, pair: { vip: "198.18.0.250/24" } }), "pair");
        const deps = Object.fromEntries(children.map((c) => [c.name, c.dependsOn.sort()]));
        expect(deps["pair-acme"]).toEqual(["pair-container"]);
        expect(deps["pair-b-acme"]).toEqual(["pair-b-container"]);
        expect(deps["pair-config"]).toEqual(expect.arrayContaining(["pair-acme", "pair-b-acme"]));
        expect(deps["pair-acme-issue"]).toEqual(["pair-acme", "pair-config"]);
        expect(deps["pair-b-acme-issue"]).toEqual(["pair-acme-issue", "pair-b-acme", "pair-config"]);
        // Each node's responder listens on its own bridge address only, where the VIP holder routes the
        // CA's fetches: never on the VIP, which would publish it to every client.
        for (const [node, address] of [
            ["acme", "198.18.0.10"],
            ["b-acme", "198.18.0.11"],
        ]) {
            const { header, payload } = step(byName(node));
            expect(payload.slice(0, Number(header.env_bytes))).toContain(`ACME_CHALLENGE_ADDRESS=${address}:8402\n`);
        }
        const config = step(byName("config")).payload;
        expect(config).toContain(
            "backend veza_acme\n" +
                "    # A pair: each node orders its own certificate, and the CA's fetch\n" +
                "    # reaches whichever node holds the VIP. A responder that is not running\n" +
                "    # refuses the connection, one that runs for the other node's order\n" +
                "    # answers 404: both send the fetch on to the other node's responder.\n" +
                "    retry-on conn-failure empty-response 404\n" +
                "    server pair 198.18.0.10:8402\n" +
                "    server pair-b 198.18.0.11:8402\n",
        );
    });

    test("the certificate output reads the issue step's report", () => {
        expect(certificateReport("not_after=Feb 24 10:00:00 2027 GMT\nissuer=CN = Pebble Intermediate CA 19ff54\n")).toEqual({
            notAfter: "Feb 24 10:00:00 2027 GMT",
            issuer: "CN = Pebble Intermediate CA 19ff54",
        });
    });
});

describe("tls.acme refused at preview", () => {
    beforeEach(() => forgetClaims());
    test.each<[string, Partial<HaproxyLoadBalancerArgs>, string]>([
        [
            "a wildcard domain",
            { tls: { acme: { ...ACME, domains: ["*.example.com"] } } },
            'tls.acme.domains[0] is a wildcard, which needs the DNS-01 challenge; HTTP-01 (what this uses) can only prove single names (got "*.example.com")',
        ],
        [
            "ACME and a pushed certificate at once",
            { tls: { acme: ACME, certificatePem: "x" } as never },
            "tls.certificatePem is not a known setting (known: acme)",
        ],
    ])("%s", (_case, extra, message) => {
        const before = registered.length;
        expect(() => new HaproxyLoadBalancer("refused", labArgs(extra))).toThrow(message);
        expect(registered.length).toBe(before);
    });
});
