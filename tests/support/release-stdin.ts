/*
 * Jest setup (every project): lets a worker exit when its files are done.
 * @pulumi/pulumi's automation module does `__importStar(require("process"))`,
 * which reads every property of `process`, `stdin` included: that opens the
 * worker's stdin pipe, a handle that kept each jest worker alive until jest
 * killed it ("A worker process has failed to exit gracefully"). Measured with
 * an async_hooks trace of the handles still open after jest's end message.
 * Unref'ing it after each file lets the worker's event loop drain.
 */
afterAll(() => {
    const stdin = process.stdin as unknown as { unref?: () => void };
    stdin.unref?.();
});
