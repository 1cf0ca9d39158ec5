/*
 * bench/results.svg: the throughput section of bench/results.json drawn by
 * Apache ECharts' server-side SVG renderer (no browser, no DOM). Three
 * panels, one bar per contender: requests/s, p99 latency, and CPU µs per
 * request stacked as wrk / proxy / backends; each bar has its value on top.
 */
import { renderSvgChart } from "../../tests/support/svg-chart";
import type { ContenderSummary } from "../scenarios/throughput";

/** Keys of results.json's throughput.contenders, in plot order, with a short label and a colour each. */
export const CONTENDERS: [key: string, label: string, color: string][] = [
    ["direct", "direct", "#7f7f7f"],
    ["product", "product", "#1f77b4"],
    ["seed_literal", "seed literal", "#ff7f0e"],
    ["nginx", "nginx", "#2ca02c"],
];

const CPU_PARTS: [part: keyof ContenderSummary["cpu_us_per_req"], color: string][] = [
    ["wrk", "#bbbbbb"],
    ["proxy", "#d62728"],
    ["backends", "#9467bd"],
];

const WIDTH = 1140;
const HEIGHT = 360;
const PANEL_WIDTH = 380;

const kilo = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(1)}k` : v.toFixed(0));

export function renderPlot(contenders: Record<string, ContenderSummary>, meta: { date: string; cpus: number }): string {
    const rows = CONTENDERS.map(([key, label, color]) => {
        const c = contenders[key];
        if (!c) throw new Error(`results.json has no throughput.contenders.${key} to plot`);
        return { label, color, c };
    });
    const labels = rows.map((r) => r.label);
    const panels = [
        "Throughput (requests/s, higher is better)",
        "p99 latency (ms, lower is better)",
        "CPU µs per request (lower is better)",
    ].map((text, i) => ({ text, center: 10 + PANEL_WIDTH * i + PANEL_WIDTH / 2, gridLeft: 10 + PANEL_WIDTH * i + 60 }));
    // One coloured bar per contender: the colour goes on each data item, not on the series.
    const perContender = (value: (c: ContenderSummary) => number) =>
        rows.map((r) => ({ value: value(r.c), itemStyle: { color: r.color } }));
    const total = (c: ContenderSummary) => CPU_PARTS.reduce((sum, [part]) => sum + c.cpu_us_per_req[part], 0);
    const valueLabel = (formatter: (p: { value: unknown; dataIndex: number }) => string) => ({
        show: true,
        position: "top" as const,
        fontSize: 11,
        formatter,
    });

    return renderSvgChart(
        {
            title: [
                ...panels.map((p) => ({
                    text: p.text,
                    left: p.center,
                    top: 22,
                    textAlign: "center" as const,
                    textStyle: { fontSize: 14 },
                })),
                {
                    text: `wrk keep-alive, same concurrency for every contender, medians of alternated runs — ${meta.cpus} cores, ${meta.date}`,
                    left: "center",
                    bottom: 6,
                    textStyle: { fontSize: 11, fontWeight: "normal" as const, color: "#555" },
                },
            ],
            // Only the CPU panel needs a legend: the other panels' bars are named on their x axis.
            legend: {
                data: CPU_PARTS.map(([part]) => part),
                left: panels[2].gridLeft,
                top: 44,
                itemWidth: 10,
                itemHeight: 10,
                textStyle: { fontSize: 11 },
            },
            grid: panels.map((p) => ({ left: p.gridLeft, top: 70, width: 280, height: 230 })),
            xAxis: panels.map((_, i) => ({
                type: "category" as const,
                gridIndex: i,
                data: labels,
                axisLabel: { interval: 0, fontSize: 11, color: "#000" },
            })),
            yAxis: panels.map((_, i) => ({
                type: "value" as const,
                gridIndex: i,
                splitNumber: 4,
                axisLine: { show: true },
                axisLabel: { fontSize: 11, formatter: i === 0 ? kilo : undefined },
            })),
            series: [
                {
                    type: "bar" as const,
                    name: "requests/s",
                    xAxisIndex: 0,
                    yAxisIndex: 0,
                    barWidth: "60%",
                    data: perContender((c) => c.rps),
                    label: valueLabel((p) => kilo(Number(p.value))),
                },
                {
                    type: "bar" as const,
                    name: "p99 ms",
                    xAxisIndex: 1,
                    yAxisIndex: 1,
                    barWidth: "60%",
                    data: perContender((c) => c.p99_ms),
                    label: valueLabel((p) => Number(p.value).toFixed(2)),
                },
                ...CPU_PARTS.map(([part, color], i) => ({
                    type: "bar" as const,
                    name: part,
                    xAxisIndex: 2,
                    yAxisIndex: 2,
                    stack: "cpu",
                    barWidth: "60%",
                    itemStyle: { color },
                    data: rows.map((r) => r.c.cpu_us_per_req[part]),
                    // The stack's total goes on its top part only.
                    label: i === CPU_PARTS.length - 1 ? valueLabel((p) => total(rows[p.dataIndex].c).toFixed(1)) : undefined,
                })),
            ],
        },
        WIDTH,
        HEIGHT,
    );
}
