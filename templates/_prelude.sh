set -eu
# Each step script names its exit codes (EXIT_*) in one block at its top,
# before this prelude: EXIT_OK (0) and EXIT_FAILED (1) in every one, its own
# codes beside them. Under set -e a command that fails unexpectedly ends the
# step with that command's own code (incus's is 1).
log() { printf 'veza-haproxy[%s]: %s\n' "$step" "$*" >&2; }
# fail MESSAGE: logs it and ends the step with the script's EXIT_FAILED (1).
fail() { log "ERROR: $*"; exit "$EXIT_FAILED"; }
# Every input arrives on stdin, never in the environment: over SSH a stock
# sshd refuses environment variables (no AcceptEnv), and nothing is spliced
# into this constant script. stdin starts with a header, "veza-step/1" then
# name=value lines and a blank line; the step's payload (a config, a
# certificate bundle) follows and is left unread for the step to consume.
# read_header NAME...: sets hdr_NAME for each expected field; any other
# field, a value outside the header's character set or a missing field fails
# before anything is touched. A NAME ending in ? is optional (hdr_NAME is ""
# when it is absent): a field added for a new feature leaves the stdin of
# steps that do not use it byte-identical, so they do not re-run. `read`
# takes stdin one line at a time, so the payload stays on stdin.
read_header() {
    IFS= read -r line || fail "nothing on stdin: the step's inputs arrive there (veza-step/1 header)"
    [ "$line" = "veza-step/1" ] || fail "stdin does not start with the veza-step/1 header: the script and the component that built its input disagree"
    ended=no
    while IFS= read -r line; do
        if [ -z "$line" ]; then ended=yes; break; fi
        name=${line%%=*}
        value=${line#*=}
        case $name in '' | [!a-z]* | *[!a-z0-9_]*) fail "malformed header line (expected name=value)" ;; esac
        case " $* " in *" $name "* | *" $name? "*) ;; *) fail "unexpected header field $name" ;; esac
        case $value in *[!A-Za-z0-9._:/,@+=-]*) fail "header field $name holds a character outside A-Z a-z 0-9 . _ : / , @ + = -" ;; esac
        # It reaches incus as an argument: a leading - would be read as an option.
        case $value in -*) fail "header field $name starts with -: incus would read it as an option" ;; esac
        eval "hdr_$name=\$value"
    done
    [ "$ended" = yes ] || fail "the veza-step/1 header ends without its blank line: input cut short"
    for name in "$@"; do
        case $name in
            *[?]) eval "hdr_${name%[?]}=\${hdr_${name%[?]}:-}" ;;
            *) eval "[ -n \"\${hdr_$name:-}\" ]" || fail "header field $name is missing or empty" ;;
        esac
    done
}
command -v incus >/dev/null 2>&1 || fail "the incus CLI is not on the PATH of the Incus host"
# The container's owner token, "" when none was recorded.
# shellcheck disable=SC2317 # a shared helper: not every step calls it
owner_of() { incus config get "$1" user.veza.owner </dev/null 2>/dev/null || true; }
# The stack that owns the container, <project>/<stack>; "" when none was recorded.
# shellcheck disable=SC2317 # a shared helper: not every step calls it
stack_of() { incus config get "$1" user.veza.stack </dev/null 2>/dev/null || true; }
# A takeover within the stack not yet confirmed: the token of the owner a
# container step took the container from (user.veza.adopted-from), "" when
# none. The old owner's delete confirms it (the run that renamed or switched
# finished); the new owner's delete, when that run failed and was reverted,
# hands the container back instead of deleting it. Until then no delete of
# the new owner's steps removes anything.
# shellcheck disable=SC2317 # a shared helper: not every step calls it
adopted_from() { incus config get "$1" user.veza.adopted-from </dev/null 2>/dev/null || true; }
# require_owner CONTAINER OWNER WHAT: fails, touching nothing, unless
# CONTAINER records OWNER (the token of this step's container step) as its
# owner; the message ends "not touching WHAT".
# shellcheck disable=SC2317 # a shared helper: not every step calls it
require_owner() {
    recorded_owner=$(owner_of "$1")
    [ "$recorded_owner" = "$2" ] || fail "$1 is owned by another step (owner ${recorded_owner:-none}, this step $2): not touching $3"
}
# may_undo CONTAINER OWNER LEAVING: whether a delete may undo what its step
# set up in CONTAINER: only while CONTAINER records OWNER and no takeover by
# that owner is pending (adopted_from). Otherwise says why, "leaving
# LEAVING", and returns 1: the delete then leaves the container alone and
# succeeds (a rename's new step serves from it, or gets it handed back).
# shellcheck disable=SC2317 # a shared helper: not every step calls it
may_undo() {
    recorded_owner=$(owner_of "$1")
    if [ "$recorded_owner" != "$2" ]; then
        log "$1 is owned by another step now (owner ${recorded_owner:-none}): leaving $3"
        return 1
    fi
    if [ -n "$(adopted_from "$1")" ]; then
        log "this step took $1 over in a run that did not finish: leaving $3"
        return 1
    fi
}
# The container's status as Incus reports it (RUNNING, STOPPED, FROZEN,
# ERROR); "" when it does not exist or Incus does not answer.
# shellcheck disable=SC2317 # a shared helper: not every step calls it
container_status() { incus list "^$1\$" --format csv --columns s </dev/null 2>/dev/null || true; }
# container_running CONTAINER: 0 when it exists and runs, 1 otherwise.
# shellcheck disable=SC2317 # a shared helper: not every step calls it
container_running() { [ "$(container_status "$1")" = RUNNING ]; }
# install_file CONTAINER PATH MODE: installs stdin as PATH in CONTAINER,
# atomically: written to PATH.veza-new (its directory made first), given
# MODE, then moved over PATH, so nothing ever runs or reads half a file.
# shellcheck disable=SC2317 # a shared helper: not every step calls it
install_file() {
    # shellcheck disable=SC2016 # $1 and $2 are the container shell's arguments
    incus exec "$1" -- sh -c 'mkdir -p "$(dirname "$1")" && cat > "$1.veza-new" && chmod "$2" "$1.veza-new" && mv "$1.veza-new" "$1"' \
        veza-install "$2" "$3"
}
