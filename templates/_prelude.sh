set -eu
log() { printf 'veza-haproxy[%s]: %s\n' "$step" "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }
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
owner_of() { incus config get "$1" user.veza.owner </dev/null 2>/dev/null || true; }
# The stack that owns the container, <project>/<stack>; "" when none was recorded.
stack_of() { incus config get "$1" user.veza.stack </dev/null 2>/dev/null || true; }
# A takeover within the stack not yet confirmed: the token of the owner a
# container step took the container from (user.veza.adopted-from), "" when
# none. The old owner's delete confirms it (the run that renamed or switched
# finished); the new owner's delete, when that run failed and was reverted,
# hands the container back instead of deleting it. Until then no delete of
# the new owner's steps removes anything.
adopted_from() { incus config get "$1" user.veza.adopted-from </dev/null 2>/dev/null || true; }
