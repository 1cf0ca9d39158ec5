# Runs inside the container (POSIX sh). $1 config path, $2 its expected sha256,
# $3 the certificate's sha256 ("none" without TLS), $4 master CLI socket,
# $5 seconds to wait (for the lock, the master, the new worker), $6 the
# config's size in bytes, $7 the open files it needs. stdin: the new config.
# Exit codes, each with one meaning (README, "What happens on pulumi up"):
#   0 applied, or nothing to do
#   1 the config arrived damaged (size or sha256 differ)
#   2 haproxy -c rejected it
#   3 the reload or start failed; the previous config was restored
#   4 a port of the new config is held by another program
#   5 another apply held the lock for the whole wait
#   6 the new config could not be written (disk full, read-only)
#   7 the master CLI did not answer, so a reload could not be proven
#   8 the config is larger than the limit and was not read
#   9 maxConnections needs more open files than the container allows
# In 1, 2 and 4-9 the running config and process are untouched.
set -eu
cfg=$1 want=$2 cert=$3 master=$4 wait_seconds=$5 bytes=$6 open_files=$7
new="$cfg.veza-new" prev="$cfg.veza-prev" stamp="$cfg.veza-stamp" lock="$cfg.veza-lock"
max_bytes=4194304
say() { printf 'veza-haproxy[config]: %s\n' "$*" >&2; }

# One apply at a time (two `pulumi up`s, or an operator's run): they share
# the new, previous and stamp files.
exec 9>"$lock"
if ! flock -n 9; then
    say "another apply is running (it holds $lock); waiting up to ${wait_seconds}s"
    if ! flock -w "$wait_seconds" 9; then
        say "another apply still holds $lock after ${wait_seconds}s: nothing touched; run again when it is done"
        exit 5
    fi
fi

if [ "$bytes" -gt "$max_bytes" ]; then
    say "the config is $bytes bytes, over the $max_bytes-byte limit: not read, nothing touched"
    exit 8
fi
# Where the journal stands now: on failure, show what was logged since.
cursor=$(journalctl -n 0 --show-cursor --no-pager 2>/dev/null | sed -n 's/^-- cursor: //p') || cursor=""

# "<master reloads> <current worker pid>" from the master CLI, or nothing
# when it does not answer (busy or hung in a reload); bounded in time.
master_state() {
    echo "show proc" | timeout 3 socat -t 2 stdio "UNIX-CONNECT:$master" 2>/dev/null | awk '
        $2 == "master" { reloads = $3 }
        /^# old workers/ { exit }
        $2 == "worker" && worker == "" { worker = $1 }
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

# Listeners of the new config ($new) that another program already holds:
# prints "port <p> (bind <spec>) is held by <program> (pid <n>) on <addr:port>"
# per conflict. Our own master and workers do not count (HAProxy takes its
# ports over with SO_REUSEPORT or from the old worker). Nothing when ss is
# missing.
foreign_listeners() {
    command -v ss >/dev/null 2>&1 || return 0
    main=$(systemctl show -p MainPID --value haproxy 2>/dev/null) || main=0
    awk '$1 == "bind" {print $2}' "$new" | sort -u | while read -r spec; do
        port=${spec##*:} want_addr=${spec%:*}
        case $port in '' | *[!0-9]*) continue ;; esac
        ss -Hltnp "sport = :$port" 2>/dev/null | while read -r _ _ _ local _ users; do
            addr=${local%:*}
            addr=${addr%%[%]*}
            case $addr in '*' | 0.0.0.0 | '[::]' | '::') ;; *)
                case $want_addr in '*' | '' | 0.0.0.0 | '[::]' | '::') ;; *)
                    [ "$addr" = "$want_addr" ] || continue ;;
                esac ;;
            esac
            for pid in $(printf '%s\n' "$users" | awk '{
                while (match($0, /pid=[0-9]+/)) { print substr($0, RSTART + 4, RLENGTH - 4); $0 = substr($0, RSTART + RLENGTH) }
            }'); do
                [ "$pid" = "$main" ] && continue
                ppid=$(awk '$1 == "PPid:" {print $2}' "/proc/$pid/status" 2>/dev/null) || ppid=""
                [ -n "$main" ] && [ "$main" != 0 ] && [ "$ppid" = "$main" ] && continue
                prog=$(cat "/proc/$pid/comm" 2>/dev/null) || prog="?"
                echo "port $port (bind $spec) is held by $prog (pid $pid) on $local"
            done
        done
    done
}

umask 027
if ! head -c "$bytes" > "$new"; then
    rm -f "$new"
    say "could not write $new (disk full or read-only?): running config untouched"
    exit 6
