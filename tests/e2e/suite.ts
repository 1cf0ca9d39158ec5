/**
 * What every e2e file needs around its tests: a note book for the measured
 * numbers, and cleanup that runs even when a test fails.
 */
import { cleanupAll } from "../support";
import { abortAllTraffic, deleteContainers } from "../support/lab";

export interface NoteBook {
    /** Records a measurement and prints it at once. */
    note(key: string, value: string): void;
    /** Prints every measurement of the file, in order. */
    summary(): void;
}

export function noteBook(prefix: string): NoteBook {
    const notes: Record<string, string> = {};
    return {
        note(key, value) {
            notes[key] = value;

            console.log(`[${prefix}] ${key}: ${value}`);
        },
        summary() {
            console.log(
                `[${prefix}] summary\n${Object.entries(notes)
                    .map(([k, v]) => `  ${k}: ${v}`)
                    .join("\n")}`,
            );
        },
    };
}

/**
 * Call inside the file's describe: client loops stop after each test; at the
 * end the file's containers are deleted (even after a failure) and its notes
 * printed with the file's total time.
 */
export function cleanUpAfterSuite(containers: readonly string[], notes: NoteBook): void {
    const start = Date.now();
    afterEach(async () => {
        await abortAllTraffic();
    });
    afterAll(async () => {
        try {
            await abortAllTraffic();
            await deleteContainers(containers);
        } finally {
            // What the test kit started for the file (Pebble, WebSockets, temp dirs): jest exits only once they are gone.
            await cleanupAll();
            notes.note("total time of this file", `${((Date.now() - start) / 1000).toFixed(1)} s`);
            notes.summary();
        }
    }, 120_000);
}
