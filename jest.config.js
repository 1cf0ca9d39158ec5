/** Three suites: unit (pure + mocks), behaviour (real haproxy on loopback), e2e (real Incus). */
const common = {
    preset: "ts-jest",
    testEnvironment: "node",
    transform: { "^.+\\.ts$": ["ts-jest", { diagnostics: false }] },
};
module.exports = {
    reporters: ["default", "<rootDir>/tests/support/summary-reporter.js"],
    // At jest's end message both workers are still busy (ps: state R, on this
    // 2-core machine), not held by a handle: with 5 s they exit by themselves
    // in every run measured, with or without anything else changed; the 500 ms
    // default killed one each run ("failed to exit gracefully"). A worker that
    // a leaked handle keeps alive is still reported, after 5 s.
    workerGracefulExitTimeout: 5000,
    projects: [
        { ...common, displayName: "unit", testMatch: ["<rootDir>/tests/unit/**/*.test.ts"] },
        { ...common, displayName: "behaviour", testMatch: ["<rootDir>/tests/behaviour/**/*.test.ts"] },
        { ...common, displayName: "e2e", testMatch: ["<rootDir>/tests/e2e/**/*.test.ts"] },
        // The real Pulumi CLI and engine on real Incus (tests/engine/README.md).
        { ...common, displayName: "engine", testMatch: ["<rootDir>/tests/engine/**/*.test.ts"] },
    ],
};