fi
got_bytes=$(wc -c < "$new")
got=$(sha256sum "$new" | cut -d' ' -f1)
if [ "$got_bytes" -ne "$bytes" ] || [ "$got" != "$want" ]; then
    rm -f "$new"
    say "config arrived damaged ($got_bytes of $bytes bytes, sha256 $got, expected $want); running config untouched"
    exit 1
fi
chgrp haproxy "$new" 2>/dev/null || true
if ! report=$(haproxy -c -f "$new" 2>&1); then
    rm -f "$new"
    printf '%s\n' "$report" >&2
    say "haproxy -c rejected the new config; running config and process untouched"
    exit 2
fi
limit=$(open_file_limit)
case $limit in
    '' | *[!0-9]*) ;;
    *) if [ "$open_files" -gt "$limit" ]; then
        rm -f "$new"
        say "maxConnections needs about $open_files open files (2 per connection plus servers and listeners), but haproxy may hold at most $limit here (the container's init limit, Incus limits.kernel.nofile): lower maxConnections; running config untouched"
        exit 9
    fi ;;
esac
if cmp -s "$new" "$cfg" && [ "$(cat "$stamp" 2>/dev/null)" = "$want $cert" ] && systemctl is-active --quiet haproxy; then
    rm -f "$new"
    say "config and certificate unchanged, haproxy running: nothing to do"
    exit 0
fi
# HAProxy 2.6: a reload whose new process cannot bind a port pauses the
# running worker's listeners while it retries, about 1-2 s of refused
# connections, before it gives up and keeps the old worker. Refuse a config
# whose ports another program holds before anything is touched. (A stopped
# haproxy has nothing to pause: the start below is tried, and fails over to
# the previous config.)
if systemctl is-active --quiet haproxy; then
    conflicts=$(foreign_listeners) || true
    if [ -n "$conflicts" ]; then
        rm -f "$new"
        printf '%s\n' "$conflicts" >&2
        say "the new config listens on a port another program holds: HAProxy could not bind it at reload; running config and process untouched"
        exit 4
    fi
fi
# Success is proven by the master's own account, never inferred from a
# missing answer: before swapping anything, learn its reload count and
# worker. A master that does not answer now would leave a reload unprovable.
before=""
if systemctl is-active --quiet haproxy; then
    deadline=$(($(date +%s) + wait_seconds))
    while before=$(master_state) && [ -z "$before" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
    if [ -z "$before" ]; then
        rm -f "$new"
        say "the master CLI ($master) did not answer within ${wait_seconds}s: a reload could not be proven, so nothing was touched"
        exit 7
    fi
fi
record_stamp() {
    echo "$want $cert" > "$stamp" 2>/dev/null \
        || say "warning: the config is live but its stamp could not be written ($stamp); the next run reloads again"
}
if [ -f "$cfg" ] && ! cp -p "$cfg" "$prev"; then
    rm -f "$new" "$prev"
    say "could not save the running config to $prev (disk full?): nothing touched"
    exit 6
fi
if ! mv "$new" "$cfg"; then
    rm -f "$new"
    say "could not move the new config into place: running config untouched"
    exit 6
fi

if [ -n "$before" ]; then
    before_reloads=${before% *} before_worker=${before#* }
    if systemctl reload haproxy; then
        # A deadline, not a count of polls: a poll of a busy master can take seconds.
        deadline=$(($(date +%s) + wait_seconds))
        while :; do
            now=$(master_state)
            if [ -n "$now" ] && [ "${now% *}" -gt "$before_reloads" ] && [ "${now#* }" != "$before_worker" ]; then
                record_stamp
                say "reloaded: worker $before_worker -> ${now#* } (master reload ${now% *})"
                exit 0
            fi
            [ "$(date +%s)" -lt "$deadline" ] || break
            sleep 0.1
        done
    fi
    say "reload did not bring up a new worker within ${wait_seconds}s; restoring the previous config"
else
    # A unit that failed to start a few times in a row (Restart=always) hits
    # systemd's start limit and refuses every start until reset-failed.
    systemctl reset-failed haproxy 2>/dev/null || true
    if systemctl restart haproxy && systemctl is-active --quiet haproxy; then
        record_stamp
        say "started haproxy"
        exit 0
    fi
    say "haproxy did not start with the new config; restoring the previous config"
fi
rm -f "$stamp"
if [ -f "$prev" ]; then
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
else
    say "no previous config to restore"
fi
# What HAProxy and systemd said since this step began (facility daemon: the
# request log, on local0, would drown it). journald reads HAProxy's stderr
# asynchronously: give it a moment to catch up.
sleep 1
if [ -n "$cursor" ]; then set -- --after-cursor "$cursor"; else set -- -n 80; fi
journalctl -u haproxy SYSLOG_FACILITY=3 "$@" --no-pager 2>/dev/null | tail -n 80 >&2 || true
exit 3
