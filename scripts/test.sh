#!/usr/bin/env bash
# scripts/test.sh: the README's test command, and what CI runs (.ci/run).
# On a Debian 12 machine, as root: installs whatever is missing
# (scripts/install.sh), then runs every suite:
#   npm test            typecheck, lint, unit and behaviour on this machine's HAProxy 2.6
#   test:haproxy-3.0    the haproxy-facing suites on Debian 13's HAProxy 3.0
#   test:haproxy-3.2    the same on Debian testing's HAProxy 3.2
#   test:e2e            the steps' scripts on real Incus containers
#   test:engine         the lab stack through the real Pulumi CLI and engine
# and prints how many passed, failed and were skipped. A suite that needs a
# tool this machine lacks fails under CI=true and says SKIPPED elsewhere.
# The e2e suite uses the lab's container names: a lab brought up with
# scripts/lab.sh is removed; run that again afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

echo "== install (only what is missing)"
bash scripts/install.sh

echo "== build (library: JS + .d.ts)"
npm run build

summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
export VEZA_TEST_SUMMARY=$summary
status=0

echo "== npm test (HAProxy 2.6, this Debian 12 machine's)"
VEZA_EXPECT_HAPROXY=2.6 npm test || status=1
echo "== npm run test:haproxy-3.0 (real haproxy -c, the config step and the behaviour suite on Debian 13's HAProxy)"
npm run test:haproxy-3.0 || status=1
echo "== npm run test:haproxy-3.2 (the same on Debian testing's HAProxy 3.2, the next LTS)"
npm run test:haproxy-3.2 || status=1
echo "== npm run test:e2e"
npm run test:e2e || status=1
echo "== Pulumi CLI (built by install when this machine has Go)"
if bash scripts/pulumi-toolchain.sh --find >/dev/null; then
    echo "== npm run test:engine (the lab stack through the real Pulumi CLI and engine on real Incus)"
    npm run test:engine || status=1
else
    echo "test: no Pulumi CLI (scripts/install.sh builds it where Go 1.26+ is installed): test:engine cannot run"
    if [ "${CI:-}" = true ]; then status=1; else echo "test:engine SKIPPED"; fi
fi
bash lab/teardown-incus.sh || true

read -r passed failed skipped < <(awk '{p += $1; f += $2; s += $3} END {print p+0, f+0, s+0}' "$summary")
echo "test: $(($(date +%s) - started))s"
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
