/**
 * End-to-end: the Pulumi engine's lifecycle replayed on real Incus, with the
 * component's registered scripts, locally and over a real sshd.
 *
 * What the engine does, from its source (pulumi/pulumi, read at commit
 * 1b5949891b3c):
 * - A resource whose URN changed (type command:local:Command ->
 *   command:remote:Command, or a parent component renamed without an alias)
 *   is a new resource to create and an old one to delete. The program's
 *   registrations run first, each create finishing before RegisterResource
 *   returns (pkg/resource/deploy/source_eval.go, resmon.RegisterResource);
 *   deletes of resources the program no longer registers are generated only
 *   after that (pkg/resource/deploy/deployment_executor.go, Execute ->
 *   performPostSteps -> stepGenerator.GenerateDeletes), in reverse
 *   dependency order (step_generator.go, ScheduleDeletes: antichains,
 *   reversed).
 * - A delete runs with the OLD state: old inputs, old provider, so the old
 *   script, stdin and connection (pkg/resource/deploy/step.go,
 *   DeleteStep.Apply). @pulumi/command runs the stored `delete` then, and
 *   skips it only when unset (pulumi/pulumi-command
 *   provider/pkg/provider/local/commandController.go, Delete).
 * - `pulumi destroy` deletes everything in reverse dependency order
 *   (pkg/engine/destroy.go, then the same ScheduleDeletes).
 *
 * Scenarios, one container throughout, a client loop running the whole time:
 *   1. v1: local steps create and configure `life`.
 *   2. v2: the same program with an SSH connection (127.0.0.1, a real sshd
 *      with stock AcceptEnv): v2's creates over SSH, then v1's deletes
 *      locally. The container survives, adopted by v2.
 *   3. a wrong host key: refused before anything runs.
 *   4. v3: the component renamed (containerName kept): v3's creates, then
 *      v2's deletes over SSH. The container survives.
 *   5. TLS on (v4), then off (v5): v5's config update, then v4's TLS delete
 *      removes the certificate and key.
 *   6. destroy: v5's deletes remove the container.
 */
import * as pulumi from "@pulumi/pulumi";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { HaproxyLoadBalancerArgs } from "../../components";
import { get, makeTestCert, requireBinary } from "../support";
import {
    API_PORT,
    buildSteps,
    configSha,
    execIn,
    incus,
    incusOk,
    installProductMocks,
    LAB_IMAGE,
    launchBackend,
    listContainers,
    ProductSteps,
    requireIncusLab,
    runStepOk,
    showProc,
    STREAM_PORT,
    TrafficLoop,
    trafficSummary,
    waitHttpOk,
} from "../support/lab";
import { runRemoteStep, runRemoteStepOk, Sshd, startSshd } from "./sshd";
import { cleanUpAfterSuite, noteBook } from "./suite";

installProductMocks();

// A real sshd and the Incus lab; under CI=true a missing one fails the suite loudly.
const describeLab = requireBinary("sshd", "ssh", "ssh-keygen") === describe ? requireIncusLab() : describe.skip;
const LB = "life";
const API = "life-api-1";
const STREAM = "life-stream-1";
const CONTAINERS = [LB, API, STREAM] as const;
const REMOTE = "command:remote:Command";

const notes = noteBook("e2e lifecycle");
const note = notes.note;

function args(extra: Partial<HaproxyLoadBalancerArgs> = {}): HaproxyLoadBalancerArgs {
    return {
        image: LAB_IMAGE,
        apiServers: [{ name: API, address: `${API}.lxd` }],
        streamServers: [{ name: STREAM, address: `${STREAM}.lxd` }],
        healthCheckIntervalMs: 500,
        ...extra,
    };
}

async function owner(): Promise<string> {
    return (await incusOk(["config", "get", LB, "user.veza.owner"])).trim();
}

