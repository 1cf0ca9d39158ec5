/*
 * bench/proxy-cost.svg: the proxy-cost headline of bench/results.json drawn
 * by Apache ECharts' server-side SVG renderer (no browser, no DOM). One row
 * of panels per HAProxy release measured: proxy CPU µs per request over
 * HTTP/1.1, HTTPS and HTTP/2, and µs per new TLS connection (a full
 * handshake, and a resumed one); one bar per
 * contender (median of alternated runs), with the min–max range under it.
 */
import { renderSvgChart } from "../../tests/support/svg-chart";
import type { ProxyCostResult, Row } from "../scenarios/proxy-cost";
import { CONTENDERS as THROUGHPUT_CONTENDERS } from "./plot";

/** The throughput plot's contenders and colours, without "direct" (no proxy, no proxy cost). */
const CONTENDERS = THROUGHPUT_CONTENDERS.filter(([key]) => key !== "direct");

const REQUEST_ROWS: [row: Row, label: string][] = [
    ["http", "HTTP/1.1"],
    ["https", "HTTPS"],
    ["h2", "HTTP/2 (TLS)"],
];

const WIDTH = 1000;
const ROW_HEIGHT = 300;
const TOP = 40;

export function renderCostPlot(byRelease: ProxyCostResult[]): string {
    if (byRelease.length === 0) throw new Error("results.json has no proxy_cost section to plot");
    const height = TOP + ROW_HEIGHT * byRelease.length + 30;
    const grids: object[] = [];
    const xAxis: object[] = [];
    const yAxis: object[] = [];
    const titles: object[] = [];
    const series: object[] = [];
    byRelease.forEach((cost, r) => {
        const top = TOP + r * ROW_HEIGHT + 50;
        const release = cost.haproxy_version.replace(/^HAProxy version /, "HAProxy ").replace(/ \d{4}\/\d{2}\/\d{2}$/, "");
        titles.push(
            { text: `${release}: proxy CPU µs per request (lower is better)`, left: 40, top: top - 40, textStyle: { fontSize: 13 } },
            { text: "µs per new TLS connection", left: 700, top: top - 40, textStyle: { fontSize: 13 } },
        );
        grids.push({ left: 60, top, width: 560, height: 200 }, { left: 720, top, width: 240, height: 200 });
        const g = r * 2;
        xAxis.push(
            { type: "category", gridIndex: g, data: REQUEST_ROWS.map(([, l]) => l), axisLabel: { fontSize: 11, color: "#000" } },
            { type: "category", gridIndex: g + 1, data: ["full", "resumed"], axisLabel: { fontSize: 11, color: "#000" } },
        );
        yAxis.push(
            { type: "value", gridIndex: g, splitNumber: 4, axisLine: { show: true }, axisLabel: { fontSize: 11 } },
            { type: "value", gridIndex: g + 1, splitNumber: 4, axisLine: { show: true }, axisLabel: { fontSize: 11 } },
        );
        for (const [key, label, color] of CONTENDERS) {
            const c = cost.contenders[key];
            const value = (row: Row) => c?.rows[row]?.cpu_us.median ?? null;
            const range = (row: Row) => {
                const s = c?.rows[row]?.cpu_us;
                return s ? `${s.median.toFixed(1)}\n${s.min.toFixed(1)}–${s.max.toFixed(1)}` : "";
            };
            const bar = (axis: number, rows: Row[]) => ({
                type: "bar",
                name: label,
                xAxisIndex: axis,
                yAxisIndex: axis,
                itemStyle: { color },
                data: rows.map((row) => ({ value: value(row), rowKey: row })),
                label: {
                    show: true,
                    position: "top",
                    fontSize: 9,
                    formatter: (p: { data: { rowKey: Row } }) => range(p.data.rowKey),
                },
            });
            series.push(
                bar(
                    g,
                    REQUEST_ROWS.map(([row]) => row),
                ),
                bar(g + 1, ["handshake", "resumed"]),
            );
        }
    });
    const legend = { data: CONTENDERS.map(([, l]) => l), right: 40, top: 8, itemWidth: 10, itemHeight: 10, textStyle: { fontSize: 11 } };
    return renderSvgChart(
        { title: titles, legend, grid: grids, xAxis, yAxis, series },
        WIDTH,
        height,
        "proxy pinned to its own core; medians of alternated runs, min–max under each value; a missing bar: the seed speaks no HTTP/2",
    );
}
