/*
 * A picture of the Grafana dashboard's panels, drawn from a real Prometheus's
 * answers (Grafana is not packaged for Debian) by Apache ECharts' server-side
 * SVG renderer, as the bench draws its plots: one small chart per panel, in
 * the dashboard's order, two a row. docs/observability-dashboard.svg is drawn
 * by tests/behaviour/metrics.test.ts with UPDATE_DOCS=1.
 */

import { renderSvgChart } from "./svg-chart";

export interface PictureSeries {
    name: string;
    /** [unix seconds, value] */
    points: [number, number][];
}
export interface PicturePanel {
    title: string;
    series: PictureSeries[];
}

const WIDTH = 1000;
const CELL_HEIGHT = 230;
const TOP = 50;
const COLUMNS = 2;

export function renderDashboardPicture(title: string, panels: PicturePanel[], footnote: string): string {
    if (panels.length === 0) throw new Error("no panel to draw");
    const rows = Math.ceil(panels.length / COLUMNS);
    const height = TOP + rows * CELL_HEIGHT + 30;
    const start = Math.min(...panels.flatMap((p) => p.series.flatMap((s) => s.points.map(([t]) => t))));
    const titles: object[] = [{ text: title, left: "center", top: 8, textStyle: { fontSize: 15 } }];
    const grids: object[] = [];
    const xAxis: object[] = [];
    const yAxis: object[] = [];
    const series: object[] = [];
    panels.forEach((panel, i) => {
        const left = 60 + (i % COLUMNS) * (WIDTH / COLUMNS);
        const top = TOP + Math.floor(i / COLUMNS) * CELL_HEIGHT + 30;
        titles.push({ text: panel.title, left: left - 40, top: top - 28, textStyle: { fontSize: 12 } });
        grids.push({ left, top, width: WIDTH / COLUMNS - 110, height: CELL_HEIGHT - 80 });
        xAxis.push({ type: "value", gridIndex: i, min: 0, name: "s", nameGap: 4, axisLabel: { fontSize: 10 } });
        yAxis.push({ type: "value", gridIndex: i, splitNumber: 3, axisLine: { show: true }, axisLabel: { fontSize: 10 } });
        for (const s of panel.series) {
            series.push({
                type: "line",
                name: s.name,
                xAxisIndex: i,
                yAxisIndex: i,
                showSymbol: false,
                lineStyle: { width: 1.5 },
                data: s.points.map(([t, v]) => [t - start, v]),
                endLabel: { show: panel.series.length <= 4, fontSize: 9, formatter: s.name },
            });
        }
    });
    return renderSvgChart({ title: titles, grid: grids, xAxis, yAxis, series }, WIDTH, height, footnote);
}
