#!/usr/bin/env bash
# npm run pulumi:toolchain: the Pulumi CLI built from Go modules (no prebuilt
# download is reachable from these machines), cached by version. Prints what
# it built or found and how long it took; its LAST line is the directory that
# holds `pulumi` (put it first on PATH).
#
# What the Go module proxy serves decides what can be built:
# - the CLI, github.com/pulumi/pulumi/pkg/v3/cmd/pulumi: served. Its module
#   has replace directives, so `go install pkg@version` is refused; it is
#   built from a throwaway module that requires pkg/v3 and sdk/v3 at one
#   version (Go applies only the main module's replaces).
# - the command provider (github.com/pulumi/pulumi-command/provider), the
#   random provider and the Node.js language host
#   (github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3):
#   not served (403). Every cold build asks again for the command provider
#   and the language host, the two the engine tests stand in for most, and
#   says so; the engine tests then use the stand-ins in tests/engine/stand-ins/
#   and serve the program in-process (tests/engine/inline-host.ts).
#
# --find: build nothing; print the directory if the CLI is cached, else exit 3.
# Env: VEZA_TOOLCHAIN_CACHE (default ~/.cache/veza-haproxy/pulumi).
set -euo pipefail

# The CLI must be at least as new as the @pulumi/pulumi the lockfile pins (3.248.0).
PULUMI_CLI_VERSION=3.276.0
CACHE_ROOT=${VEZA_TOOLCHAIN_CACHE:-${HOME}/.cache/veza-haproxy/pulumi}
BIN_DIR="${CACHE_ROOT}/v${PULUMI_CLI_VERSION}/bin"

die() {
    echo "pulumi-toolchain: $*" >&2
    exit 1
}

# step: found — the cached CLI answers with the version it was built as.
if [ -x "${BIN_DIR}/pulumi" ] && [ "$("${BIN_DIR}/pulumi" version 2>/dev/null)" = "v${PULUMI_CLI_VERSION}" ]; then
    echo "pulumi-toolchain: found pulumi v${PULUMI_CLI_VERSION} (cached)"
    echo "${BIN_DIR}"
    exit 0
fi

if [ "${1:-}" = "--find" ]; then
    echo "pulumi-toolchain: pulumi v${PULUMI_CLI_VERSION} is not built in ${BIN_DIR}: run npm run pulumi:toolchain" >&2
    exit 3
fi
command -v go >/dev/null || die "go not found: the CLI is built from Go modules (Go 1.26+ and the Go module proxy)"
started=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# step: build the CLI from a throwaway module.
echo "pulumi-toolchain: building pulumi v${PULUMI_CLI_VERSION} from Go modules ($(go version | cut -d' ' -f3))"
cd "$work"
go mod init veza.local/pulumi-toolchain >/dev/null 2>&1
cat >tools.go <<'EOF'
//go:build tools

package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
EOF
go get "github.com/pulumi/pulumi/pkg/v3@v${PULUMI_CLI_VERSION}" "github.com/pulumi/pulumi/sdk/v3@v${PULUMI_CLI_VERSION}" >/dev/null 2>"$work/get.log" ||
    die "go get pkg/v3 and sdk/v3 v${PULUMI_CLI_VERSION} failed: $(tail -3 "$work/get.log")"
go mod tidy >/dev/null 2>"$work/tidy.log" || die "go mod tidy failed: $(tail -3 "$work/tidy.log")"
mkdir -p "${BIN_DIR}"
CGO_ENABLED=0 go build -tags osusergo,grpcnotrace \
    -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v${PULUMI_CLI_VERSION}" \
    -o "${BIN_DIR}/pulumi.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi || die "go build of the CLI failed"
mv "${BIN_DIR}/pulumi.tmp" "${BIN_DIR}/pulumi"

# step: the modules that are not served, asked again so a change is noticed.
for module in github.com/pulumi/pulumi-command/provider github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3; do
    if go list -m -versions "${module}" >/dev/null 2>"$work/list.log"; then
        echo "pulumi-toolchain: NOTE ${module} is now served: build it instead of the stand-in (tests/engine/README.md)"
    else
        echo "pulumi-toolchain: ${module}: not served ($(grep -o '[0-9][0-9][0-9] [A-Za-z ]*' "$work/list.log" | head -1))"
    fi
done

echo "pulumi-toolchain: built pulumi v${PULUMI_CLI_VERSION} in $(($(date +%s) - started)) s, $(du -m "${BIN_DIR}/pulumi" | cut -f1) MB"
echo "${BIN_DIR}"
