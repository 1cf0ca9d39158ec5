/*
 * The shipped alert rules and dashboard against a real Prometheus (Debian's,
 * on loopback) scraping the product's real HAProxy (/metrics) and the real
 * node metrics script (/veza-metrics, through the same stats listener): every
 * dashboard query and every alert expression returns data, so none shows
 * nothing because of a wrong metric name; a dead pool fires its alert.
 *
 * Stand-ins, because a container's systemd and keepalived do not run on this
 * host: socat listens on the loopback port and runs the script per
 * connection as the container's veza-haproxy-node-metrics.socket (Accept=yes)
 * does, and the VIP the script looks for is 127.0.0.1 on lo, from a
 * keepalived.conf written here. The last-result files are written here in the
 * format the config apply and the ACME run write them (their tests prove they
 * do). The container's own socket unit is proven on Incus (tests/e2e).
 */
import { ChildProcess, spawn } from "child_process";
import { X509Certificate } from "crypto";
import { readFileSync, writeFileSync } from "fs";
import * as path from "path";
import { NODE_METRICS_PATH, NODE_METRICS_PORT } from "../../components/container-paths";
import { loadTemplate } from "../../components/templates";
import { PicturePanel, PictureSeries, renderDashboardPicture } from "../support/dashboard-picture";
import {
    cleanupAll,
    findBinary,
    freePort,
    get,
    haproxyVersion,
    makeTempDir,
    makeTestCert,
    onCleanup,
    request,
    requireBinary,
    sleep,
    startLab,
    waitFor,
} from "../support";

jest.setTimeout(120_000);

const ROOT = path.join(__dirname, "..", "..");
const RULES = path.join(ROOT, "prometheus", "veza-haproxy.rules.yml");
const DASHBOARD = path.join(ROOT, "prometheus", "veza-haproxy.dashboard.json");
const PICTURE = path.join(ROOT, "docs", "observability-dashboard.svg");

interface Sample {
    metric: Record<string, string>;
    value: [number, string];
}
interface Alert {
    labels: Record<string, string>;
    state: "pending" | "firing";
}

const describeWithTools = requireBinary("haproxy", "prometheus", "socat", "openssl");

/** Starts `argv` in its own process group, killed (all of it) at cleanup. */
function startProcess(what: string, argv: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
    const child = spawn(argv[0], argv.slice(1), { env, detached: true, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    onCleanup(async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once("exit", resolve));
        process.kill(-(child.pid as number), "SIGTERM");
        await exited;
    }, what);
    child.once("exit", (code, signal) => {
        if (code !== 0 && code !== 143 && signal !== "SIGTERM") console.log(`${what} exited (${code ?? signal}): ${stderr}`);
    });
    return child;
}

/** Comparisons made into 0/1 (`> bool`): the expression then returns every series it reads, true or not. */
const everySeries = (expr: string) => expr.replace(/ (==|!=|>=|<=|>|<) (?!bool )/g, " $1 bool ");

/** A dashboard query as Grafana sends it, with its variables at "All". */
const asGrafanaSends = (expr: string) => expr.replace(/\$__rate_interval/g, "30s").replace(/=~"\$(instance|node)"/g, '=~".*"');

