# Runs inside the container (POSIX sh). $1 config path, $2 its expected sha256,
# $3 the certificate's sha256 ("none" without TLS), $4 master CLI socket,
# $5 seconds to wait (for the lock, the master, the new worker), $6 the
# config's size in bytes, $7 the open files it needs. stdin: the new config.
# Exit codes, each with one meaning (docs/lifecycle.md, "What happens on pulumi up"):
#   0 EXIT_OK             applied, or nothing to do
#   1 EXIT_DAMAGED        the config arrived damaged (size or sha256 differ)
#   2 EXIT_REJECTED       haproxy -c rejected it
#   3 EXIT_RESTORED       the reload or start failed; the previous config was restored
#   4 EXIT_PORT_HELD      a port of the new config is held by another program
#   5 EXIT_LOCKED         another apply held the lock for the whole wait
#   6 EXIT_UNWRITABLE     the new config could not be written (disk full, read-only)
#   7 EXIT_MASTER_SILENT  the master CLI did not answer, so a reload could not be proven
#   8 EXIT_TOO_LARGE      the config is larger than the limit and was not read
#   9 EXIT_OPEN_FILES     maxConnections needs more open files than the container allows
# In 1, 2 and 4-9 the running config and process are untouched.
EXIT_OK=0 EXIT_DAMAGED=1 EXIT_REJECTED=2 EXIT_RESTORED=3 EXIT_PORT_HELD=4
EXIT_LOCKED=5 EXIT_UNWRITABLE=6 EXIT_MASTER_SILENT=7 EXIT_TOO_LARGE=8 EXIT_OPEN_FILES=9
set -eu
cfg=$1 want=$2 cert=$3 master=$4 wait_seconds=$5 bytes=$6 open_files=$7
new="$cfg.veza-new" prev="$cfg.veza-prev" stamp="$cfg.veza-stamp" lock="$cfg.veza-lock" result="$cfg.veza-result"
# Every run's outcome, for the node metrics (veza_haproxy_config_apply_last_result): "<exit code> <unix time>".
trap 'printf "%s %s\n" "$?" "$(date +%s)" > "$result" 2>/dev/null || true' EXIT
max_bytes=4194304
say() { printf 'veza-haproxy[config]: %s\n' "$*" >&2; }
# drop_new_and_exit CODE MESSAGE: a run that stops short of the swap leaves
# no stray new file behind.
drop_new_and_exit() { rm -f "$new"; say "$2"; exit "$1"; }

# --- Helpers ---

# "<master reloads> <current worker pid>" from the master CLI, or nothing
# when it does not answer (busy or hung in a reload); bounded in time. The
# current worker is the one that has lived through the fewest reloads (its
# third column), wherever it is listed: on 3.1+ the serving worker moves under
# "# old workers" after a failed reload (src/mworker.c, show proc).
master_state() {
    echo "show proc" | timeout 3 socat -t 2 stdio "UNIX-CONNECT:$master" 2>/dev/null | awk '
        $2 == "master" { reloads = $3 }
        $2 == "worker" && $3 ~ /^[0-9]+$/ && (worker == "" || $3 + 0 < fewest) { worker = $1; fewest = $3 + 0 }
        END { if (reloads ~ /^[0-9]+$/ && worker != "") print reloads, worker }'
}

# The open-file limit haproxy runs (or will start) with: the running
# master's own hard limit, else the unit's limit within what the container's
# init may hand out.
open_file_limit() {
    main=$(systemctl show -p MainPID --value haproxy 2>/dev/null) || main=0
    if [ -n "$main" ] && [ "$main" != 0 ] && [ -r "/proc/$main/limits" ]; then
        awk '/^Max open files/ {print $5}' "/proc/$main/limits"
        return
    fi
    init=$(awk '/^Max open files/ {print $5}' /proc/1/limits)
    unit=$(systemctl show -p LimitNOFILE --value haproxy 2>/dev/null) || unit=infinity
    case $unit in '' | *[!0-9]*) unit=$init ;; esac
    case $init in '' | *[!0-9]*) init=$unit ;; esac
    if [ "$unit" -lt "$init" ]; then echo "$unit"; else echo "$init"; fi
}

