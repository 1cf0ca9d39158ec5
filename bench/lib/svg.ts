/*
 * Hand-written SVG (no dependencies) of the throughput section of
 * bench/results.json: requests/s (left panel) and p99 latency (right panel)
 * per contender, one bar each, value printed on the bar.
 */

export interface PlotInput {
    throughput: {
        contenders?: Record<string, { cpu_us_per_req: { wrk: number; proxy: number; backends: number } }>;
        direct_rps: number;
        product_rps: number;
        seed_literal_rps: number;
        nginx_rps: number;
        p99_direct_ms: number;
        p99_product_ms: number;
        p99_seed_literal_ms?: number;
        p99_nginx_ms?: number;
    };
    meta?: { date?: string; cpus?: number; wrk?: string };
}

const COLORS: Record<string, string> = {
    direct: "#7f7f7f",
    product: "#1f77b4",
    "seed literal": "#ff7f0e",
    nginx: "#2ca02c",
};

function esc(text: string): string {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** A "nice" axis maximum: 1, 2, 2.5 or 5 times a power of ten, at least `value`. */
function niceMax(value: number): number {
    if (!(value > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(value));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= value) return m * p;
    return 10 * p;
}

const r1 = (v: number) => Math.round(v * 10) / 10;

function formatNumber(v: number, unit: string): string {
    if (unit === "rps") return v >= 1000 ? `${(v / 1000).toFixed(1)}k` : v.toFixed(0);
    return v.toFixed(2);
}

/** A panel's frame (title, grid with tick labels, axes) and the geometry its bars are drawn in. */
function frame(x0: number, title: string, max: number, tick: (v: number) => string, barCount: number) {
    const width = 360;
    const top = 60;
    const plotH = 240;
    const left = x0 + 60;
    const plotW = width - 80;
    const parts: string[] = [];
    parts.push(`<text x="${x0 + width / 2}" y="40" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`);
    for (let i = 0; i <= 4; i++) {
        const v = (max * i) / 4;
        const y = top + plotH - (plotH * i) / 4;
        parts.push(`<line x1="${left}" y1="${y}" x2="${left + plotW}" y2="${y}" stroke="#ddd"/>`);
        parts.push(`<text x="${left - 6}" y="${y + 4}" text-anchor="end" font-size="11" fill="#555">${esc(tick(v))}</text>`);
    }
    parts.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#333"/>`);
    parts.push(`<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="#333"/>`);
    return { parts, top, plotH, left, slot: plotW / barCount };
}

function panel(x0: number, title: string, unit: string, bars: { label: string; value: number | undefined }[]): string {
    const present = bars.filter((b) => b.value !== undefined && Number.isFinite(b.value)) as { label: string; value: number }[];
    const max = niceMax(Math.max(0, ...present.map((b) => b.value)));
    const { parts, top, plotH, left, slot } = frame(x0, title, max, (v) => formatNumber(v, unit), bars.length);
    bars.forEach((b, i) => {
        const cx = left + slot * i + slot / 2;
        const bw = slot * 0.6;
        if (b.value !== undefined && Number.isFinite(b.value)) {
            const h = (plotH * b.value) / max;
            const y = top + plotH - h;
            parts.push(`<rect x="${r1(cx - bw / 2)}" y="${r1(y)}" width="${r1(bw)}" height="${r1(h)}" fill="${COLORS[b.label] ?? "#999"}"/>`);
            parts.push(`<text x="${r1(cx)}" y="${r1(y - 5)}" text-anchor="middle" font-size="11">${esc(formatNumber(b.value, unit))}</text>`);
        } else {
            parts.push(`<text x="${r1(cx)}" y="${top + plotH - 5}" text-anchor="middle" font-size="11" fill="#999">n/a</text>`);
        }
        parts.push(`<text x="${r1(cx)}" y="${top + plotH + 18}" text-anchor="middle" font-size="11">${esc(b.label)}</text>`);
    });
    return parts.join("\n  ");
}

const CPU_PARTS: [keyof { wrk: number; proxy: number; backends: number }, string][] = [
    ["wrk", "#bbbbbb"],
    ["proxy", "#d62728"],
    ["backends", "#9467bd"],
];

/** Stacked bars: CPU µs per request spent in wrk, the proxy and the backends. */
function cpuPanel(x0: number, bars: { label: string; cpu?: { wrk: number; proxy: number; backends: number } }[]): string {
    const total = (c: { wrk: number; proxy: number; backends: number }) => c.wrk + c.proxy + c.backends;
    const max = niceMax(Math.max(0, ...bars.map((b) => (b.cpu ? total(b.cpu) : 0))));
    const { parts, top, plotH, left, slot } = frame(x0, "CPU µs per request (lower is better)", max, (v) => String(r1(v)), bars.length);
    bars.forEach((b, i) => {
        const cx = left + slot * i + slot / 2;
        const bw = slot * 0.6;
        if (b.cpu) {
            let y = top + plotH;
            for (const [part, color] of CPU_PARTS) {
                const h = (plotH * b.cpu[part]) / max;
                y -= h;
                if (h > 0) parts.push(`<rect x="${r1(cx - bw / 2)}" y="${r1(y)}" width="${r1(bw)}" height="${r1(h)}" fill="${color}"><title>${part}: ${b.cpu[part]} µs</title></rect>`);
            }
            parts.push(`<text x="${r1(cx)}" y="${r1(y - 5)}" text-anchor="middle" font-size="11">${r1(total(b.cpu))}</text>`);
        }
        parts.push(`<text x="${r1(cx)}" y="${top + plotH + 18}" text-anchor="middle" font-size="11">${esc(b.label)}</text>`);
    });
    CPU_PARTS.forEach(([part, color], i) => {
        const lx = left + 8 + i * 80;
        parts.push(`<rect x="${lx}" y="${top - 14}" width="10" height="10" fill="${color}"/>`);
        parts.push(`<text x="${lx + 14}" y="${top - 5}" font-size="11">${part}</text>`);
    });
    return parts.join("\n  ");
}

export function renderPlot(r: PlotInput): string {
    const t = r.throughput;
    const contenders = ["direct", "product", "seed literal", "nginx"];
    const rps = [t.direct_rps, t.product_rps, t.seed_literal_rps, t.nginx_rps];
    const p99 = [t.p99_direct_ms, t.p99_product_ms, t.p99_seed_literal_ms, t.p99_nginx_ms];
    const keys = ["direct", "product", "seed_literal", "nginx"];
    const cpu = keys.map((k, i) => ({ label: contenders[i], cpu: t.contenders?.[k]?.cpu_us_per_req }));
    const withCpu = cpu.some((c) => c.cpu !== undefined);
    const width = withCpu ? 1140 : 760;
    const note = [
        "wrk keep-alive, same concurrency for every contender, medians of alternated runs",
        r.meta ? `${r.meta.cpus ?? "?"} cores, ${r.meta.date ?? ""}${r.meta.wrk ? `, ${r.meta.wrk}` : ""}` : "",
    ]
        .filter(Boolean)
        .join(" — ");
    return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="360" viewBox="0 0 ${width} 360" font-family="Helvetica, Arial, sans-serif">
  <title>veza-haproxy bench: throughput, p99 latency and CPU per request per contender</title>
  <rect width="${width}" height="360" fill="#fff"/>
  ${panel(10, "Throughput (requests/s, higher is better)", "rps", contenders.map((label, i) => ({ label, value: rps[i] })))}
  ${panel(390, "p99 latency (ms, lower is better)", "ms", contenders.map((label, i) => ({ label, value: p99[i] })))}
  ${withCpu ? cpuPanel(770, cpu) : ""}
  <text x="${width / 2}" y="350" text-anchor="middle" font-size="11" fill="#555">${esc(note)}</text>
</svg>
`;
}
