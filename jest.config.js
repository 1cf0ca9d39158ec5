/** Three suites: unit (pure + mocks), behaviour (real haproxy on loopback), e2e (real Incus). */
const common = {
    preset: "ts-jest",
    testEnvironment: "node",
    transform: { "^.+\\.ts$": ["ts-jest", { diagnostics: false }] },
    setupFilesAfterEnv: ["<rootDir>/tests/support/release-stdin.ts"],
};
module.exports = {
    reporters: ["default", "<rootDir>/tests/support/summary-reporter.js"],
    projects: [
        { ...common, displayName: "unit", testMatch: ["<rootDir>/tests/unit/**/*.test.ts"] },
        { ...common, displayName: "behaviour", testMatch: ["<rootDir>/tests/behaviour/**/*.test.ts"] },
        { ...common, displayName: "e2e", testMatch: ["<rootDir>/tests/e2e/**/*.test.ts"] },
    ],
};