# The bind specs (addr:port) of the new config, each once.
listener_specs() { awk '$1 == "bind" {print $2}' "$new" | sort -u; }

# "<addr:port> <pid>" per process listening on TCP port $1; ss names them in
# its last column as users:(("prog",pid=N,fd=M),...).
holders_of_port() {
    ss -Hltnp "sport = :$1" 2>/dev/null | while read -r _ _ _ at _ users; do
        printf '%s\n' "$users" | awk -v at="$at" '{
            while (match($0, /pid=[0-9]+/)) { print at, substr($0, RSTART + 4, RLENGTH - 4); $0 = substr($0, RSTART + RLENGTH) }
        }'
    done
}

# Whether a bind on address $1 and a socket bound at $2 (addr:port) collide:
# a wildcard on either side takes every address, else only the same one does.
addresses_collide() {
    addr=${2%:*}
    addr=${addr%%[%]*}
    case $addr in '*' | 0.0.0.0 | '[::]' | '::') return 0 ;; esac
    case $1 in '*' | '' | 0.0.0.0 | '[::]' | '::') return 0 ;; esac
    [ "$addr" = "$1" ]
}

# Whether pid $1 is haproxy's master ($main) or one of its workers: HAProxy
# takes its own ports over (SO_REUSEPORT, or from the old worker).
is_our_process() {
    [ "$1" = "$main" ] && return 0
    ppid=$(awk '$1 == "PPid:" {print $2}' "/proc/$1/status" 2>/dev/null) || ppid=""
    [ -n "$main" ] && [ "$main" != 0 ] && [ "$ppid" = "$main" ]
}

# Listeners of the new config that another program already holds, one line
# per conflict: "port <p> (bind <spec>) is held by <program> (pid <n>) on
# <addr:port>". Nothing when ss is missing.
foreign_listeners() {
    command -v ss >/dev/null 2>&1 || return 0
    main=$(systemctl show -p MainPID --value haproxy 2>/dev/null) || main=0
    listener_specs | while read -r spec; do
        port=${spec##*:}
        case $port in '' | *[!0-9]*) continue ;; esac
        holders_of_port "$port" | while read -r at pid; do
            addresses_collide "${spec%:*}" "$at" || continue
            is_our_process "$pid" && continue
            prog=$(cat "/proc/$pid/comm" 2>/dev/null) || prog="?"
            echo "port $port (bind $spec) is held by $prog (pid $pid) on $at"
        done
    done
}

record_stamp() {
    echo "$want $cert" > "$stamp" 2>/dev/null \
        || say "warning: the config is live but its stamp could not be written ($stamp); the next run reloads again"
}

# --- Steps, in the order of the main sequence below ---

# One apply at a time (two `pulumi up`s, or an operator's run): they share
# the new, previous and stamp files.
lock_apply() {
    exec 9>"$lock"
    flock -n 9 && return 0
    say "another apply is running (it holds $lock); waiting up to ${wait_seconds}s"
    flock -w "$wait_seconds" 9 && return 0
    say "another apply still holds $lock after ${wait_seconds}s: nothing touched; run again when it is done"
    exit "$EXIT_LOCKED"
}

# By the declared size, before a byte is read: an oversized payload is never
# written to the container's disk.
refuse_oversize() {
    if [ "$bytes" -gt "$max_bytes" ]; then
        say "the config is $bytes bytes, over the $max_bytes-byte limit: not read, nothing touched"
        exit "$EXIT_TOO_LARGE"
    fi
}

# Where the journal stands now: on failure, show what was logged since.
mark_journal() {
    cursor=$(journalctl -n 0 --show-cursor --no-pager 2>/dev/null | sed -n 's/^-- cursor: //p') || cursor=""
}

