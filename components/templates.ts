import { existsSync, readFileSync } from "fs";
import * as path from "path";
import * as Mustache from "mustache";

/*
 * templates/ sits at the package root. From source (components/*.ts) that is
 * one level up; from the compiled library (dist/components/*.js) two.
 */
const TEMPLATE_DIRS = [path.join(__dirname, "..", "templates"), path.join(__dirname, "..", "..", "templates")];
const cache = new Map<string, string>();

export function loadTemplate(file: string): string {
    let text = cache.get(file);
    if (text === undefined) {
        const dir = TEMPLATE_DIRS.find((candidate) => existsSync(path.join(candidate, file)));
        if (dir === undefined) throw new Error(`template ${file} not found in ${TEMPLATE_DIRS.join(" or ")}`);
        text = readFileSync(path.join(dir, file), "utf8");
        cache.set(file, text);
    }
    return text;
}

/** Renders a template verbatim: these are config files and scripts, not HTML, so nothing is escaped. */
export function renderTemplate(file: string, view: object, partials: Record<string, string> = {}): string {
    return Mustache.render(loadTemplate(file), view, partials, { escape: (value: string) => value });
}
