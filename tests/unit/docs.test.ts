import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from "fs";
import * as path from "path";
import { configTableRows } from "../../stack-config";

const ROOT = path.join(__dirname, "..", "..");
const README = path.join(ROOT, "README.md");
const DEVELOPMENT = path.join(ROOT, "DEVELOPMENT.md");
const DOCS = path.join(ROOT, "docs");
const CONFIGURATION = path.join(DOCS, "configuration.md");
const TABLE_HEAD = "| key | default | meaning |\n| --- | --- | --- |\n";

/** docs/*.md, in name order. */
const docsPages = (): string[] =>
    readdirSync(DOCS)
        .filter((name) => name.endsWith(".md"))
        .sort()
        .map((name) => path.join(DOCS, name));

describe("docs/configuration.md config table", () => {
    // Made from the settings table (components/settings.ts) and the stack's own keys (stack-config.ts);
    // UPDATE_DOCS=1 rewrites it (review the diff before committing).
    test("is exactly the table the code defines: every key, default and meaning", () => {
        const doc = readFileSync(CONFIGURATION, "utf8");
        const start = doc.indexOf(TABLE_HEAD);
        expect(start).toBeGreaterThan(0);
        const body = doc.slice(start + TABLE_HEAD.length);
        const current = body.slice(0, body.search(/\n(?!\|)/) + 1);
        const expected = `${configTableRows().join("\n")}\n`;
        if (process.env.UPDATE_DOCS === "1") writeFileSync(CONFIGURATION, doc.replace(TABLE_HEAD + current, TABLE_HEAD + expected));
        expect(current).toBe(expected);
    });
});

describe("README and docs TypeScript snippets", () => {
    // Each ```typescript block of README.md and docs/*.md is compiled as a file of this project (so
    // "veza-haproxy" and the packages resolve as for examples/), never written to disk.
    test("every one type-checks against the library", () => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const ts = require("typescript") as typeof import("typescript");
        const snippets = [README, ...docsPages()].flatMap((file) =>
            [...readFileSync(file, "utf8").matchAll(/```typescript\n([\s\S]*?)```/g)].map((m, i) => ({
                name: `${path.basename(file, ".md")}-snippet-${i + 1}.ts`,
                text: m[1],
            })),
        );
        expect(snippets.filter((s) => s.name.startsWith("README-")).length).toBeGreaterThan(0);
        expect(snippets.length).toBeGreaterThan(1);
        const config = ts.getParsedCommandLineOfConfigFile(
            path.join(ROOT, "tsconfig.json"),
            {},
            { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined },
        );
        const files = new Map(snippets.map(({ name, text }) => [path.join(ROOT, "examples", name), text]));
        const host = ts.createCompilerHost(config!.options);
        const getSourceFile = host.getSourceFile.bind(host);
        host.getSourceFile = (name, lang, ...rest) =>
            files.has(name) ? ts.createSourceFile(name, files.get(name)!, lang) : getSourceFile(name, lang, ...rest);
        const fileExists = host.fileExists.bind(host);
        host.fileExists = (name) => files.has(name) || fileExists(name);
        const program = ts.createProgram([...files.keys()], { ...config!.options, noEmit: true }, host);
        const problems = ts
            .getPreEmitDiagnostics(program)
            .map((d) => `${d.file?.fileName ?? ""}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`);
        expect(problems).toEqual([]);
    }, 60_000);
});

describe("docs on HAProxy upgrades", () => {
    const golden = (release: string) =>
        (
            JSON.parse(readFileSync(path.join(__dirname, "..", "behaviour", "golden", `chash-placement-${release}.json`), "utf8")) as {
                tracks: string[];
            }
        ).tracks;
    const moved = (from: string, to: string) => golden(from).filter((server, i) => golden(to)[i] !== server).length;
    // The sentences live in docs/haproxy-config.md ("Upgrading HAProxy moves tracks once").
    const text = () => readFileSync(path.join(DOCS, "haproxy-config.md"), "utf8").replace(/\s+/g, " ");

    test("say as many tracks move from 2.6 to 3.0, and from 3.0 to 3.2, as the golden placements of the releases differ by", () => {
        const total = golden("2.6").length;
        expect(text()).toContain(`three servers, ${moved("2.6", "3.0")} of ${total} tracks land on another server`);
        expect(text()).toContain(`from 3.0 to 3.2 moves ${moved("3.0", "3.2")} of ${total} back`);
        expect(text()).toContain(`from 2.6 straight to 3.2 moves ${moved("2.6", "3.2")}`);
    });
});

/** Text outside fenced code blocks (a `#` comment in a shell block is no heading, a link there no link). */
const prose = (markdown: string): string => markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "");

/** GitHub's anchor for a heading: lowercase, spaces to -, punctuation dropped but - and _. */
const slug = (heading: string): string =>
    heading
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
        .replace(/ /g, "-");

/** The anchors of a markdown file's headings (repeated headings get -1, -2, as on GitHub). */
const anchors = (markdown: string): Set<string> => {
    const seen = new Map<string, number>();
    const out = new Set<string>();
    for (const m of prose(markdown).matchAll(/^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$/gm)) {
        const base = slug(m[1]);
        const n = seen.get(base) ?? 0;
        seen.set(base, n + 1);
        out.add(n === 0 ? base : `${base}-${n}`);
    }
    return out;
};

describe("README, DEVELOPMENT.md and docs/", () => {
    test("every relative link in README.md, DEVELOPMENT.md and docs/*.md resolves", () => {
        const pages = [README, DEVELOPMENT, ...docsPages()];
        const broken: string[] = [];
        let checked = 0;
        for (const page of pages) {
            const text = prose(readFileSync(page, "utf8"));
            // [text](target) and ![alt](target); an optional "title" after the target is ignored.
            for (const m of text.matchAll(/\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
                const target = m[1];
                if (/^(https?:|mailto:)/i.test(target)) continue;
                checked++;
                const where = `${path.relative(ROOT, page)}: ${target}`;
                const [file, anchor] = target.split("#", 2) as [string, string | undefined];
                const resolved = file === "" ? page : path.resolve(path.dirname(page), decodeURIComponent(file));
                if (!existsSync(resolved)) {
                    broken.push(`${where} (no file ${path.relative(ROOT, resolved)})`);
                    continue;
                }
                if (anchor === undefined || !resolved.endsWith(".md") || statSync(resolved).isDirectory()) continue;
                if (!anchors(readFileSync(resolved, "utf8")).has(decodeURIComponent(anchor))) {
                    broken.push(`${where} (no heading #${anchor} in ${path.relative(ROOT, resolved)})`);
                }
            }
        }
        expect(checked).toBeGreaterThan(0);
        expect(broken).toEqual([]);
    });

    test("README.md is a first-visit page: at most 250 lines", () => {
        const lines = readFileSync(README, "utf8").replace(/\n$/, "").split("\n").length;
        expect(lines).toBeLessThanOrEqual(250);
    });
});