# Exactly the declared bytes into a new file (the config holds the stats
# password: group haproxy reads it, nobody else), then its size and sha256
# checked. A write error is told apart from damage in transit.
receive_config() {
    umask 027
    if ! head -c "$bytes" > "$new"; then
        drop_new_and_exit "$EXIT_UNWRITABLE" "could not write $new (disk full or read-only?): running config untouched"
    fi
    got_bytes=$(wc -c < "$new")
    got=$(sha256sum "$new" | cut -d' ' -f1)
    if [ "$got_bytes" -ne "$bytes" ] || [ "$got" != "$want" ]; then
        # No digest in the message: the config holds secrets and stderr lands in the state in clear.
        drop_new_and_exit "$EXIT_DAMAGED" "config arrived damaged ($got_bytes of $bytes bytes, its sha256 not the header's); running config untouched"
    fi
    chgrp haproxy "$new" 2>/dev/null || true
}

check_config() {
    report=$(haproxy -c -f "$new" 2>&1) && return 0
    printf '%s\n' "$report" >&2
    drop_new_and_exit "$EXIT_REJECTED" "haproxy -c rejected the new config; running config and process untouched"
}

# haproxy -c accepts a maxconn the process then cannot raise its limit to.
check_open_files() {
    limit=$(open_file_limit)
    case $limit in '' | *[!0-9]*) return 0 ;; esac
    [ "$open_files" -gt "$limit" ] || return 0
    drop_new_and_exit "$EXIT_OPEN_FILES" "maxConnections needs about $open_files open files (2 per connection plus servers and listeners), but haproxy may hold at most $limit here (the container's init limit, Incus limits.kernel.nofile): lower maxConnections; running config untouched"
}

# The stamp records the config and certificate last proven live: a rotated
# certificate with an unchanged config still reloads.
skip_if_unchanged() {
    if cmp -s "$new" "$cfg" && [ "$(cat "$stamp" 2>/dev/null)" = "$want $cert" ] && systemctl is-active --quiet haproxy; then
        drop_new_and_exit "$EXIT_OK" "config and certificate unchanged, haproxy running: nothing to do"
    fi
}

# HAProxy 2.6: a reload whose new process cannot bind a port pauses the
# running worker's listeners while it retries, about 1-2 s of refused
# connections, before it gives up and keeps the old worker. Refuse a config
# whose ports another program holds before anything is touched. (A stopped
# haproxy has nothing to pause: the start is tried, and fails over to the
# previous config.)
check_ports() {
    systemctl is-active --quiet haproxy || return 0
    conflicts=$(foreign_listeners) || true
    [ -n "$conflicts" ] || return 0
    printf '%s\n' "$conflicts" >&2
    drop_new_and_exit "$EXIT_PORT_HELD" "the new config listens on a port another program holds: HAProxy could not bind it at reload; running config and process untouched"
}