describeWithTools("alert rules and dashboard against a real Prometheus scraping the real HAProxy and node metrics", () => {
    afterAll(cleanupAll);

    test("every dashboard query and alert expression returns data; a pool whose servers all die fires VezaHaproxyPoolNoServerUp and its servers are DOWN", async () => {
        const dir = makeTempDir("veza-metrics-");
        const cert = makeTestCert(dir);
        const lab = await startLab({
            api: 2,
            stream: 1,
            settings: {
                tlsCertPath: cert.pemPath,
                // Plain HTTP traffic reaches the pools (no redirect to HTTPS): the certificate is there for its expiry.
                httpsRedirect: false,
                healthCheckIntervalMs: 300,
                healthCheckFall: 2,
                rateLimit: { requests: 20, periodSeconds: 30 },
            },
        });
        const now = Math.floor(Date.now() / 1000);
        const files = {
            VEZA_CONFIG_RESULT: [path.join(dir, "config-result"), `0 ${now}\n`],
            VEZA_ACME_RESULT: [path.join(dir, "acme-last-run"), `0 ${now}\n`],
            VEZA_KEEPALIVED_CONF: [
                path.join(dir, "keepalived.conf"),
                "vrrp_instance veza_vip {\n    virtual_ipaddress {\n        127.0.0.1/8 dev lo\n    }\n}\n",
            ],
        };
        for (const [file, text] of Object.values(files)) writeFileSync(file, text);
        const script = path.join(dir, "node-metrics.sh");
        writeFileSync(script, loadTemplate("_node-metrics.sh"), { mode: 0o755 });
        startProcess(
            "socat (the node metrics socket unit's stand-in)",
            [findBinary("socat") as string, `TCP-LISTEN:${NODE_METRICS_PORT},bind=127.0.0.1,reuseaddr,fork`, `EXEC:${script}`],
            {
                ...process.env,
                ...Object.fromEntries(Object.entries(files).map(([name, [file]]) => [name, file])),
                VEZA_ADMIN_SOCKET: lab.hp.settings.adminSocketPath as string,
                VEZA_MASTER_SOCKET: lab.hp.masterSocket,
                VEZA_CONFIG_PATH: lab.hp.configPath,
                VEZA_NODE_NAME: "lab-node",
            },
        );
        await waitFor(async () => (await get(lab.hp.statsPort, NODE_METRICS_PATH)).body.includes("veza_haproxy_workers"), {
            what: `${NODE_METRICS_PATH} through the stats listener`,
        });
        const nodeMetrics = (await get(lab.hp.statsPort, NODE_METRICS_PATH)).body;
        console.log(`metrics: ${NODE_METRICS_PATH} answered:\n${nodeMetrics}`);
        expect(nodeMetrics).toContain('veza_haproxy_vrrp_holds_vip{node="lab-node",vip="127.0.0.1"} 1\n');
        expect(nodeMetrics).toContain('veza_haproxy_workers{node="lab-node"} 1\n');
        expect(nodeMetrics).toContain(`veza_haproxy_config_apply_last_result{node="lab-node"} 0\n`);
        // The served certificate as HAProxy holds it: the test certificate's end of validity, to the second.
        const notAfter = Math.floor(Date.parse(new X509Certificate(cert.cert).validTo) / 1000);
        expect(nodeMetrics).toContain(`veza_haproxy_certificate_expiry_timestamp_seconds{node="lab-node"} ${notAfter}\n`);

        const promPort = await freePort();
        const target = `127.0.0.1:${lab.hp.statsPort}`;
        writeFileSync(
            path.join(dir, "prometheus.yml"),
            [
                "global: { scrape_interval: 1s, evaluation_interval: 1s }",
                `rule_files: ["${RULES}"]`,
                "scrape_configs:",
                `  - { job_name: veza-haproxy, static_configs: [{ targets: ["${target}"] }] }`,
                `  - { job_name: veza-haproxy-node, metrics_path: ${NODE_METRICS_PATH}, static_configs: [{ targets: ["${target}"] }] }`,
                "",
            ].join("\n"),
        );
        const promStartedAt = Math.floor(Date.now() / 1000);
        startProcess("prometheus", [
            findBinary("prometheus") as string,
            `--config.file=${path.join(dir, "prometheus.yml")}`,
            `--storage.tsdb.path=${path.join(dir, "tsdb")}`,
            `--web.listen-address=127.0.0.1:${promPort}`,
        ]);
        const api = async <T>(what: string): Promise<T> => {
            const answer = await get(promPort, `/api/v1/${what}`);
            const parsed = JSON.parse(answer.body) as { status: string; data: T; error?: string };
            if (parsed.status !== "success") throw new Error(`prometheus ${what}: ${parsed.error ?? answer.body}`);
            return parsed.data;
        };
        const query = async (expr: string) => (await api<{ result: Sample[] }>(`query?query=${encodeURIComponent(expr)}`)).result;

        // Traffic for the counters until the end: clients within their limit on both pools (40 loopback
        // sources in turn, ~10 requests a second), and one client over its limit (127.0.0.2, answered 429).
        let trafficOn = true;
        const traffic = (async () => {
            for (let i = 0; trafficOn; i++) {
                const path = i % 3 === 0 ? `/stream/${i % 7}/seg.ts` : "/api/v1/me";
                const localAddress = i % 4 === 0 ? "127.0.0.2" : `127.0.0.${10 + (i % 40)}`;
                await request({ port: lab.hp.httpPort, path, localAddress }).catch(() => undefined);
                await sleep(100);
            }
        })();
        onCleanup(async () => {
            trafficOn = false;
            await traffic;
        }, "the traffic loop");
        await waitFor(
            async () => (await api<{ activeTargets: { health: string }[] }>("targets")).activeTargets.every((t) => t.health === "up"),
            {
                what: "both scrape targets up",
                timeoutMs: 30_000,
            },
        );
        // Rates need a counter that grows between two scrapes: traffic goes on while waiting.
        await waitFor(
            async () => {
                return (await query('rate(haproxy_frontend_http_requests_total{proxy="veza_http"}[30s]) > 0')).length > 0;
            },
            { what: "a request rate", timeoutMs: 30_000, intervalMs: 200 },
        );
        const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as {
            panels: { title: string; targets: { expr: string; legendFormat: string }[] }[];
        };
        const rules = readFileSync(RULES, "utf8");
        const alertExprs = [...rules.matchAll(/- alert: (\S+)\n(?:\s+#.*\n)*\s+expr: (?:\|\n((?:\s{10}.*\n)+)|(.*)\n)/g)].map((m) => ({
            name: m[1],
            expr: (m[2] ?? m[3]).trim(),
        }));
        expect(alertExprs.length).toBe((rules.match(/- alert: /g) ?? []).length);
        const empty: string[] = [];
        for (const panel of dashboard.panels) {
            for (const t of panel.targets)
                if ((await query(asGrafanaSends(t.expr))).length === 0) empty.push(`panel "${panel.title}": ${t.expr}`);
        }
        for (const alert of alertExprs)
            if ((await query(everySeries(alert.expr))).length === 0) empty.push(`alert ${alert.name}: ${alert.expr}`);
        console.log(
            `metrics: ${dashboard.panels.length} panels and ${alertExprs.length} alert expressions evaluated; empty: ${empty.length}`,
        );
        expect(empty).toEqual([]);

        // The stream pool loses its only server: DOWN, no server UP, and the alert fires after its 30 s.
        const quiet = await api<{ alerts: Alert[] }>("alerts");
        expect(quiet.alerts.filter((a) => a.labels.alertname === "VezaHaproxyPoolNoServerUp")).toEqual([]);
        await lab.stream[0].kill();
        const killedAt = Date.now();
        await waitFor(async () => (await query('haproxy_server_status{proxy="stream_pool",state="DOWN"} == 1')).length === 1, {
            what: "stream_pool's server DOWN in Prometheus",
            timeoutMs: 20_000,
        });
        const poolAlert = async () =>
            (await api<{ alerts: Alert[] }>("alerts")).alerts.filter(
                (a) => a.labels.alertname === "VezaHaproxyPoolNoServerUp" && a.labels.proxy === "stream_pool",
            );
        const serverAlert = async () =>
            (await api<{ alerts: Alert[] }>("alerts")).alerts.filter(
                (a) => a.labels.alertname === "VezaHaproxyServerDown" && a.labels.proxy === "stream_pool",
            );
        await waitFor(async () => (await serverAlert()).some((a) => a.state === "pending"), {
            what: "VezaHaproxyServerDown pending",
            timeoutMs: 20_000,
        });
        await waitFor(async () => (await poolAlert()).some((a) => a.state === "firing"), {
            what: "VezaHaproxyPoolNoServerUp firing",
            timeoutMs: 60_000,
            intervalMs: 500,
        });
        console.log(`metrics: VezaHaproxyPoolNoServerUp firing ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill (for: 30s)`);
        expect((await poolAlert()).map((a) => a.labels.instance)).toEqual([target]);

        // The dashboard drawn from this run's data (docs/observability.md shows it; UPDATE_DOCS=1 draws it again).
        const end = Math.floor(Date.now() / 1000);
        const drawn: PicturePanel[] = [];
        for (const panel of dashboard.panels) {
            const series: PictureSeries[] = [];
            for (const t of panel.targets) {
                const range = `query_range?query=${encodeURIComponent(asGrafanaSends(t.expr))}&start=${promStartedAt}&end=${end}&step=1`;
                for (const r of (await api<{ result: { metric: Record<string, string>; values: [number, string][] }[] }>(range)).result) {
                    const name = t.legendFormat.replace(/\{\{(\w+)\}\}/g, (_, label: string) => r.metric[label] ?? "");
                    series.push({ name, points: r.values.map(([at, v]) => [at, Number(v)]) });
                }
            }
            drawn.push({ title: panel.title, series });
        }
        const svg = renderDashboardPicture(
            "veza-haproxy dashboard, drawn from a real Prometheus (tests/behaviour/metrics.test.ts)",
            drawn,
            `HAProxy ${haproxyVersion()} on loopback; ~10 requests a second from 40 clients, a quarter from one client over its rate limit; the stream pool's only server killed at ${Math.round(killedAt / 1000 - promStartedAt)} s`,
        );
        for (const panel of dashboard.panels) expect(svg).toContain(panel.title.replace(/&/g, "&amp;"));
        expect(drawn.filter((p) => p.series.length === 0).map((p) => p.title)).toEqual([]);
        trafficOn = false;
        await traffic;
        if (process.env.UPDATE_DOCS === "1") writeFileSync(PICTURE, svg);
    });
});
