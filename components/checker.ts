import { CERT_DIR } from "./container-paths";

/*
 * Problems are collected, never thrown one by one, so a bad stack reports
 * every offending field at once. The character rules are deliberately
 * narrow: a value that matches them cannot break out of a config token or a
 * quoted shell word.
 */

/** An absolute path of A-Z a-z 0-9 . _ - segments: cannot break out of a config token or a quoted shell word. */
export const ABSOLUTE_PATH = /^(\/[A-Za-z0-9._-]+)+$/;
const INSTANCE_NAME = /^[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const CERT_FILE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,59}\.pem$/;

/** Thrown for invalid settings; `problems` lists every offending field, one message each. */
export class SettingsError extends Error {
    constructor(public readonly problems: string[]) {
        super(problems.join("\n"));
        this.name = "SettingsError";
    }
}

/** Any value as it can be shown in a message: never throws (BigInt, circular objects, NaN, symbols). */
export function shown(value: unknown): string {
    if (typeof value === "bigint") return `${value}n`;
    if (typeof value === "number" && !Number.isFinite(value)) return String(value);
    if (typeof value === "symbol" || typeof value === "function") return String(value);
    if (value === undefined) return "undefined";
    try {
        const text = JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? `${v}n` : v));
        return text.length > 200 ? `${text.slice(0, 200)}...` : text;
    } catch {
        return Array.isArray(value) ? "an array that contains itself" : "an object that contains itself";
    }
}

/** Levenshtein distance, for "did you mean" hints. */
function distance(a: string, b: string): number {
    const row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
        let diagonal = row[0];
        row[0] = i;
        for (let j = 1; j <= b.length; j++) {
            const above = row[j];
            row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
            diagonal = above;
        }
    }
    return row[b.length];
}

/** The known key nearest to a typo, if one is near enough to be what was meant. */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
    let best: string | undefined;
    let bestDistance = Infinity;
    for (const candidate of known) {
        const d = candidate.toLowerCase() === key.toLowerCase() ? 0 : distance(key, candidate);
        if (d < bestDistance) [best, bestDistance] = [candidate, d];
    }
    return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** One problem: its message, and every field it involves (the first is the one it is about). */
export interface Problem {
    fields: string[];
    message: string;
}

/** Collects problems; each message starts with the field it is about. */
export class Checker {
    readonly found: Problem[] = [];

    get problems(): string[] {
        return this.found.map((p) => p.message);
    }

    /** Throws one SettingsError listing every problem found, if any. */
    throwIfAny(): void {
        if (this.found.length > 0) throw new SettingsError(this.problems);
    }

    /** `related`: other fields a cross-field rule reads. */
    fail(field: string, message: string, ...related: string[]): void {
        this.found.push({ fields: [field, ...related], message: `${field} ${message}` });
    }

    /** Every key of `value` must be one of `known`; a typo gets the nearest known key as a hint. */
    knownKeys(field: string, value: unknown, known: readonly string[]): void {
        if (!isRecord(value)) return;
        for (const key of Object.keys(value)) {
            if (known.includes(key)) continue;
            const hint = nearestKey(key, known);
            const at = field === "" ? key : `${field}.${key}`;
            this.fail(at, hint ? `is not a known setting: did you mean ${hint}?` : `is not a known setting (known: ${known.join(", ")})`);
        }
    }

    integer(field: string, value: unknown, min: number, max: number): void {
        if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
            this.fail(field, `must be an integer from ${min} to ${max} (got ${shown(value)})`);
        }
    }

    port(field: string, value: unknown): void {
        this.integer(field, value, 1, 65535);
    }

    matches(field: string, value: unknown, pattern: RegExp, allowed: string): boolean {
        if (typeof value !== "string" || !pattern.test(value)) {
            this.fail(field, `${allowed} (got ${shown(value)})`);
            return false;
        }
        return true;
    }

    containerName(field: string, value: unknown): void {
        this.matches(
            field,
            value,
            INSTANCE_NAME,
            "must be an Incus instance name: 1-63 letters, digits and -, starting with a letter, not ending with -",
        );
    }

    /** Where a pushed certificate is written: directly in CERT_DIR, never over a config or system file. */
    certPath(field: string, value: unknown): void {
        const file = typeof value === "string" && value.startsWith(`${CERT_DIR}/`) ? value.slice(CERT_DIR.length + 1) : undefined;
        if (file === undefined || !CERT_FILE.test(file)) {
            this.fail(
                field,
                `must be a .pem file directly in ${CERT_DIR}/ (name of A-Z a-z 0-9 . _ -), e.g. "${CERT_DIR}/veza.pem", ` +
                    `when the component pushes the certificate (got ${shown(value)})`,
            );
        }
    }

    absolutePath(field: string, value: unknown, emptyMeans?: string): void {
        if (emptyMeans !== undefined && value === "") return;
        const ok = typeof value === "string" && ABSOLUTE_PATH.test(value) && !value.split("/").includes("..");
        if (!ok) {
            const empty = emptyMeans ? `, or "" for ${emptyMeans}` : "";
            this.fail(field, `must be an absolute path of A-Z a-z 0-9 . _ - segments without ".."${empty} (got ${shown(value)})`);
        }
    }
}
