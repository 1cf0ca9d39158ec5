#!/usr/bin/env bash
# scripts/install.sh: everything the lab and the tests need on this machine,
# installed only where missing, so a second run changes nothing and takes
# seconds. Run as root on Debian 12 (the first of the README's two commands
# calls it; so does the second, and CI).
#
# Steps (each says what it found or did):
#   packages   Debian packages the tests and the lab use (haproxy for haproxy -c
#              and the behaviour suite, keepalived -t, shellcheck, Pebble and
#              lego for ACME, sslscan, slowhttptest, sshd for SSH mode,
#              prometheus for promtool and the metrics suite), Node.js when
#              the machine has none. Prometheus comes without its recommended
#              exporters and its own service stopped: the tests start their
#              own instance on loopback, with their own config.
#   node       the npm dependencies, when package-lock.json changed since the
#              last install (its digest is kept in node_modules/).
#   incus      Incus, its bridge and the Debian 13 images (lab/setup-incus.sh:
#              idempotent, seconds when done).
#   pulumi     the Pulumi CLI, built from Go modules where this machine has Go
#              (scripts/pulumi-toolchain.sh: cached by version). Without Go, or
#              if the build fails, it says so and goes on: only the engine
#              tests need it.
#
# Exit codes: 0 done; 1 a step failed (named in the message).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

PACKAGES=(haproxy socat shellcheck openssl openssh-server openssh-client keepalived slowhttptest pebble lego sslscan)
# Installed for their binaries only: no recommended packages, no running service.
BINARY_ONLY_PACKAGES=(prometheus)
INSTALLED=()

log() { printf 'install: %s\n' "$*" >&2; }
fail() {
    printf 'install: FAILED (%s): %s\n' "$1" "$2" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] || fail precheck "run as root: it installs Debian packages and Incus"

missing_packages() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || printf '%s\n' "$p"
    done
}

# install_missing LABEL APT_OPTION|"" PACKAGE...: apt-get install the ones not installed yet, and set INSTALLED to them.
install_missing() {
    local label=$1 option=$2 missing
    shift 2
    mapfile -t missing < <(missing_packages "$@")
    if [ "${#missing[@]}" -eq 0 ]; then
        log "$label: all $# present"
        return
    fi
    log "$label: installing ${missing[*]}"
    apt-get update -q >/dev/null || fail packages "apt-get update failed"
    apt-get install -y -q ${option:+"$option"} "${missing[@]}" >/dev/null || fail packages "apt-get install ${missing[*]} failed"
    INSTALLED=("${missing[@]}")
}

step_packages() {
    local wanted=("${PACKAGES[@]}") p
    command -v node >/dev/null 2>&1 || wanted+=(nodejs npm)
    install_missing packages "" "${wanted[@]}"
    INSTALLED=()
    install_missing "packages (binaries only)" --no-install-recommends "${BINARY_ONLY_PACKAGES[@]}"
    if [ -d /run/systemd/system ]; then
        for p in "${INSTALLED[@]}"; do systemctl disable --now "$p" >/dev/null 2>&1 || true; done
    fi
}

step_node() {
    local want have stamp=node_modules/.veza-lock-sha256
    want=$(sha256sum package-lock.json | cut -d' ' -f1)
    have=$(cat "$stamp" 2>/dev/null || true)
    if [ "$want" = "$have" ]; then
        log "node: dependencies match package-lock.json"
        return
    fi
    log "node: npm ci"
    npm ci --no-audit --no-fund >&2 || fail node "npm ci failed"
    printf '%s\n' "$want" >"$stamp"
}

step_incus() {
    bash lab/setup-incus.sh >&2 || fail incus "lab/setup-incus.sh failed (its message above)"
}

step_pulumi() {
    if ! command -v go >/dev/null 2>&1; then
        log "pulumi: not built, no Go on this machine (Go 1.26+ and the Go module proxy build it); only the engine tests need it"
        return
    fi
    # Not fatal: the lab and every other suite run without it, and the test command reports the engine tests' absence.
    bash scripts/pulumi-toolchain.sh >&2 || log "pulumi: scripts/pulumi-toolchain.sh failed (its message above); only the engine tests need it"
}

started=$(date +%s)
step_packages
step_node
step_incus
step_pulumi
log "done in $(($(date +%s) - started)) s"
