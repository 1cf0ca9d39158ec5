/**
 * `npm run lab:up` and `npm run lab:down` as an operator runs them: the lab
 * stack from its own config and the component's own scripts, a JSON last
 * line that says where it serves, a second run that changes nothing, and a
 * teardown that leaves no lab container behind.
 */
import { existsSync, readFileSync } from "fs";
import * as path from "path";
import { get, request, servedCertificate, waitFor } from "../support";
import { LAB_ACME_DOMAIN, LAB_PEBBLE_DIR } from "../../lab/lab-up";
import { deleteContainers, ExecResult, LAB_CONTAINERS, listContainers, REPO_ROOT, requireIncusLab, run, showProc } from "../support/lab";
import { cleanUpAfterSuite, noteBook } from "./suite";

const describeLab = requireIncusLab();
const notes = noteBook("lab:up");

/** `npm run <script>` in the repository, as an operator types it. */
function npmRun(script: string): Promise<ExecResult> {
    return run("npm", ["run", "--silent", script], { cwd: REPO_ROOT, timeoutMs: 240_000 });
}

describeLab("npm run lab:up / lab:down", () => {
    cleanUpAfterSuite(LAB_CONTAINERS, notes);
    beforeAll(() => deleteContainers(LAB_CONTAINERS), 120_000);

    test("lab:up brings up the lab stack and ends with one JSON line; a second run, through the README's first command (scripts/lab.sh), installs nothing and changes nothing; --acme adds HTTPS from the lab's Pebble; --pair --acme turns it into a pair behind a VIP, keeping the running container, each node with a certificate from the same CA; lab:down removes it all, Pebble included", async () => {
        const up = await npmRun("lab:up");
        expect({ code: up.code, stderr: up.code === 0 ? "" : up.stderr }).toEqual({ code: 0, stderr: "" });
        const last = up.stdout.trim().split("\n").pop() as string;
        const result = JSON.parse(last) as { httpUrl: string; vip: null; nodes: { name: string; address: string }[] };
        expect(result).toEqual({
            httpUrl: expect.stringMatching(/^http:\/\/198\.18\.0\.\d+\/$/),
            vip: null,
            nodes: [{ name: "haproxy", address: expect.stringMatching(/^198\.18\.0\.\d+$/) }],
        });
        expect(result.httpUrl).toBe(`http://${result.nodes[0].address}/`);
        notes.note("lab:up", `${up.ms} ms: ${last}`);
        const served = await get(result.httpUrl.replace(/\/$/, ""), "/api/v1/health");
        expect(served.status).toBe(200);

        // Again, through the README's first command (install, then lab:up): nothing to install, nothing to change.
        const again = await run("bash", ["scripts/lab.sh"], { cwd: REPO_ROOT, timeoutMs: 240_000 });
        expect(again.code).toBe(0);
        expect(again.stderr).toContain(
            "install: packages: all 11 present\ninstall: packages (binaries only): all 1 present\ninstall: node: dependencies match package-lock.json\n",
        );
        expect(again.stderr).toContain("config and certificate unchanged, haproxy running: nothing to do");
        expect(again.stderr).toContain(`lab: serving at ${result.httpUrl} (from this machine; try: curl ${result.httpUrl}api/v1/health)`);
        expect(again.stdout.trim().split("\n").pop()).toBe(last);
        notes.note("scripts/lab.sh again", `${again.ms} ms`);

        // HTTPS from the lab's Pebble, on the running container: the plain JSON plus where to check the certificate.
        const acme = { domain: LAB_ACME_DOMAIN, caRootPem: path.join(LAB_PEBBLE_DIR, "root.pem") };
        const withAcme = await run("npm", ["run", "--silent", "lab:up", "--", "--acme"], { cwd: REPO_ROOT, timeoutMs: 300_000 });
        expect({ code: withAcme.code, stderr: withAcme.code === 0 ? "" : withAcme.stderr }).toEqual({ code: 0, stderr: "" });
        const acmeLast = withAcme.stdout.trim().split("\n").pop() as string;
        expect(JSON.parse(acmeLast)).toEqual({ ...result, acme });
        notes.note("lab:up --acme", `${withAcme.ms} ms: ${acmeLast}`);
        const certificate = (address: string) => servedCertificate(address, 443, acme.domain, acme.caRootPem);
        const single = certificate(result.nodes[0].address);
        expect(single.verify).toBe("Verify return code: 0 (ok)");
        const pebblePid = Number(readFileSync(path.join(LAB_PEBBLE_DIR, "pebble.pid"), "utf8"));

        // The same lab turned into a pair: the running haproxy becomes node a, nothing is replaced; Pebble (and its
        // root) is kept, node a keeps its certificate, node b orders its own through the VIP.
        const masterBefore = (await showProc("haproxy")).master;
        const paired = await run("npm", ["run", "--silent", "lab:up", "--", "--pair", "--acme"], { cwd: REPO_ROOT, timeoutMs: 300_000 });
        expect({ code: paired.code, stderr: paired.code === 0 ? "" : paired.stderr }).toEqual({ code: 0, stderr: "" });
        const pairLast = paired.stdout.trim().split("\n").pop() as string;
        const pair = JSON.parse(pairLast) as { nodes: { name: string; address: string }[] };
        expect(pair).toEqual({
            httpUrl: "http://198.18.0.240/",
            vip: "198.18.0.240",
            nodes: [result.nodes[0], { name: "haproxy-b", address: expect.stringMatching(/^198\.18\.0\.\d+$/) }],
            acme,
        });
        expect((await showProc("haproxy")).master).toBe(masterBefore);
        notes.note("lab:up --pair --acme", `${paired.ms} ms: ${pairLast}`);
        expect(Number(readFileSync(path.join(LAB_PEBBLE_DIR, "pebble.pid"), "utf8"))).toBe(pebblePid);
        expect(certificate(pair.nodes[0].address)).toEqual(single);
        expect(certificate(pair.nodes[1].address).verify).toBe("Verify return code: 0 (ok)");
        // With TLS on, plain HTTP is redirected (httpsRedirect); over HTTPS the VIP serves, with the CA's certificate.
        const throughVip = await waitFor(
            async () => {
                const r = await get("http://198.18.0.240", "/api/v1/health", undefined, { timeoutMs: 1_000 }).catch(() => undefined);
                return r?.status === 301 ? r : undefined;
            },
            { what: "the HTTPS redirect through the lab VIP", timeoutMs: 30_000, intervalMs: 200 },
        );
        expect(throughVip.headers.location).toBe("https://198.18.0.240/api/v1/health");
        expect(certificate("198.18.0.240").verify).toBe("Verify return code: 0 (ok)");
        const overHttps = await request({
            host: "198.18.0.240",
            port: 443,
            path: "/api/v1/health",
            tls: { ca: readFileSync(acme.caRootPem), servername: acme.domain },
        });
        expect(overHttps.status).toBe(200);

        const down = await npmRun("lab:down");
        expect(down.code).toBe(0);
        const left = (await listContainers()).filter((name) => (LAB_CONTAINERS as readonly string[]).includes(name));
        expect(left).toEqual([]);
        expect(down.stderr).toContain(`teardown-incus: stopped pebble (pid ${pebblePid})`);
        await waitFor(() => !existsSync(`/proc/${pebblePid}`), { what: "Pebble gone", timeoutMs: 5_000, intervalMs: 50 });
    }, 900_000);
});
