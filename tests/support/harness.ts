import { closeAllBackends } from "./backend";
import { stopAllHaproxy } from "./haproxy-process";
import { closeAllWebSockets } from "./http";

/**
 * Stops everything a test file started (haproxy processes and their temp
 * dirs, fake backends, WebSocket clients). Safe to call twice; use it in
 * afterEach/afterAll so a failing test leaves nothing running.
 */
export async function cleanupAll(): Promise<void> {
    closeAllWebSockets();
    await stopAllHaproxy();
    await closeAllBackends();
}
