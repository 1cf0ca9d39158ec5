/**
 * `npm run lab:backends`: the lab stack's four backends (Pulumi.lab.yaml) as
 * Incus containers running the test fixture's fake backend, so a lab made by
 * `npm run lab:setup` serves without the real Veza services. Idempotent:
 * running containers are left as they are. `npm run lab:teardown` removes them.
 */
import { API_PORT, launchBackend, listContainers, STREAM_PORT } from "./lab";

const BACKENDS: [string, number][] = [
    ["backend-api-1", API_PORT],
    ["backend-api-2", API_PORT],
    ["stream-srv-1", STREAM_PORT],
    ["stream-srv-2", STREAM_PORT],
];

async function main(): Promise<void> {
    const existing = new Set(await listContainers());
    for (const [name, port] of BACKENDS) {
        if (existing.has(name)) {
            console.log(`${name}: exists, left as it is`);
            continue;
        }
        console.log(`${name}: ${await launchBackend(name, port)} (port ${port})`);
    }
}

main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
});
