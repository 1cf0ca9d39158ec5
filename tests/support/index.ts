/*
 * The test kit's only public entry point: tests (behaviour, unit, e2e) and the
 * bench import from "tests/support", never from a module in this directory,
 * so the modules can move without touching their users. What is not listed
 * here (parsers, the Haproxy class, ...) is internal. See README.md.
 */

// Time: the one sleep, the one poll.
export { sleep, waitFor, within } from "./time";
export type { WaitOptions } from "./time";

// The one cleanup registry.
export { cleanupAll, onCleanup } from "./cleanup";

// Gating a suite on the binaries it needs.
export { findBinary, haproxyVersion, isCI, requireBinary } from "./requirements";

// Loopback ports.
export { freePort } from "./ports";

// Fake upstreams.
export { REQUEST_PROBE, serverEntry, startBackend, startBackends } from "./backend";
export type { BackendOptions, FakeBackend, HealthCheckRecord } from "./backend";

// The real rendered haproxy.cfg, run unprivileged.
export { ADMIN_STATE, makeTempDir, OP_STATE, parseShowProc, socketCommand, startHaproxy, TEST_STATS_PASSWORD } from "./haproxy-process";
export type { HaproxyProcess, ProcInfo, ServerState, StartOptions, StatRow } from "./haproxy-process";

// A haproxy in front of api and stream backends.
export { forceHealthUp, manyNetworks, startLab, trackId } from "./pools";
export type { Lab, LabOptions } from "./pools";

// The one HTTP client, and WebSockets.
export {
    assertTestNetwork,
    backendOf,
    echo,
    get,
    keepAliveAgent,
    keepAliveHttpsAgent,
    openWebSocket,
    pool,
    rawRequest,
    request,
    setCookie,
    setCookies,
    underLoad,
} from "./http";
export type { EchoBody, HttpResponse, LoadCounts, OpenWebSocket, RequestOpts, SetCookie } from "./http";

// The one test certificate.
export { makeTestCert } from "./tls-cert";
export type { TestCert } from "./tls-cert";

// A real ACME CA (Pebble) for the certificate tests.
export { pebblePrograms, pebbleReady, scanTls, servedCertificate, startPebble } from "./pebble";
export type { PebbleCa, PebbleOptions, PebblePorts, ServedCertificate, TlsScan } from "./pebble";

// Pulumi programs under setMocks (the SDK loads on first use).
export {
    deepUnwrap,
    installMocks,
    isSecret,
    labStackConfig,
    registeredAll,
    setMockAddress,
    setStackConfig,
    unwrap,
    valueOf,
} from "./pulumi-mocks";
export type { Registered } from "./pulumi-mocks";

// A step's stdin: its veza-step/1 header and payload, read and rewritten.
export { parseStepStdin, withHeader } from "./step-stdin";
