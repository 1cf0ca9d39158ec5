/** A deliberate pause (traffic cadence, an idle gap under test): never use it to wait for a state, poll with waitFor instead. */
export function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `promise`'s value, or `fallback` if it has not settled within `ms` (the timer is cleared either way). */
export function within<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<F>((resolve) => {
        timer = setTimeout(() => resolve(fallback), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface WaitOptions {
    /** What is awaited, for the error message ("backend-api-1 DOWN"). */
    what: string;
    /** Default 10 s. */
    timeoutMs?: number;
    /** Pause between two polls; default 25 ms. */
    intervalMs?: number;
}

/**
 * Polls `predicate` until it returns something truthy (returned) or the time
 * is up (throws, naming `what` and the last value or error seen). A throwing
 * predicate counts as "not yet", so a probe can throw to explain why.
 */
export async function waitFor<T>(predicate: () => T | Promise<T>, opts: WaitOptions): Promise<NonNullable<T>> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const intervalMs = opts.intervalMs ?? 25;
    const started = Date.now();
    let last: unknown;
    let lastError: unknown;
    for (;;) {
        try {
            last = await predicate();
            lastError = undefined;
            if (last) return last as NonNullable<T>;
        } catch (err) {
            lastError = err;
        }
        if (Date.now() - started >= timeoutMs) {
            const detail = lastError !== undefined ? `last error: ${String(lastError)}` : `last value: ${JSON.stringify(last)}`;
            throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what} (${detail})`);
        }
        await sleep(intervalMs);
    }
}
