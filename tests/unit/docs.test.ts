import { readFileSync, writeFileSync } from "fs";
import * as path from "path";
import { configTableRows } from "../../stack-config";

const README = path.join(__dirname, "..", "..", "README.md");
const TABLE_HEAD = "| key | default | meaning |\n| --- | --- | --- |\n";

describe("README config table", () => {
    // Made from the settings table (components/settings.ts) and the stack's own keys (stack-config.ts);
    // UPDATE_DOCS=1 rewrites it (review the diff before committing).
    test("is exactly the table the code defines: every key, default and meaning", () => {
        const readme = readFileSync(README, "utf8");
        const start = readme.indexOf(TABLE_HEAD);
        expect(start).toBeGreaterThan(0);
        const body = readme.slice(start + TABLE_HEAD.length);
        const current = body.slice(0, body.search(/\n(?!\|)/) + 1);
        const expected = `${configTableRows().join("\n")}\n`;
        if (process.env.UPDATE_DOCS === "1") writeFileSync(README, readme.replace(TABLE_HEAD + current, TABLE_HEAD + expected));
        expect(current).toBe(expected);
    });
});

describe("README TypeScript snippets", () => {
    // Each ```typescript block is compiled as a file of this project (so
    // "veza-haproxy" and the packages resolve as for examples/), never written to disk.
    test("every one type-checks against the library", () => {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const ts = require("typescript") as typeof import("typescript");
        const root = path.join(__dirname, "..", "..");
        const snippets = [...readFileSync(README, "utf8").matchAll(/```typescript\n([\s\S]*?)```/g)].map((m) => m[1]);
        expect(snippets.length).toBeGreaterThan(0);
        const config = ts.getParsedCommandLineOfConfigFile(
            path.join(root, "tsconfig.json"),
            {},
            { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined },
        );
        const files = new Map(snippets.map((text, i) => [path.join(root, "examples", `readme-snippet-${i + 1}.ts`), text]));
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

describe("README on HAProxy upgrades", () => {
    test("says as many tracks move from 2.6 to 3.0 as the golden placements of the two releases differ by", () => {
        const golden = (release: string) =>
            (
                JSON.parse(readFileSync(path.join(__dirname, "..", "behaviour", "golden", `chash-placement-${release}.json`), "utf8")) as {
                    tracks: string[];
                }
            ).tracks;
        const [old, next] = [golden("2.6"), golden("3.0")];
        const moved = old.filter((server, i) => next[i] !== server).length;
        expect(readFileSync(README, "utf8").replace(/\s+/g, " ")).toContain(
            `three servers, ${moved} of ${old.length} tracks land on another server`,
        );
    });
});
