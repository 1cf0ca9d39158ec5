/*
 * Child process that hosts ONE FakeBackend from tests/support/backend.ts (the
 * same fake upstream the behaviour tests use), so each bench backend has its
 * own event loop and CPU time instead of sharing the bench driver's thread.
 * Driven over IPC by bench/lib/backends.ts:
 *   -> {cmd: "kill" | "restart" | "close" | "stats", id}
 *   <- {ready: true, port} once listening, then {id, ok, ...} per command.
 * Usage (from bench/lib/backends.ts only): backend-host.ts NAME PORT
 */
import { FakeBackend, startBackend } from "../tests/support";

interface Command {
    id: number;
    cmd: "kill" | "restart" | "close" | "stats" | "setHealthy";
    healthy?: boolean;
}

async function main(): Promise<void> {
    const [name, portText] = process.argv.slice(2);
    const backend: FakeBackend = await startBackend({ name, port: Number(portText) || undefined });
    const send = (m: object) => process.send?.(m);
    process.on("message", async (m: Command) => {
        try {
            if (m.cmd === "kill") await backend.kill();
            else if (m.cmd === "restart") await backend.restart();
            else if (m.cmd === "setHealthy") backend.setHealthy(m.healthy !== false);
            else if (m.cmd === "close") {
                await backend.close();
                send({ id: m.id, ok: true });
                process.exit(0);
            }
            send({ id: m.id, ok: true, requests: backend.requests, healthChecks: backend.healthChecks.length });
        } catch (e) {
            send({ id: m.id, ok: false, error: String(e) });
        }
    });
    // The bench driver went away: do not linger.
    process.on("disconnect", () => process.exit(0));
    send({ ready: true, port: backend.port });
}

main().catch((e) => {
    process.stderr.write(`backend-host: ${e}\n`);
    process.exit(1);
});
