import { within } from "./time";

/*
 * The one cleanup registry of the kit, for the tests and the bench alike.
 * startHaproxy, startBackend and openWebSocket register what they start;
 * anything else registers with onCleanup. cleanupAll runs the cleanups last
 * registered first (a WebSocket before the haproxy it goes through, a haproxy
 * before its backends). Each jest test file has its own module registry, so
 * its own list.
 */

type Cleanup = () => unknown;

/** A cleanup that hangs must not keep the others (and the process) waiting for ever. */
const CLEANUP_TIMEOUT_MS = 5000;

const cleanups: { fn: Cleanup; what: string }[] = [];
let draining: Promise<void> | undefined;

/** Registers `fn` (haproxy.stop(), backend.close(), rm of a temp dir...) for the next cleanupAll. */
export function onCleanup(fn: Cleanup, what = "a cleanup"): void {
    cleanups.push({ fn, what });
}

/**
 * Runs every registered cleanup, last registered first, each bounded to 5 s,
 * and empties the list; a failing one does not stop the others, and the
 * failures are thrown together at the end (a test's teardown fails loudly).
 * Safe to call again (afterEach, then afterAll); a call made while a run is in
 * progress (Ctrl-C during the bench's final cleanup) waits for that run.
 */
export function cleanupAll(): Promise<void> {
    draining ??= drain().finally(() => {
        draining = undefined;
    });
    return draining;
}

async function drain(): Promise<void> {
    const errors: string[] = [];
    for (let next = cleanups.pop(); next !== undefined; next = cleanups.pop()) {
        const { fn, what } = next;
        try {
            const done = await within(
                Promise.resolve()
                    .then(fn)
                    .then(() => true),
                CLEANUP_TIMEOUT_MS,
                false,
            );
            if (!done) errors.push(`${what}: did not finish within ${CLEANUP_TIMEOUT_MS} ms`);
        } catch (err) {
            errors.push(`${what}: ${String(err)}`);
        }
    }
    if (errors.length > 0) throw new Error(`cleanupAll: ${errors.length} cleanup(s) failed:\n${errors.join("\n")}`);
}
