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
