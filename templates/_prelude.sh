set -eu
log() { printf 'veza-haproxy[%s]: %s\n' "$step" "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }
require_env() {
    for name in "$@"; do
        eval "value=\${$name:-}"
        [ -n "$value" ] || fail "environment variable $name is not set. The component always passes it; over SSH the Incus host must accept it: add \"AcceptEnv VEZA_*\" to its sshd_config and reload sshd"
    done
}
command -v incus >/dev/null 2>&1 || fail "the incus CLI is not on the PATH of the Incus host"
