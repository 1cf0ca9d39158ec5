// Prints jest's totals as one plain line ("jest: N passed, N failed, N skipped")
// and, when VEZA_TEST_SUMMARY names a file, appends them there so .ci/run can
// print the grand total of every suite it ran.
// jest loads reporters with require(): this file stays CommonJS.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const fs = require("fs");

class SummaryReporter {
    onRunComplete(_contexts, results) {
        const passed = results.numPassedTests;
        const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
        const skipped = results.numPendingTests + results.numTodoTests;
        process.stdout.write(`jest: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
        if (process.env.VEZA_TEST_SUMMARY) {
            fs.appendFileSync(process.env.VEZA_TEST_SUMMARY, `${passed} ${failed} ${skipped}\n`);
        }
    }
}

module.exports = SummaryReporter;