# Success is proven by the master's own account, never inferred from a
# missing answer: before swapping anything, learn its reload count and
# worker ($before; empty when haproxy is stopped). A master that does not
# answer now would leave a reload unprovable.
learn_master() {
    before=""
    systemctl is-active --quiet haproxy || return 0
    deadline=$(($(date +%s) + wait_seconds))
    while before=$(master_state) && [ -z "$before" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
    [ -n "$before" ] && return 0
    drop_new_and_exit "$EXIT_MASTER_SILENT" "the master CLI ($master) did not answer within ${wait_seconds}s: a reload could not be proven, so nothing was touched"
}

# A config edited on the box since the last apply (its sha256 is not the one
# the stamp recorded) is about to be replaced: say so, and keep it. Never
# print either digest: the config holds the stats password and cookie
# secret, a step's stderr is stored in the state in clear, and an unsalted
# digest lets anyone holding the state test guesses offline.
keep_local_edit() {
    [ -f "$stamp" ] && [ -f "$cfg" ] || return 0
    applied=$(cut -d' ' -f1 "$stamp" 2>/dev/null) || applied=""
    live=$(sha256sum "$cfg" | cut -d' ' -f1)
    [ -n "$applied" ] && [ "$live" != "$applied" ] || return 0
    if cp -p "$cfg" "$cfg.veza-local-edit"; then
        say "warning: $cfg was changed on the box since the last apply; this apply replaces it, the edited file is kept as $cfg.veza-local-edit"
    else
        say "warning: $cfg was changed on the box since the last apply; this apply replaces it and could not keep a copy"
    fi
}

# The running config is kept as $prev so a failed reload or start can go back.
swap_in() {
    if [ -f "$cfg" ] && ! cp -p "$cfg" "$prev"; then
        rm -f "$prev"
        drop_new_and_exit "$EXIT_UNWRITABLE" "could not save the running config to $prev (disk full?): nothing touched"
    fi
    if ! mv "$new" "$cfg"; then
        drop_new_and_exit "$EXIT_UNWRITABLE" "could not move the new config into place: running config untouched"
    fi
}

# Done only when the master's reload count went up and its worker changed;
# otherwise says so and returns, for the previous config to be restored.
reload_and_wait() {
    before_reloads=${before% *} before_worker=${before#* }
    if systemctl reload haproxy; then
        # A deadline, not a count of polls: a poll of a busy master can take seconds.
        deadline=$(($(date +%s) + wait_seconds))
        while :; do
            now=$(master_state)
            if [ -n "$now" ] && [ "${now% *}" -gt "$before_reloads" ] && [ "${now#* }" != "$before_worker" ]; then
                record_stamp
                say "reloaded: worker $before_worker -> ${now#* } (master reload ${now% *})"
                exit "$EXIT_OK"
            fi
            [ "$(date +%s)" -lt "$deadline" ] || break
            sleep 0.1
        done
    fi
    say "reload did not bring up a new worker within ${wait_seconds}s; restoring the previous config"
}

# haproxy was stopped: start it. A unit that failed to start a few times in a
# row (Restart=always) hits systemd's start limit and refuses every start
# until reset-failed.
start_haproxy() {
    systemctl reset-failed haproxy 2>/dev/null || true
    if systemctl restart haproxy && systemctl is-active --quiet haproxy; then
        record_stamp
        say "started haproxy"
        exit "$EXIT_OK"
    fi
    say "haproxy did not start with the new config; restoring the previous config"
}

# No stamp: the next run applies again whatever ends up running.
restore_previous() {
    rm -f "$stamp"
    if [ ! -f "$prev" ]; then
        say "no previous config to restore"
        return 0
    fi
    mv "$prev" "$cfg"
    if ! systemctl reload haproxy 2>/dev/null; then
        systemctl reset-failed haproxy 2>/dev/null || true
        systemctl restart haproxy || true
    fi
    if systemctl is-active --quiet haproxy; then
        say "previous config restored; haproxy is running"
    else
        say "previous config restored; haproxy is NOT running (it did not start with the previous config either)"
    fi
}

# What HAProxy and systemd said since this step began (facility daemon: the
# request log, on local0, would drown it). journald reads HAProxy's stderr
# asynchronously: give it a moment to catch up.
show_journal() {
    sleep 1
    if [ -n "$cursor" ]; then set -- --after-cursor "$cursor"; else set -- -n 80; fi
    journalctl -u haproxy SYSLOG_FACILITY=3 "$@" --no-pager 2>/dev/null | tail -n 80 >&2 || true
}

# --- Main: each step returns only to let the next one run; the success and
# refusal paths leave through their step's exit. ---
lock_apply
refuse_oversize
mark_journal
receive_config
check_config
check_open_files
skip_if_unchanged
check_ports
learn_master
keep_local_edit
swap_in
if [ -n "$before" ]; then reload_and_wait; else start_haproxy; fi
# Only a failed reload or start gets here.
restore_previous
show_journal
exit "$EXIT_RESTORED"
