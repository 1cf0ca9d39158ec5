/**
 * `npm run lab:up` and `npm run lab:down` as an operator runs them: the lab
 * stack from its own config and the component's own scripts, a JSON last
 * line that says where it serves, a second run that changes nothing, and a
 * teardown that leaves no lab container behind.
 */
import { get } from "../support";
import { deleteContainers, ExecResult, LAB_CONTAINERS, listContainers, REPO_ROOT, requireIncusLab, run } from "./lab";
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

    test("lab:up brings up the lab stack and ends with one JSON line; a second run changes nothing; lab:down removes it all", async () => {
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

        const again = await npmRun("lab:up");
        expect(again.code).toBe(0);
        expect(again.stderr).toContain("config and certificate unchanged, haproxy running: nothing to do");
        expect(again.stdout.trim().split("\n").pop()).toBe(last);
        notes.note("lab:up again", `${again.ms} ms`);

        const down = await npmRun("lab:down");
        expect(down.code).toBe(0);
        const left = (await listContainers()).filter((name) => (LAB_CONTAINERS as readonly string[]).includes(name));
        expect(left).toEqual([]);
    }, 480_000);

    test("lab:up --pair is refused until the component builds a pair, and makes nothing", async () => {
        const child = await run("npx", ["ts-node", "tests/e2e/lab-up.ts", "--pair"], { cwd: REPO_ROOT, timeoutMs: 120_000 });
        expect({ code: child.code, stderr: child.stderr }).toEqual({
            code: 1,
            stderr: expect.stringContaining("lab:up: --pair: the component does not build a load balancer pair yet (issue 12)"),
        });
        expect((await listContainers()).filter((name) => (LAB_CONTAINERS as readonly string[]).includes(name))).toEqual([]);
    }, 120_000);
});
