/*
 * The shipped Grafana dashboard carries what Grafana needs to import it: a
 * schema version, a uid, a Prometheus data source variable every query uses,
 * unique panel ids on a grid without overlaps, and only variables it defines.
 * (That each query returns data from the real metrics is proven against a
 * real Prometheus: tests/behaviour/metrics.test.ts.)
 */
import { readFileSync } from "fs";
import * as path from "path";

interface Datasource {
    type: string;
    uid: string;
}
interface Panel {
    id: number;
    type: string;
    title: string;
    datasource: Datasource;
    gridPos: { h: number; w: number; x: number; y: number };
    targets: { refId: string; expr: string; datasource: Datasource }[];
}
interface Dashboard {
    uid: string;
    title: string;
    schemaVersion: number;
    templating: { list: { name: string; type: string; query: unknown }[] };
    panels: Panel[];
}

const dashboard = JSON.parse(
    readFileSync(path.join(__dirname, "..", "..", "prometheus", "veza-haproxy.dashboard.json"), "utf8"),
) as Dashboard;
const DATASOURCE: Datasource = { type: "prometheus", uid: "${datasource}" };
/** Grafana's own variables the queries may use. */
const BUILT_IN = ["__rate_interval"];

describe("the Grafana dashboard as shipped", () => {
    test("has a uid, a title and a schema version Grafana 9 and later import", () => {
        expect(dashboard.uid).toBe("veza-haproxy");
        expect(dashboard.title).toBe("veza-haproxy");
        expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    });

    test("asks for a Prometheus data source, and every panel and query uses that variable", () => {
        expect(dashboard.templating.list.find((v) => v.name === "datasource")).toMatchObject({ type: "datasource", query: "prometheus" });
        const elsewhere = dashboard.panels.flatMap((p) =>
            [p.datasource, ...p.targets.map((t) => t.datasource)]
                .filter((d) => d.type !== DATASOURCE.type || d.uid !== DATASOURCE.uid)
                .map(() => p.title),
        );
        expect(elsewhere).toEqual([]);
    });

    test("panel ids are unique, and each query has its own refId and an expression", () => {
        const ids = dashboard.panels.map((p) => p.id);
        expect(new Set(ids).size).toBe(ids.length);
        for (const panel of dashboard.panels) {
            expect(panel.targets.length).toBeGreaterThan(0);
            expect(new Set(panel.targets.map((t) => t.refId)).size).toBe(panel.targets.length);
            for (const t of panel.targets) expect(t.expr.trim()).not.toBe("");
        }
    });

    test("panels sit on the 24-column grid without overlapping", () => {
        const overlaps: string[] = [];
        const boxes = dashboard.panels.map((p) => ({ title: p.title, ...p.gridPos }));
        for (const b of boxes) expect(b.x + b.w).toBeLessThanOrEqual(24);
        boxes.forEach((a, i) =>
            boxes.slice(i + 1).forEach((b) => {
                if (a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h) overlaps.push(`${a.title} / ${b.title}`);
            }),
        );
        expect(overlaps).toEqual([]);
    });

    test("every variable a query uses is defined by the dashboard or Grafana", () => {
        const defined = new Set([...dashboard.templating.list.map((v) => v.name), ...BUILT_IN]);
        const used = dashboard.panels.flatMap((p) => p.targets.flatMap((t) => [...t.expr.matchAll(/\$\{?(\w+)/g)].map((m) => m[1])));
        expect(used.length).toBeGreaterThan(0);
        expect([...new Set(used)].filter((name) => !defined.has(name))).toEqual([]);
    });
});
