import { createServer } from "net";

/**
 * A TCP port that is free on 127.0.0.1 right now: bind port 0, read the port
 * the kernel picked, close. Another process could take it before the caller
 * binds it; startHaproxy retries with fresh ports when that happens.
 */
export function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const server = createServer();
        server.unref();
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => {
            const address = server.address();
            if (address === null || typeof address === "string") {
                server.close();
                reject(new Error(`freePort: unexpected address ${JSON.stringify(address)}`));
                return;
            }
            const { port } = address;
            server.close((err) => (err ? reject(err) : resolve(port)));
        });
    });
}
