set -eu
log() { printf 'veza-haproxy[%s]: %s\n' "$step" "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }
require_env() {
    for name in "$@"; do
        eval "value=\${$name:-}"
        [ -n "$value" ] || fail "environment variable $name is empty; the component always sets it"
    done
}
command -v incus >/dev/null 2>&1 || fail "the incus CLI is not on the PATH of the Incus host"
