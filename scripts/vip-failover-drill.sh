#!/bin/sh
# The load balancer pair's drill (`failover-drill.sh --lb`), run on the Incus
# host:
#   1. exactly one node holds the VIP, and a request through it gets 200;
#   2. a request loop against the VIP starts (from this host, through socat);
#   3. the node holding the VIP is killed (incus stop --force);
#   4. poll the other node until it holds the VIP: the move time;
#   5. wait for a 200 through the VIP, stop the loop: requests and failures;
#   6. start the killed node again: it must come back without taking the
#      VIP (nopreempt).
# Exit 0 only when every step held. Needs `incus` and `socat` on this host.
#
# Settings (environment):
#   VEZA_NODES      the pair's two containers  (default "haproxy-a haproxy-b")
#   VEZA_VIP        the floating IPv4 address, no prefix (required)
#   VEZA_PATH       request path               (default /api/v1/health)
#   VEZA_PORT       HTTP port                  (default 80)
#   VEZA_TIMEOUT    seconds to wait per phase  (default 60)
set -eu
drill="vip-failover-drill"
# shellcheck source=scripts/_drill-lib.sh
. "$(dirname "$0")/_drill-lib.sh"
nodes=${VEZA_NODES:-haproxy-a haproxy-b}
vip=${VEZA_VIP:-}
request_path=${VEZA_PATH:-/api/v1/health}
port=${VEZA_PORT:-80}
timeout=${VEZA_TIMEOUT:-60}

# shellcheck disable=SC2086 # two names, split on purpose
set -- $nodes
[ $# -eq 2 ] || die "VEZA_NODES must name the pair's two containers (got '$nodes')"
node_1=$1 node_2=$2
check_name "$node_1" "$node_2"
check_request "$request_path" "$port" "$timeout"
printf '%s\n' "$vip" | grep -Eq '^([0-9]{1,3}\.){3}[0-9]{1,3}$' || die "VEZA_VIP must be an IPv4 address such as 198.18.0.250 (got '$vip')"
command -v socat >/dev/null || die "socat is not installed on this host (apt-get install -y socat)"

holds_vip() { incus exec "$1" -- ip -4 -o addr show dev eth0 2>/dev/null | grep -q " $vip/"; }
# One HTTP/1.0 request to the VIP; prints the status code (empty when nothing answered).
request_status() {
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: veza-vip-failover-drill\r\n\r\n' "$request_path" "$vip" \
        | socat -t 2 -T 2 stdio "TCP:$vip:$port,connect-timeout=1" 2>/dev/null | awk 'NR == 1 {print $2; exit}'
}
# wait_until WHAT COMMAND...: polls COMMAND every 50 ms; prints the elapsed ms.
wait_until() {
    what=$1
    shift
    start=$(now_ms)
    until "$@"; do
        [ $(( $(now_ms) - start )) -lt $(( timeout * 1000 )) ] || die "$what: not within ${timeout}s"
        sleep 0.05
    done
    echo $(( $(now_ms) - start ))
}
serves() { [ "$(request_status)" = 200 ]; }

work=$(mktemp -d)
loop_pid=""
killed=""
cleanup() {
    [ -n "$loop_pid" ] && { : > "$work/stop"; wait "$loop_pid" 2>/dev/null || true; }
    if [ -n "$killed" ]; then incus start "$killed" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

say "1/6 exactly one of $node_1, $node_2 holds $vip, and it serves"
holders=""
for node in "$node_1" "$node_2"; do holds_vip "$node" && holders="$holders $node"; done
# shellcheck disable=SC2086 # node names, split on purpose
set -- $holders
[ $# -eq 1 ] || die "the VIP must be on exactly one node (on:${holders:- none})"
master=$1
if [ "$master" = "$node_1" ]; then backup=$node_2; else backup=$node_1; fi
[ "$(request_status)" = 200 ] || die "a request to $vip:$port$request_path did not get 200"
say "$vip is on $master; $backup is the backup"

say "2/6 a request loop against $vip:$port"
(
    n=0 f=0
    while [ ! -f "$work/stop" ]; do
        n=$((n + 1))
        [ "$(request_status)" = 200 ] || f=$((f + 1))
        echo "$n $f" > "$work/counts"
        sleep 0.02
    done
) &
loop_pid=$!
sleep 0.5

say "3/6 killing $master (incus stop --force)"
killed=$master
incus stop --force "$master"

say "4/6 waiting for $backup to hold $vip"
move_ms=$(wait_until "$vip on $backup" holds_vip "$backup")
say "the VIP moved after $(secs "$move_ms")s"

say "5/6 waiting for a 200 through $vip"
wait_until "a 200 through $vip" serves >/dev/null
sleep 0.5
: > "$work/stop"
wait "$loop_pid" || true
loop_pid=""
read -r requests failed < "$work/counts"
say "$requests requests during the drill, $failed failed"

say "6/6 starting $master again: it must come back as BACKUP"
incus start "$master"
killed=""
keepalived_runs() { incus exec "$master" -- systemctl is-active --quiet keepalived; }
wait_until "keepalived running on $master" keepalived_runs >/dev/null
# Several advert intervals: a preempting node would take the VIP back by then.
sleep 3
holds_vip "$master" && die "$master took the VIP back when it returned (it must not: nopreempt)"
holds_vip "$backup" || die "$backup lost the VIP when $master returned"
say "PASSED vip_move_s=$(secs "$move_ms") requests=$requests failed=$failed"
