/**
 * What `npm pack` ships: the library as built by `npm run build`, checked in a
 * scratch build (the repository's dist/ is not touched).
 */
import { execFileSync } from "child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "fs";
import { tmpdir } from "os";
import * as path from "path";

const ROOT = path.join(__dirname, "..", "..");

function filesUnder(dir: string): string[] {
    return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? filesUnder(path.join(dir, e.name)) : [path.join(dir, e.name)],
    );
}

describe("the packed library", () => {
    let out: string;
    beforeAll(() => {
        out = mkdtempSync(path.join(tmpdir(), "veza-build-"));
        execFileSync(
            process.execPath,
            [require.resolve("typescript/bin/tsc"), "-p", path.join(ROOT, "tsconfig.build.json"), "--outDir", out],
            {
                cwd: ROOT,
                stdio: "pipe",
            },
        );
    }, 120_000);
    afterAll(() => rmSync(out, { recursive: true, force: true }));

    test("every source map resolves without the TypeScript sources, which the package does not ship (sources inlined)", () => {
        const files = (JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { files: string[] }).files;
        expect(files.some((f) => f === "components" || f.startsWith("components/"))).toBe(false);
        const maps = filesUnder(out).filter((f) => f.endsWith(".js.map"));
        expect(maps.length).toBeGreaterThan(5);
        const unresolved = maps.filter((file) => {
            const map = JSON.parse(readFileSync(file, "utf8")) as { sources: string[]; sourcesContent?: (string | null)[] };
            return map.sources.some((_, i) => typeof map.sourcesContent?.[i] !== "string");
        });
        expect(unresolved.map((f) => path.relative(out, f))).toEqual([]);
    });

    test("the typings of the entry point are built where package.json says", () => {
        const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { main: string; types: string };
        expect(existsSync(path.join(out, path.relative("dist", pkg.types)))).toBe(true);
        expect(existsSync(path.join(out, path.relative("dist", pkg.main)))).toBe(true);
    });
});
