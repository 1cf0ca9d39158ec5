import { readFileSync } from "fs";
import * as path from "path";
import { COMPONENT_DEFAULTS, DEFAULT_SETTINGS, STACK_CONFIG_KEYS } from "../../components";

const readme = readFileSync(path.join(__dirname, "..", "..", "README.md"), "utf8");
const rows = new Map<string, string>();
for (const match of readme.matchAll(/^\| `haproxy:(\w+)` \| (.+?) \|/gm)) rows.set(match[1], match[2]);

describe("README config table", () => {
    test("lists exactly the keys the stack reads", () => {
        expect([...rows.keys()].sort()).toEqual([...STACK_CONFIG_KEYS].sort());
    });

    test.each(Object.entries({ ...DEFAULT_SETTINGS, ...COMPONENT_DEFAULTS }).filter(([key]) => STACK_CONFIG_KEYS.includes(key)))(
        "haproxy:%s shows the code's default", (key, value) => {
            const shown = typeof value === "string" ? value === "" ? '`""`' : `\`${value}\`` : `\`${JSON.stringify(value)}\``;
            expect(rows.get(key)).toBe(shown);
        });
});
