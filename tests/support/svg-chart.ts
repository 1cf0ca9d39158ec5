/*
 * A static SVG picture from an Apache ECharts option, rendered server-side (no
 * browser, no DOM): the bench's plots and the dashboard picture share it.
 */
import * as echarts from "echarts";

/** `option` drawn at width × height on white, without animation, ending in a newline; `footnote` centred at the bottom. */
export function renderSvgChart(
    option: echarts.EChartsCoreOption & { title?: object[] },
    width: number,
    height: number,
    footnote?: string,
): string {
    const note =
        footnote === undefined
            ? []
            : [{ text: footnote, left: "center", bottom: 6, textStyle: { fontSize: 11, fontWeight: "normal", color: "#555" } }];
    const chart = echarts.init(null, null, { renderer: "svg", ssr: true, width, height });
    chart.setOption({
        // A static picture: with animation on, the SVG would carry CSS keyframes that start from empty bars.
        animation: false,
        backgroundColor: "#fff",
        textStyle: { fontFamily: "Helvetica, Arial, sans-serif" },
        ...option,
        title: [...(option.title ?? []), ...note],
    });
    const svg = chart.renderToSVGString();
    chart.dispose();
    return svg + "\n";
}
