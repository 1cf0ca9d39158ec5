# Runs inside the container (POSIX sh). $1 config path, $2 its expected sha256,
# $3 the certificate's sha256 ("none" without TLS), $4 master CLI socket,
# $5 seconds to wait for the new worker. stdin: the new config.
# Exit: 0 applied (or nothing to do); 1 config damaged in transit; 2 rejected
# by haproxy -c; 4 a port of the new config is held by another program (both:
# nothing touched); 3 reload/start failed, previous config restored.
set -eu
cfg=$1 want=$2 cert=$3 master=$4 wait_seconds=$5
new="$cfg.veza-new" prev="$cfg.veza-prev" stamp="$cfg.veza-stamp"
say() { printf 'veza-haproxy[config]: %s\n' "$*" >&2; }
# Where the journal stands now: on failure, show what was logged since.
cursor=$(journalctl -n 0 --show-cursor --no-pager 2>/dev/null | sed -n 's/^-- cursor: //p') || cursor=""

# pid of the current (not old) worker, from the master CLI; bounded in time
# even when the master does not answer (busy or hung in a reload).
current_worker() {
    echo "show proc" | timeout 3 socat -t 2 stdio "UNIX-CONNECT:$master" 2>/dev/null \
        | awk '/^# old workers/ {exit} $2 == "worker" {print $1; exit}'
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
cat > "$new"
got=$(sha256sum "$new" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
    rm -f "$new"
    say "config arrived damaged (sha256 $got, expected $want); running config untouched"
    exit 1
fi
chgrp haproxy "$new" 2>/dev/null || true
if ! report=$(haproxy -c -f "$new" 2>&1); then
    rm -f "$new"
    printf '%s\n' "$report" >&2
    say "haproxy -c rejected the new config; running config and process untouched"
    exit 2
fi
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
if [ -f "$cfg" ]; then cp -p "$cfg" "$prev"; fi
mv "$new" "$cfg"

if systemctl is-active --quiet haproxy; then
    before=$(current_worker)
    if systemctl reload haproxy; then
        # A deadline, not a count of polls: a poll of a busy master can take seconds.
        deadline=$(($(date +%s) + wait_seconds))
        while :; do
            now=$(current_worker)
            if [ -n "$now" ] && [ "$now" != "$before" ]; then
                echo "$want $cert" > "$stamp"
                say "reloaded: worker $before -> $now"
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
        echo "$want $cert" > "$stamp"
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
