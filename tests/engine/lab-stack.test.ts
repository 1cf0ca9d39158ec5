/**
 * The lab stack (index.ts + Pulumi.lab.yaml) through the real Pulumi CLI and
 * engine on real Incus, one stack's life in order: preview, a refused bad
 * input, up, no secret in the state, nothing to do on a second run, a second
 * stack refused, a pool change under traffic, refresh, renames with and
 * without an alias, a config step failing in the container, a failed rename
 * reverted, local to SSH and back, a new image in a run that fails
 * validation, a new image, a container deleted by hand and replaced,
 * destroy. Every claim is read from the engine's own
 * output (preview --json, stack export, stack output) and from the
 * containers. The command and random providers are STAND-INS
 * (tests/engine/stand-ins/: their Go modules are not served), unless
 * VEZA_COMMAND_PROVIDER names a real pulumi-resource-command; which one ran
 * is printed.
 */
import * as path from "node:path";
import { cleanupAll, freePort, get, waitFor } from "../support";
import { startSshd } from "../e2e/sshd";
import {
    abortAllTraffic,
    API_PORT,
    configSha,
    deleteContainers,
    execIn,
    execInOk,
    incus,
    incusOk,
    instanceIdentity,
    LAB_IMAGE,
    launchBackend,
    listContainers,
    requireIncusLab,
    startTrafficPair,
    STREAM_PORT,
    trafficSummary,
} from "../support/lab";
import { noteBook } from "../e2e/suite";
import { changedSteps, commandProviderName, EngineProject, programWarnings, requireEngine, stepSummary } from "./engine";

const { describe: describeEngine, toolchain } = requireEngine("incus");
const describeLab = describeEngine === describe ? requireIncusLab() : describeEngine;
const notes = noteBook("engine");

const BACKENDS: [string, number][] = [
    ["backend-api-1", API_PORT],
    ["backend-api-2", API_PORT],
    ["backend-api-3", API_PORT],
    ["stream-srv-1", STREAM_PORT],
    ["stream-srv-2", STREAM_PORT],
];
/** The lab stack's container (the component's name: Pulumi.lab.yaml sets no containerName). */
const LB = "haproxy";
/** index.ts with the component renamed (tests/engine/programs/renamed.ts). */
const RENAMED = path.join(__dirname, "programs", "renamed.ts");
/** index.ts with one more API server whose address resolves late, and invalid (tests/engine/programs/late-invalid-pool.ts). */
const LATE_INVALID_POOL = path.join(__dirname, "programs", "late-invalid-pool.ts");
/** The port a failing config listens on, held by another program in the container. */
const TAKEN_PORT = 8099;
const SQUATTER = "veza-engine-squatter";

/** The three random secrets' values, sorted, from the revealed state. */
async function randomResults(project: EngineProject): Promise<string[]> {
    const state = JSON.parse(await project.exportText(true)) as {
        deployment: { resources: { urn: string; outputs?: Record<string, unknown> }[] };
    };
    return state.deployment.resources
        .filter((r) => r.urn.includes("random:index/randomPassword:RandomPassword"))
        .map((r) => plaintext(r.outputs?.result))
        .sort();
}

/** The owner token the container records (user.veza.owner). */
async function containerOwner(): Promise<string> {
    return (await incusOk(["config", "get", LB, "user.veza.owner"])).trim();
}

/** Another program in the container holds TAKEN_PORT: a config listening there fails at reload. Stopped by the caller. */
async function startSquatter(): Promise<void> {
    await execInOk(LB, [
        "systemd-run",
        "--unit",
        SQUATTER,
        "--collect",
        "socat",
        `TCP-LISTEN:${TAKEN_PORT},bind=0.0.0.0,reuseaddr,fork`,
        "SYSTEM:true",
    ]);
    await waitFor(async () => (await execInOk(LB, ["ss", "-Hltn", `sport = :${TAKEN_PORT}`])).trim() !== "", {
        what: `a listener on :${TAKEN_PORT}`,
        timeoutMs: 10_000,
        intervalMs: 100,
    });
}

/** A second alias of the lab image: a new `haproxy:image` value, the same bits. */
const OTHER_IMAGE = "veza-engine-test-image";

