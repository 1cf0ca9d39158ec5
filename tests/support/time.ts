/** A deliberate pause (traffic cadence, an idle gap under test): never use it to wait for a state, poll instead. */
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