describeLab("lifecycle under the engine's order: nothing but destroy deletes the load balancer", () => {
    cleanUpAfterSuite(CONTAINERS, notes);
    let sshd: Sshd;
    let url: string;
    let loop: TrafficLoop;
    let v1: ProductSteps;
    let v2: ProductSteps;
    let v3: ProductSteps;
    let v5: ProductSteps;
    const overSsh = () => ({
        connection: {
            host: "127.0.0.1",
            port: sshd.port,
            user: "root",
            privateKey: pulumi.secret(sshd.clientPrivateKey),
            hostKey: sshd.hostKey,
        },
    });

    beforeAll(async () => {
        await incus(["delete", "--force", ...CONTAINERS]);
        sshd = await startSshd();
        await Promise.all([launchBackend(API, API_PORT), launchBackend(STREAM, STREAM_PORT)]);
    }, 240_000);

    afterAll(async () => {
        await loop?.abort();
        await sshd?.stop();
    });

    test("local steps (v1) create and configure the container", async () => {
        v1 = await buildSteps(LB, args());
        expect(v1.container.header.container).toBe(LB);
        const created = await runStepOk(v1.container, "create");
        url = `http://${created.stdout.trim()}`;
        await runStepOk(v1.config, "create");
        await waitHttpOk(url, "/api/v1/items");
        expect(await owner()).toBe(v1.container.header.owner);
        // The drop-in asks for the open files the largest accepted maxConnections needs.
        expect((await execIn(LB, ["systemctl", "show", "-p", "LimitNOFILE", "--value", "haproxy"])).stdout.trim()).toBe("262144");
        note("v1 create + config", `${created.ms} ms; owner ${await owner()}`);
    }, 180_000);

    test("the container survives a local -> SSH switch, a rename, TLS on and off, and a client loop through all of it sees no failure", async () => {
        loop = new TrafficLoop(url, 0, 4, true);
        const fresh = new TrafficLoop(url, 0, 2, false);
        await switchToSsh();
        await refuseWrongHostKey();
        await rename();
        await tlsOnThenOff();
        const seen = await loop.stop();
        const seenFresh = await fresh.stop();
        note(
            "client loops through switch, rename, TLS on/off",
            `keep-alive ${trafficSummary(seen)}; new connections ${trafficSummary(seenFresh)}`,
        );
        for (const r of [seen, seenFresh]) {
            expect(r.errors).toEqual([]);
            expect(r.failures).toBe(0);
            expect(r.requests).toBeGreaterThan(100);
        }
    }, 300_000);

    /** 2. local -> SSH: v2's creates over SSH adopt the container, v1's delete leaves it serving. */
    async function switchToSsh(): Promise<void> {
        v2 = await buildSteps(LB, args(overSsh()), { type: REMOTE });
        expect(v2.container.resource).toBe(v1.container.resource);
        expect(v2.container.header.owner).not.toBe(v1.container.header.owner);
        const pid = (await showProc(LB)).master;
        // Creates of the new resources, in dependency order (container, then config).
        const adopted = await runRemoteStepOk(v2.container, "create");
        expect(adopted.stderr).toContain(
            `adopting the existing ${LB} (owner ${v1.container.header.owner} -> ${v2.container.header.owner})`,
        );
        const pushed = await runRemoteStepOk(v2.config, "create");
        expect(pushed.stderr).toContain("nothing to do");
        // Then the old resources' deletes, with their old state: the config step has none.
        expect(v1.config.delete).toBe("");
        const kept = await runStepOk(v1.container, "delete");
        expect(kept.stderr).toContain(
            `${LB} is owned by another step now (owner ${v2.container.header.owner}, this step ${v1.container.header.owner}): leaving it running`,
        );
        expect(await listContainers()).toContain(LB);
        expect((await get(url, "/api/v1/items")).status).toBe(200);
        expect((await showProc(LB)).master).toBe(pid);
        note(
            "local -> SSH",
            `adopt over SSH ${adopted.ms} ms, config ${pushed.ms} ms, old delete ${kept.ms} ms (kept); ${loop.requests} requests so far`,
        );
    }

    /** 3. a wrong host key is refused before anything runs on the host. */
    async function refuseWrongHostKey(): Promise<void> {
        const before = await configSha(LB);
        const spoofed = {
            ...v2.config,
            inputs: { ...v2.config.inputs, connection: { ...(v2.config.inputs.connection as object), hostKey: sshd.otherHostKey } },
        };
        const refused = await runRemoteStep(spoofed, "create");
        expect(refused.code).toBe(255);
        expect(refused.stderr).toMatch(/Host key verification failed/);
        expect(refused.stderr).not.toContain("veza-haproxy[");
        expect(await configSha(LB)).toBe(before);
        note("wrong host key", `refused in ${refused.ms} ms, exit ${refused.code}`);
    }

    /** 4. renamed component (containerName kept): v3 adopts, v2's delete over SSH leaves it serving. */
    async function rename(): Promise<void> {
        v3 = await buildSteps("life-renamed", args({ ...overSsh(), containerName: LB }), { type: REMOTE });
        expect(v3.container.header.owner).not.toBe(v2.container.header.owner);
        await runRemoteStepOk(v3.container, "create");
        await runRemoteStepOk(v3.config, "create");
        const kept = await runRemoteStepOk(v2.container, "delete");
        expect(kept.stderr).toContain("leaving it running");
        expect(await owner()).toBe(v3.container.header.owner);
        expect((await get(url, "/api/v1/items")).status).toBe(200);
        note("rename", `${loop.requests} requests so far`);
    }

    /** 5. TLS on, then off: the TLS step's delete removes the certificate and key after the config stopped naming them. */
    async function tlsOnThenOff(): Promise<void> {
        const dir = mkdtempSync(path.join(tmpdir(), "veza-life-cert-"));
        try {
            const cert = makeTestCert(dir);
            const tls = {
                certificatePem: readFileSync(cert.certPath, "utf8"),
                privateKeyPem: pulumi.secret(readFileSync(cert.keyPath, "utf8")),
            };
            const v4 = await buildSteps("life-renamed", args({ ...overSsh(), containerName: LB, tls, httpsRedirect: false }), {
                type: REMOTE,
            });
            const tlsStep = v4.tls;
            if (!tlsStep) throw new Error("v4 registered no TLS step");
            await runRemoteStepOk(v4.container, "update");
            await runRemoteStepOk(tlsStep, "create");
            await runRemoteStepOk(v4.config, "update");
            expect((await execIn(LB, ["stat", "-c", "%a", "/etc/haproxy/certs/veza.pem"])).stdout.trim()).toBe("600");
            // TLS off: v5 registers no TLS step; the engine updates the config, then deletes v4's TLS step.
            v5 = await buildSteps("life-renamed", args({ ...overSsh(), containerName: LB }), { type: REMOTE });
            expect(v5.tls).toBeUndefined();
            await runRemoteStepOk(v5.config, "update");
            const removed = await runRemoteStepOk(tlsStep, "delete");
            expect(removed.stderr).toContain("certificate and key removed from /etc/haproxy/certs/veza.pem");
            expect((await execIn(LB, ["test", "-e", "/etc/haproxy/certs/veza.pem"])).code).toBe(1);
            expect((await get(url, "/api/v1/items")).status).toBe(200);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    }

    test("destroy (the last version's deletes, in reverse dependency order) removes the container", async () => {
        // destroy: reverse dependency order, config (no delete) before the container.
        expect(v5.config.delete).toBe("");
        const destroyed = await runRemoteStepOk(v5.container, "delete");
        expect(destroyed.stderr).toContain(`deleting ${LB}`);
        expect(await listContainers()).not.toContain(LB);
        note("destroy", `${destroyed.ms} ms`);
    }, 120_000);
});
