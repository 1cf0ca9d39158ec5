/*
 * The shipped alert rules: valid for the real promtool, each alert proven by
 * promtool's own rule tests (series that fire it, series that must not), named
 * after proxies the rendered config really has, and each with its runbook in
 * docs/observability.md.
 */
import { spawnSync } from "child_process";
import { readFileSync } from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import { renderHaproxyConfig } from "../../components";
import { findBinary, requireBinary } from "../support";
import { labSettings } from "./lab-settings";

const ROOT = path.join(__dirname, "..", "..");
const RULES = path.join(ROOT, "prometheus", "veza-haproxy.rules.yml");
const RULE_TESTS = path.join(ROOT, "prometheus", "veza-haproxy.rules.test.yml");
const RUNBOOKS = path.join(ROOT, "docs", "observability.md");

interface Rule {
    alert: string;
    expr: string;
    annotations: Record<string, string>;
}
interface RuleTest {
    alert_rule_test: { alertname: string; exp_alerts?: unknown[] }[];
}

const rules = (yaml.load(readFileSync(RULES, "utf8")) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const ruleTests = (yaml.load(readFileSync(RULE_TESTS, "utf8")) as { tests: RuleTest[] }).tests.flatMap((t) => t.alert_rule_test);

const describeWithPromtool = requireBinary("promtool");

describeWithPromtool("the alert rules, checked by the real promtool", () => {
    const promtool = (...args: string[]) => spawnSync(findBinary("promtool") as string, args, { cwd: ROOT, encoding: "utf8" });

    test("promtool check rules accepts the file and counts every alert", () => {
        const run = promtool("check", "rules", RULES);
        expect(run.stderr).toBe("");
        expect(run.stdout).toContain(`SUCCESS: ${rules.length} rules found`);
        expect(run.status).toBe(0);
    });

    test("promtool test rules passes every case (fires where it must, stays quiet where it must not)", () => {
        const run = promtool("test", "rules", RULE_TESTS);
        expect(run.stdout + run.stderr).toMatch(/SUCCESS/);
        expect(run.stdout + run.stderr).not.toMatch(/FAILED/);
        expect(run.status).toBe(0);
    });
});

describe("every alert is tested, named after real proxies, and has a runbook", () => {
    test.each(rules.map((r) => [r.alert, r] as const))("%s: a case fires it and a case expects it quiet", (alert) => {
        const cases = ruleTests.filter((t) => t.alertname === alert);
        expect(cases.some((t) => (t.exp_alerts ?? []).length > 0)).toBe(true);
        expect(cases.some((t) => (t.exp_alerts ?? []).length === 0)).toBe(true);
    });

    test("every proxy a rule names is a frontend or backend of the rendered config", () => {
        const config = renderHaproxyConfig(labSettings({ rateLimit: { requests: 10, periodSeconds: 10 } }));
        const proxies = new Set([...config.matchAll(/^(?:frontend|backend|listen) (\S+)$/gm)].map((m) => m[1]));
        const named = rules.flatMap((r) => [...r.expr.matchAll(/proxy=~?"([^"]+)"/g)].flatMap((m) => m[1].split("|")));
        expect(named.length).toBeGreaterThan(5);
        expect(named.filter((p) => !proxies.has(p))).toEqual([]);
    });

    test("each alert's runbook annotation points at its own section of docs/observability.md", () => {
        const anchors = new Set(
            [...readFileSync(RUNBOOKS, "utf8").matchAll(/^#+ (.+)$/gm)].map((m) =>
                m[1]
                    .trim()
                    .toLowerCase()
                    .replace(/[^a-z0-9 -]/g, "")
                    .replace(/ /g, "-"),
            ),
        );
        for (const rule of rules) {
            expect(rule.annotations.runbook).toBe(`docs/observability.md#${rule.alert.toLowerCase()}`);
            expect(anchors.has(rule.alert.toLowerCase())).toBe(true);
        }
    });
});
