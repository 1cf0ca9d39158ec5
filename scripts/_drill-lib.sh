# Shared by the drills (sourced, POSIX sh): messages, input checks, clocks.
# The caller sets $drill (its name in messages) before sourcing.
# shellcheck shell=sh disable=SC2154 # $drill comes from the sourcing drill

say() { printf '%s: %s\n' "$drill" "$*"; }
die() { printf '%s: FAILED: %s\n' "$drill" "$*" >&2; exit 1; }

# check_name VALUE...: container, unit and pool names reach incus and awk.
check_name() {
    for value in "$@"; do
        case $value in *[!A-Za-z0-9._-]*|"") die "invalid name '$value' (allowed: A-Z a-z 0-9 . _ -)" ;; esac
    done
}

# check_request PATH PORT TIMEOUT: what goes into a request line and a loop bound.
check_request() {
    case $1 in /*) ;; *) die "VEZA_PATH must start with /" ;; esac
    case $1 in *[!A-Za-z0-9._~/?=\&%+-]*) die "VEZA_PATH may hold only A-Z a-z 0-9 . _ ~ / ? = & % + -" ;; esac
    case $2$3 in *[!0-9]*|"") die "VEZA_PORT and VEZA_TIMEOUT must be numbers" ;; esac
}

# Milliseconds since the epoch (GNU date; whole seconds where %N is unsupported).
now_ms() {
    t=$(date +%s%N 2>/dev/null) || t=""
    case $t in "" | *[!0-9]*) echo $(( $(date +%s) * 1000 )) ;; *) echo $(( t / 1000000 )) ;; esac
}
secs() { printf '%d.%02d' $(( $1 / 1000 )) $(( $1 % 1000 / 10 )); } # ms -> "1.50"