async function imageFingerprint(alias: string): Promise<string> {
    const images = JSON.parse(await incusOk(["image", "list", "--format", "json"])) as {
        fingerprint: string;
        aliases: { name: string }[];
    }[];
    const image = images.find((i) => i.aliases.some((a) => a.name === alias));
    if (!image) throw new Error(`no image with alias ${alias}`);
    return image.fingerprint;
}

jest.setTimeout(15 * 60_000);

/** A secret in `stack export --show-secrets`: the SDK's secret signature with the value as JSON in `plaintext`. */
function plaintext(value: unknown): string {
    const text = (value as { plaintext?: unknown } | undefined)?.plaintext;
    if (typeof text !== "string") throw new Error(`not a revealed secret: ${JSON.stringify(value)}`);
    return String(JSON.parse(text));
}

describeLab("the lab stack through the real Pulumi engine", () => {
    let project: EngineProject;
    let launched: string[] = [];
    let destroyed = false;

    beforeAll(async () => {
        notes.note("command provider", commandProviderName(toolchain!));
        const existing = new Set(await listContainers());
        if (existing.has(LB))
            throw new Error(`container ${LB} exists before the test: remove it (npm run lab:down) so the stack starts fresh`);
        for (const [name, port] of BACKENDS) {
            if (existing.has(name)) continue;
            await launchBackend(name, port);
            launched.push(name);
        }
        project = new EngineProject(toolchain!);
        await project.init();
    }, 10 * 60_000);

    afterEach(async () => {
        await abortAllTraffic();
    });

    afterAll(async () => {
        try {
            if (project && !destroyed) await project.destroy();
            await deleteContainers([LB, ...launched]);
            await incus(["image", "alias", "delete", OTHER_IMAGE]);
            launched = [];
        } finally {
            await cleanupAll();
            notes.summary();
        }
    }, 10 * 60_000);

    test("a fresh stack's preview plans the component's creates and runs nothing", async () => {
        const preview = await project.previewJson();
        expect(preview.code).toBe(0);
        expect(stepSummary(preview.steps)).toEqual([
            "create haproxy",
            "create haproxy-config",
            "create haproxy-container",
            "create haproxy-cookie-secret",
            "create haproxy-fingerprint-key",
            "create haproxy-stats-password",
        ]);
        expect(await listContainers()).not.toContain(LB);
    });

    test("a bad pool entry fails preview naming the field, and nothing runs", async () => {
        await project.setConfig("haproxy:apiServers[0].address", "not an address!");
        const preview = await project.previewJson();
        await project.setConfig("haproxy:apiServers[0].address", "backend-api-1.lxd");
        expect(preview.code).not.toBe(0);
        expect(preview.raw.stdout + preview.raw.stderr).toContain("apiServers[0].address");
        expect(await listContainers()).not.toContain(LB);
    });

    test("up creates a serving load balancer with the documented outputs", async () => {
        const started = Date.now();
        const up = await project.ok(project.up(), "pulumi up");
        expect(programWarnings(up)).toEqual([]);
        notes.note("first up", `${((Date.now() - started) / 1000).toFixed(1)} s`);
        const out = await project.outputs();
        expect(out.containerName).toBe(LB);
        expect(out.statsPassword).toBe("[secret]");
        // Without tls.acme there is no certificate to describe: null, not a warning on every run.
        expect(out.certificate).toBeNull();
        expect(String(out.httpUrl)).toMatch(/^http:\/\/198\.18\.0\.\d+\/$/);
        expect(out.address).toBe(new URL(String(out.httpUrl)).hostname);
        const r = await get(String(out.httpUrl), "/api/v1/health", undefined, { timeoutMs: 5_000 });
        expect(r.status).toBe(200);
    });

    test("the state holds no secret in clear", async () => {
        const plain = await project.exportText();
        const secrets = await randomResults(project);
        expect(secrets).toHaveLength(3);
        for (const s of secrets) expect(s).toMatch(/^[A-Za-z0-9]{32}$/);
        for (const s of secrets) expect(plain).not.toContain(s);
        const password = String((await project.outputs(true)).statsPassword);
        expect(secrets).toContain(password);
        // The rendered config (stats password, cookie secret inside) travels on the config step's stdin: secret.
        expect(plain).not.toContain("stats auth");
        // Nor the config's digest (it holds the password): an offline oracle for it.
        expect(plain).not.toContain(await configSha(LB));
    });

    test("a second run changes nothing: preview and up --expect-no-changes pass", async () => {
        const preview = await project.program(["preview", "--expect-no-changes"]);
        expect(preview.code).toBe(0);
        const up = await project.up(["--expect-no-changes"]);
        expect(up.code).toBe(0);
    });

    test("a second stack with the same default container is refused, naming both stacks; the first keeps serving, and the second's destroy leaves it", async () => {
        const before = await instanceIdentity(LB);
        const url = String((await project.outputs()).httpUrl);
        const other = new EngineProject(toolchain!, "lab2");
        await other.init();
        const refused = await other.up();
        expect(refused.code).not.toBe(0);
        expect(refused.stdout).toContain(
            "haproxy belongs to stack veza-haproxy/lab, not to this stack (veza-haproxy/lab2): not taking it over, nothing changed",
        );
        await other.ok(other.destroy(), "pulumi destroy (the second stack)");
        expect(await instanceIdentity(LB)).toEqual(before);
        expect((await get(url, "/api/v1/health", undefined, { timeoutMs: 5_000 })).status).toBe(200);
        await project.ok(project.up(["--expect-no-changes"]), "pulumi up (the first stack, untouched)");
    });

    test("adding a backend updates only the config step, with no failed request", async () => {
        const before = await configSha(LB);
        await project.setConfig("haproxy:apiServers[2].name", "backend-api-3");
        await project.setConfig("haproxy:apiServers[2].address", "backend-api-3.lxd");
        const preview = await project.previewJson();
        expect(preview.code).toBe(0);
        expect(changedSteps(preview.steps)).toEqual(["update haproxy-config"]);
        const url = String((await project.outputs()).httpUrl);
        const { fresh, keepAlive } = await startTrafficPair(url, 300);
        await project.ok(project.up(), "pulumi up (third api server)");
        const [f, k] = [await fresh.stop(), await keepAlive.stop()];
        notes.note("add a backend under load (new connections)", trafficSummary(f));
        notes.note("add a backend under load (keep-alive)", trafficSummary(k));
        expect(f.failures + k.failures).toBe(0);
        expect(await configSha(LB)).not.toBe(before);
        await waitFor(
            async () => (await get(url, "/api/v1/items", undefined, { timeoutMs: 5_000 })).headers["x-backend"] === "backend-api-3",
            {
                what: "backend-api-3 answering through the load balancer",
                timeoutMs: 30_000,
                intervalMs: 100,
            },
        );
    });

    test("refresh reads nothing back from the command steps, and up after it changes nothing", async () => {
        const refresh = await project.ok(project.cli(["refresh", "--yes", "--skip-preview", "--stack", "lab"]), "pulumi refresh");
        notes.note(
            "refresh",
            refresh.stdout
                .split("\n")
                .filter((l) => /Resources:|unchanged|updated/.test(l))
                .join(" | "),
        );
        const up = await project.up(["--expect-no-changes"]);
        expect(up.code).toBe(0);
    });

    test("renaming the component with an alias keeps its secrets and the container, serving throughout", async () => {
        const before = { uuid: (await instanceIdentity(LB)).uuid, secrets: await randomResults(project) };
        await project.setConfig("engineTest:alias", "true");
        const preview = await project.previewJson([], RENAMED);
        expect(preview.code).toBe(0);
        // Only the container step re-runs (its owner token is derived from the component's URN, which
        // the alias changes): nothing is created, deleted or replaced, the secrets and config stay.
        expect(changedSteps(preview.steps)).toEqual(["update edge-container"]);
        const url = String((await project.outputs()).httpUrl);
        const { fresh, keepAlive } = await startTrafficPair(url, 300);
        await project.ok(project.up([], RENAMED), "pulumi up (renamed, with alias)");
        const [f, k] = [await fresh.stop(), await keepAlive.stop()];
        notes.note("rename with alias under load", `${trafficSummary(f)}; keep-alive ${trafficSummary(k)}`);
        expect(f.failures + k.failures).toBe(0);
        expect({ uuid: (await instanceIdentity(LB)).uuid, secrets: await randomResults(project) }).toEqual(before);
        await project.ok(project.up(["--expect-no-changes"], RENAMED), "pulumi up (renamed, again)");
    });

    test("renaming without an alias keeps the same container serving through the whole up", async () => {
        // From the renamed program (component "edge", containerName haproxy) back to index.ts
        // (component "haproxy", no alias): new steps adopt the container, the old ones' deletes leave it.
        const before = (await instanceIdentity(LB)).uuid;
        const url = String((await project.outputs()).httpUrl);
        const preview = await project.previewJson();
        const plan = changedSteps(preview.steps);
        notes.note("rename without alias: plan", plan.join(", "));
        expect(plan).toEqual(
            expect.arrayContaining(["create haproxy-container", "create haproxy-config", "delete edge-container", "delete edge-config"]),
        );
        const { fresh, keepAlive } = await startTrafficPair(url, 300);
        await project.ok(project.up(), "pulumi up (renamed back, no alias)");
        const [f, k] = [await fresh.stop(), await keepAlive.stop()];
        notes.note("rename without alias under load", `${trafficSummary(f)}; keep-alive ${trafficSummary(k)}`);
        expect(f.failures + k.failures).toBe(0);
        expect((await instanceIdentity(LB)).uuid).toBe(before);
        expect((await get(url, "/api/v1/health", undefined, { timeoutMs: 5_000 })).status).toBe(200);
        await project.ok(project.up(["--expect-no-changes"]), "pulumi up (after the rename)");
    });

    test("a config step that fails in the container: the engine reports why, the old config serves, the fixed value converges", async () => {
        const url = String((await project.outputs()).httpUrl);
        const servingConfig = await configSha(LB);
        // Another program holds the port the new config listens on: HAProxy cannot bind it at reload.
        await startSquatter();
        try {
            await project.setConfig("haproxy:listenHttp", String(TAKEN_PORT));
            const failed = await project.up();
            expect(failed.code).not.toBe(0);
            expect(failed.stdout).toContain("the new config listens on a port another program holds");
            expect(failed.stdout).toContain("running config and process untouched");
            expect(await configSha(LB)).toBe(servingConfig);
            expect((await get(url, "/api/v1/health", undefined, { timeoutMs: 5_000 })).status).toBe(200);
        } finally {
            await execIn(LB, ["systemctl", "stop", SQUATTER]);
        }
        await project.setConfig("haproxy:listenHttp", "80");
        await project.ok(project.up(), "pulumi up (listenHttp fixed)");
        await project.ok(project.up(["--expect-no-changes"]), "pulumi up (converged)");
        expect(await configSha(LB)).toBe(servingConfig);
    });

    test("a rename whose run fails after the new container step adopted the container, then reverted: the container is handed back and keeps serving", async () => {
        const url = String((await project.outputs()).httpUrl);
        const before = { uuid: (await instanceIdentity(LB)).uuid, owner: await containerOwner() };
        await project.setConfig("engineTest:alias", "false");
        await startSquatter();
        try {
            await project.setConfig("haproxy:listenHttp", String(TAKEN_PORT));
            const failed = await project.up([], RENAMED);
            expect(failed.code).not.toBe(0);
            expect(failed.stdout).toContain("the new config listens on a port another program holds");
            // The renamed program's container step ran and adopted the container before its config step failed.
            expect(await containerOwner()).not.toBe(before.owner);
        } finally {
            await execIn(LB, ["systemctl", "stop", SQUATTER]);
        }
        // Reverted: index.ts again, listenHttp as before. The old steps are unchanged; the half-made renamed ones are deleted.
        await project.setConfig("haproxy:listenHttp", "80");
        const reverted = await project.ok(project.up(), "pulumi up (the rename reverted)");
        notes.note("a failed rename, reverted", (reverted.stdout.match(/handing it back[^\n]*/) ?? [""])[0].slice(0, 200));
        expect((await instanceIdentity(LB)).uuid).toBe(before.uuid);
        expect(await containerOwner()).toBe(before.owner);
        expect((await get(url, "/api/v1/health", undefined, { timeoutMs: 5_000 })).status).toBe(200);
        await project.ok(project.up(["--expect-no-changes"]), "pulumi up (after the revert)");
        // The stack's destroy still deletes it: the hand-back leaves no adoption pending.
        expect((await incusOk(["config", "get", LB, "user.veza.adopted-from"])).trim()).toBe("");
    });

    test("preview over SSH reaches no host; a wrong host key fails before any command; the right one adopts the container, serving throughout, and back to local", async () => {
        const url = String((await project.outputs()).httpUrl);
        const before = { uuid: (await instanceIdentity(LB)).uuid, owner: await containerOwner() };
        const sshd = await startSshd();
        try {
            await project.setSecret("haproxy:incusSshPrivateKey", sshd.clientPrivateKey);
            // Nothing listens on this port: preview must not need the host (the preview workflow's runner reaches none).
            const nowhere = await freePort();
            await project.setConfig("haproxy:incusHost", JSON.stringify({ host: "127.0.0.1", port: nowhere, hostKey: sshd.hostKey }));
            const preview = await project.previewJson();
            expect(preview.code).toBe(0);
            expect(changedSteps(preview.steps)).toEqual(expect.arrayContaining(["create haproxy-container", "delete haproxy-container"]));

            await project.setConfig(
                "haproxy:incusHost",
                JSON.stringify({ host: "127.0.0.1", port: sshd.port, hostKey: sshd.otherHostKey }),
            );
            const refused = await project.up();
            notes.note("a wrong host key", ((refused.stdout.match(/error: .*/g) ?? [])[0] ?? "").slice(0, 300));
            expect(refused.code).not.toBe(0);
            expect({ uuid: (await instanceIdentity(LB)).uuid, owner: await containerOwner() }).toEqual(before);
            expect((await get(url, "/api/v1/health", undefined, { timeoutMs: 5_000 })).status).toBe(200);

            await project.setConfig("haproxy:incusHost", JSON.stringify({ host: "127.0.0.1", port: sshd.port, hostKey: sshd.hostKey }));
            const { fresh, keepAlive } = await startTrafficPair(url, 300);
            await project.ok(project.up(), "pulumi up (over SSH)");
            const [f, k] = [await fresh.stop(), await keepAlive.stop()];
            notes.note("local to SSH under load", `${trafficSummary(f)}; keep-alive ${trafficSummary(k)}`);
            expect(f.failures + k.failures).toBe(0);
            expect((await instanceIdentity(LB)).uuid).toBe(before.uuid);
            expect(await containerOwner()).not.toBe(before.owner);
            const state = await project.exportText();
            expect(state).toContain("command:remote:Command");
            expect(state).not.toContain("command:local:Command");
            // The SSH key is a secret in the state: not in clear anywhere.
            const keyBody = sshd.clientPrivateKey.split("\n").find((l) => l.length > 40) as string;
            expect(state).not.toContain(keyBody);
            await project.ok(project.up(["--expect-no-changes"]), "pulumi up (over SSH, again)");
        } finally {
            await project.removeConfig("haproxy:incusHost");
            await project.removeConfig("haproxy:incusSshPrivateKey");
        }
        try {
            await project.ok(project.up(), "pulumi up (back to local)");
            expect((await instanceIdentity(LB)).uuid).toBe(before.uuid);
            expect((await get(url, "/api/v1/health", undefined, { timeoutMs: 5_000 })).status).toBe(200);
        } finally {
            await sshd.stop();
        }
    });

    test("a new image in the same run as a pool that is invalid only once it resolves: up fails naming the field, and the serving container is not replaced", async () => {
        const before = await instanceIdentity(LB);
        const servingConfig = await configSha(LB);
        const url = String((await project.outputs()).httpUrl);
        await incusOk(["image", "alias", "create", OTHER_IMAGE, await imageFingerprint(LAB_IMAGE)]);
        await project.setConfig("haproxy:image", OTHER_IMAGE);
        try {
            // A program that waits forever on a step that never registered is a hang, not a failure: bounded here.
            const failed = await project.up([], LATE_INVALID_POOL, 180_000);
            expect(failed.timedOut).toBe(false);
            notes.note(
                "late-invalid pool with a new image",
                ((failed.stdout.match(/apiServers\[3\][^\n]*/g) ?? [])[0] ?? "").slice(0, 200),
            );
            expect(failed.code).not.toBe(0);
            expect(failed.stdout).toContain("apiServers[3].address");
            expect(failed.stdout).not.toContain("haproxy-container deleted");
            expect((await instanceIdentity(LB)).uuid).toBe(before.uuid);
            expect(await configSha(LB)).toBe(servingConfig);
            expect((await get(url, "/api/v1/health", undefined, { timeoutMs: 5_000 })).status).toBe(200);
        } finally {
            await project.removeConfig("haproxy:image");
            await incus(["image", "alias", "delete", OTHER_IMAGE]);
        }
    });

    test("a new image replaces the container step, the old container first, and the new one serves", async () => {
        const before = await instanceIdentity(LB);
        await incusOk(["image", "alias", "create", OTHER_IMAGE, await imageFingerprint(LAB_IMAGE)]);
        await project.setConfig("haproxy:image", OTHER_IMAGE);
        const preview = await project.previewJson();
        expect(preview.code).toBe(0);
        // The container step is replaced (its triggers) and so is the config step (its trigger is the container's id).
        expect(changedSteps(preview.steps)).toEqual(["replace haproxy-config", "replace haproxy-container"]);
        const up = await project.ok(project.up(), "pulumi up (new image)");
        // deleteBeforeReplace: the engine deletes the old container before it creates the new one.
        const deleted = up.stdout.indexOf("haproxy-container deleted");
        expect(deleted).toBeGreaterThan(-1);
        expect(deleted).toBeLessThan(up.stdout.indexOf("haproxy-container created"));
        expect((await instanceIdentity(LB)).uuid).not.toBe(before.uuid);
        const url = String((await project.outputs()).httpUrl);
        expect((await get(url, "/api/v1/health", undefined, { timeoutMs: 5_000 })).status).toBe(200);
        await project.ok(project.up(["--expect-no-changes"]), "pulumi up (nothing more to do)");
    });

    test("a container deleted by hand is invisible to refresh and up; up --replace of the container step rebuilds and configures it", async () => {
        await incusOk(["delete", "--force", LB]);
        await project.ok(project.cli(["refresh", "--yes", "--skip-preview", "--stack", "lab"]), "pulumi refresh (container gone)");
        // What the engine cannot see: a Command has no read, so nothing is planned.
        await project.ok(project.up(["--expect-no-changes"]), "pulumi up (container gone, nothing planned)");
        const state = JSON.parse(await project.exportText()) as { deployment: { resources: { urn: string }[] } };
        const urn = state.deployment.resources.map((r) => r.urn).find((u) => u.endsWith("::haproxy-container"));
        if (!urn) throw new Error("no haproxy-container in the state");
        const replaced = await project.ok(project.up(["--replace", urn]), "pulumi up --replace <container step>");
        notes.note(
            "up --replace after a hand delete",
            (replaced.stdout.match(/Resources:[\s\S]*?Duration[^\n]*/) ?? [""])[0].replace(/\s+/g, " "),
        );
        const url = String((await project.outputs()).httpUrl);
        expect((await get(url, "/api/v1/health", undefined, { timeoutMs: 5_000 })).status).toBe(200);
        await project.ok(project.up(["--expect-no-changes"]), "pulumi up (after the replace)");
    });

    test("destroy removes the container and leaves the backends", async () => {
        await project.ok(project.destroy(), "pulumi destroy");
        destroyed = true;
        const left = await listContainers();
        expect(left).not.toContain(LB);
        for (const [name] of BACKENDS) expect(left).toContain(name);
        const state = JSON.parse(await project.exportText()) as { deployment: { resources?: unknown[] } };
        expect(state.deployment.resources ?? []).toHaveLength(0);
    });
});
